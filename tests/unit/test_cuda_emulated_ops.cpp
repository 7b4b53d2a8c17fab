// The CUDA backend's kernels other than attention (src/backend/cuda/cuda_kernels.cu),
// launched through its own launchers on CPU threads (cuda_emulation.h), against
// the CPU backend's kernels: in double (the norms, embedding gradients, RoPE,
// activations, recurrent cells, cross-entropy, column sums: the same formulas
// in fp32, relative error below 1e-5 of the largest value), or bit for bit
// where the arithmetic is the same few float operations (copies, adds, dropout,
// bf16 rounding, 16-bit widening). The optimiser's kernels of a training step
// (sum of squares, clip scale, AdamW and adds over tables of tensors cut in
// chunks) run in the order the backend queues them. The shapes cut grids and
// blocks short: rows wider than a block, more rows than the column sums' chunks,
// tensors of several chunks. This runs without a GPU, so CI checks the kernels'
// arithmetic, indexing and launch geometry; tests/gpu checks them on a device.
#include "cuda_emulation.h"

using namespace rmkv;

namespace {

constexpr double kTol = 1e-5;  // fp32 kernels against double references, relative to the largest value

std::vector<float> floats(const std::vector<double> &x) { return std::vector<float>(x.begin(), x.end()); }

void expect_close(const char *what, const std::vector<float> &got, const std::vector<double> &want,
                  double tol = kTol) {
    const double e = worst_error(got, want);
    print_message("emulated CUDA %-44s %.2e\n", what, e);
    if (!(e < tol)) fail_msg("%s differs from the CPU kernel by %g of the largest value", what, e);
}

template <class T>
void expect_same(const char *what, const std::vector<T> &got, const std::vector<T> &want) {
    assert_int_equal(got.size(), want.size());
    if (std::memcmp(got.data(), want.data(), got.size() * sizeof(T)) != 0)
        for (size_t i = 0; i < got.size(); ++i)
            if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0)
                fail_msg("%s: element %zu differs from the CPU kernel's", what, i);
    print_message("emulated CUDA %-44s bit for bit\n", what);
}

// A kernel's bf16 copy of its output (Backend's bf16 copies): the CPU's rounding of
// that output, bit for bit.
void expect_copy(const char *what, const std::vector<uint16_t> &copy, const std::vector<float> &of) {
    std::vector<uint16_t> want(of.size());
    cpu::to_bf16(want.data(), of.data(), static_cast<int64_t>(of.size()));
    expect_same(what, copy, want);
}

// Layer and RMS norms forward and backward (dx, dw, db +=; frozen: dw and db
// NULL): rows wider than a block, and more rows than the column sums' chunks;
// every other case with the output's bf16 copy.
void norms(void **) {
    struct Case {
        NormKind kind;
        int64_t n, d;
        bool frozen;
    };
    const Case cases[] = {{NormKind::layernorm, 3, 40, false},
                          {NormKind::rmsnorm, 70, 257, false},
                          {NormKind::layernorm, 300, 33, false},
                          {NormKind::layernorm, 5, 600, true},
                          {NormKind::rmsnorm, 2, 1, false}};
    std::mt19937_64 rng(20261201);
    bool with_copy = false;
    for (const Case &c : cases) {
        with_copy = !with_copy;
        const bool layer = c.kind == NormKind::layernorm;
        const int64_t n = c.n, d = c.d;
        const double eps = 1e-5;
        std::vector<double> x = random_values(rng, n * d), w = random_values(rng, d), b = random_values(rng, d),
                            dy = random_values(rng, n * d), dx0 = random_values(rng, n * d),
                            dw0 = random_values(rng, d), db0 = random_values(rng, d);
        for (int64_t i = 0; i < n * d; ++i) x[i] = static_cast<float>(x[i] * 3.0 + 0.5);  // off-centre rows
        std::vector<double> y(n * d), dx = dx0, dw = dw0, db = db0;
        cpu::norm_forward<double>(c.kind, y.data(), x.data(), w.data(), layer ? b.data() : nullptr, n, d, eps);
        cpu::norm_backward<double>(c.kind, dx.data(), c.frozen ? nullptr : dw.data(),
                                   c.frozen || !layer ? nullptr : db.data(), dy.data(), x.data(), w.data(), n, d, eps);

        const std::vector<float> xf = floats(x), wf = floats(w), bf = floats(b), dyf = floats(dy);
        std::vector<float> yf(n * d, NAN), dxf = floats(dx0), dwf = floats(dw0), dbf = floats(db0);
        std::vector<double> stats(cuda::norm_backward_scratch(n, d), NAN);
        std::vector<uint16_t> y16(n * d, 0xffff), dx16(n * d, 0xffff);
        cuda::norm_forward(c.kind, yf.data(), xf.data(), wf.data(), layer ? bf.data() : nullptr, n, d,
                           static_cast<float>(eps), with_copy ? y16.data() : nullptr, nullptr);
        cuda::norm_backward(c.kind, dxf.data(), c.frozen ? nullptr : dwf.data(),
                            c.frozen || !layer ? nullptr : dbf.data(), dyf.data(), xf.data(), wf.data(), n, d,
                            static_cast<float>(eps), stats.data(), nullptr, with_copy ? dx16.data() : nullptr);
        char what[96];
        std::snprintf(what, sizeof what, "%s n %lld d %lld%s:", layer ? "layernorm" : "rmsnorm", (long long)n,
                      (long long)d, c.frozen ? " frozen" : "");
        const std::string name(what);
        expect_close((name + " y").c_str(), yf, y);
        if (with_copy) {
            expect_copy((name + " y's bf16 copy").c_str(), y16, yf);
            std::vector<uint16_t> only(n * d, 0xffff);  // the copy alone (y NULL)
            cuda::norm_forward(c.kind, nullptr, xf.data(), wf.data(), layer ? bf.data() : nullptr, n, d,
                               static_cast<float>(eps), only.data(), nullptr);
            expect_same((name + " the copy alone").c_str(), only, y16);
            expect_copy((name + " dx's bf16 copy (after the addition)").c_str(), dx16, dxf);
        }
        expect_close((name + " dx").c_str(), dxf, dx);
        if (c.frozen) {
            expect_same((name + " dw untouched").c_str(), dwf, floats(dw0));
            expect_same((name + " db untouched").c_str(), dbf, floats(db0));
        } else {
            expect_close((name + " dw").c_str(), dwf, dw);
            if (layer) expect_close((name + " db").c_str(), dbf, db);
        }
    }
}

// A bias's gradient: column sums added to db, in chunks of rows (one chunk, in
// the kernel of the partial sums; a few; and the most there are); then several
// parts at once (Backend::add_column_sums): rows in blocks apart, parts of one
// chunk and of several in one launch, and two parts adding to one db (two launches).
void column_sums(void **) {
    const int64_t shapes[][2] = {{5, 300}, {256, 40}, {600, 45}, {9000, 33}};
    std::mt19937_64 rng(20261202);
    auto run = [](std::vector<ColumnSums> parts) {
        std::vector<double> scratch(cuda::column_sums_scratch(parts.data(), static_cast<int64_t>(parts.size())) + 1, NAN);
        cuda::column_sums_add(parts.data(), static_cast<int64_t>(parts.size()), scratch.data(), nullptr);
    };
    for (const auto &s : shapes) {
        const int64_t n = s[0], out = s[1];
        const std::vector<double> dy = random_values(rng, n * out), db0 = random_values(rng, out);
        std::vector<double> db = db0;
        for (int64_t r = 0; r < n; ++r)
            for (int64_t c = 0; c < out; ++c) db[c] += dy[r * out + c];
        std::vector<float> dbf = floats(db0), dyf = floats(dy);
        run({{dbf.data(), dyf.data(), n * out, n, 1, out}});
        char what[64];
        std::snprintf(what, sizeof what, "column sums n %lld out %lld:", (long long)n, (long long)out);
        expect_close(what, dbf, db);
    }
    // dy: 3 blocks of 400 rows of 40; parts: rows 0..99 of each block into a (300
    // rows: two chunks), rows 100..104 of each into b (15 rows: one chunk), then
    // (a second launch) rows 0..299 of block 0 into a again, and block 2's first 7
    // rows of 33 into c.
    const int64_t W = 40, P = 400 * W;
    const std::vector<double> dy = random_values(rng, 3 * P), a0 = random_values(rng, W), b0 = random_values(rng, W),
                              c0 = random_values(rng, 33);
    std::vector<double> a = a0, b = b0, c = c0;
    for (int64_t i = 0; i < 3; ++i)
        for (int64_t r = 0; r < 100; ++r)
            for (int64_t j = 0; j < W; ++j) a[j] += dy[i * P + r * W + j];
    for (int64_t i = 0; i < 3; ++i)
        for (int64_t r = 100; r < 105; ++r)
            for (int64_t j = 0; j < W; ++j) b[j] += dy[i * P + r * W + j];
    for (int64_t r = 0; r < 300; ++r)
        for (int64_t j = 0; j < W; ++j) a[j] += dy[r * W + j];
    for (int64_t r = 0; r < 7; ++r)
        for (int64_t j = 0; j < 33; ++j) c[j] += dy[2 * P + r * 33 + j];
    std::vector<float> af = floats(a0), bf = floats(b0), cf = floats(c0);
    const std::vector<float> dyf = floats(dy);
    run({{af.data(), dyf.data(), P, 100, 3, W},
         {bf.data(), dyf.data() + 100 * W, P, 5, 3, W},
         {af.data(), dyf.data(), P, 300, 1, W},
         {cf.data(), dyf.data() + 2 * P, 0, 7, 1, 33}});
    expect_close("column sums in parts, a (blocks, twice):", af, a);
    expect_close("column sums in parts, b (blocks):", bf, b);
    expect_close("column sums in parts, c:", cf, c);
}

// Embedding rows forward (copies), their gradient with repeated tokens (atomic
// adds), and the 16-bit weights' widening and embedding.
void embedding(void **) {
    std::mt19937_64 rng(20261203);
    const int64_t V = 11, d = 37, n = 40;
    std::vector<int32_t> tok(n);
    for (int64_t i = 0; i < n; ++i) tok[i] = static_cast<int32_t>((i * 7 + i / 3) % V);
    const std::vector<double> E = random_values(rng, V * d), dX = random_values(rng, n * d),
                              dE0 = random_values(rng, V * d);
    const std::vector<float> Ef = floats(E);
    std::vector<float> X(n * d, NAN), want(n * d);
    cpu::embed_forward<float>(want.data(), Ef.data(), tok.data(), n, d);
    cuda::embed_forward(X.data(), Ef.data(), tok.data(), n, d, nullptr);
    expect_same("embed forward", X, want);

    std::vector<double> dE = dE0;
    cpu::embed_backward<double>(dE.data(), dX.data(), tok.data(), n, d);
    std::vector<float> dEf = floats(dE0);
    cuda::embed_backward(dEf.data(), floats(dX).data(), tok.data(), n, d, nullptr);
    expect_close("embed backward (repeated tokens):", dEf, dE);

    for (Half h : {Half::bf16, Half::f16}) {
        std::vector<uint16_t> E16(V * d);
        for (size_t i = 0; i < E16.size(); ++i) E16[i] = static_cast<uint16_t>((i * 40503u + 17u) & 0x7bffu);
        std::vector<float> wide(E16.size(), NAN), wide_want(E16.size()), rows(n * d, NAN), rows_want(n * d);
        for (size_t i = 0; i < E16.size(); ++i) wide_want[i] = half_value(E16[i], h);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < d; ++j) rows_want[i * d + j] = half_value(E16[tok[i] * d + j], h);
        cuda::widen_half(wide.data(), E16.data(), h, static_cast<int64_t>(E16.size()), nullptr);
        cuda::embed_half(rows.data(), E16.data(), h, tok.data(), n, d, nullptr);
        expect_same(h == Half::bf16 ? "widen bf16" : "widen f16", wide, wide_want);
        expect_same(h == Half::bf16 ? "embed bf16 rows" : "embed f16 rows", rows, rows_want);
    }
}

// Element-wise kernels and copies, over more elements than one block.
void elementwise(void **) {
    std::mt19937_64 rng(20261204);
    const int64_t n = 3000;
    const std::vector<double> a = random_values(rng, n), b = random_values(rng, n), g = random_values(rng, n);
    const std::vector<float> af = floats(a), bf = floats(b), gf = floats(g);
    {
        std::vector<float> out(n, NAN), want(n);
        cpu::add<float>(want.data(), af.data(), bf.data(), n);
        std::vector<uint16_t> out16(n, 0xffff);
        cuda::add(out.data(), af.data(), bf.data(), n, nullptr, out16.data());
        expect_same("add", out, want);
        expect_copy("add's bf16 copy", out16, out);
    }
    {
        const int64_t rows = 60, width = 50;  // n = rows * width
        std::vector<float> y = af, want = af;
        for (int64_t i = 0; i < rows * width; ++i) want[i] += bf[i % width];
        cuda::add_bias(y.data(), bf.data(), rows, width, nullptr);
        expect_same("add bias", y, want);
    }
    {
        std::vector<float> x = af, want = af;
        cuda::fill(x.data(), 0.25f, static_cast<size_t>(n - 7), nullptr);
        std::fill(want.begin(), want.end() - 7, 0.25f);
        expect_same("fill (the last 7 left)", x, want);
    }
    {
        const Dropout drop{0.3f, 0x5eedull};
        std::vector<float> x = af, want = af;
        cpu::dropout<float>(want.data(), n, drop);
        cuda::dropout(x.data(), n, &drop, 1, nullptr);
        expect_same("dropout", x, want);
        // Three stacked sequences of n / 3, the middle one without dropout.
        const int64_t m = n / 3;
        const Dropout drops[3] = {drop, {}, {0.4f, 0x5eedull}};
        std::vector<float> xs = af, xs_want = af;
        for (int64_t i = 0; i < 3; ++i) cpu::dropout<float>(xs_want.data() + i * m, m, drops[i]);
        std::vector<uint16_t> xs16(3 * m, 0xffff);
        cuda::dropout(xs.data(), m, drops, 3, nullptr, xs16.data());
        expect_same("dropout, stacked", xs, xs_want);
        expect_copy("dropout's bf16 copy (stacked)", xs16, std::vector<float>(xs.begin(), xs.begin() + 3 * m));
    }
    {
        std::vector<uint16_t> got(n), want(n);
        cpu::to_bf16(want.data(), af.data(), n);
        cuda::to_bf16(got.data(), af.data(), static_cast<size_t>(n), nullptr);
        expect_same("to bf16", got, want);
        // Blocks: 3 blocks of 50 out of a pitch of 70, 1 of 300, 4 of 7 (pitch 7),
        // one after another in one buffer.
        const Bf16Blocks shapes[] = {{nullptr, nullptr, 70, 50, 3}, {nullptr, nullptr, 300, 300, 1}, {nullptr, nullptr, 7, 7, 4}};
        std::vector<uint16_t> blocks(3 * 50 + 300 + 4 * 7, 0xffff), blocks_want(blocks.size());
        std::vector<Bf16Blocks> parts;
        size_t at = 0;
        for (const Bf16Blocks &s : shapes) {
            const float *src = af.data() + 11 * parts.size();
            parts.push_back({blocks.data() + at, src, s.pitch, s.width, s.count});
            for (int64_t i = 0; i < s.count; ++i)
                cpu::to_bf16(blocks_want.data() + at + i * s.width, src + i * s.pitch, s.width);
            at += static_cast<size_t>(s.count * s.width);
        }
        cuda::to_bf16_blocks(parts.data(), static_cast<int64_t>(parts.size()), nullptr);
        expect_same("to bf16, blocks", blocks, blocks_want);
    }
    {
        std::vector<double> h(n), dg(n), du(n);
        cpu::swiglu_forward<double>(h.data(), g.data(), a.data(), n);
        cpu::swiglu_backward<double>(dg.data(), du.data(), b.data(), g.data(), a.data(), n);
        std::vector<float> hf(n, NAN), dgf(n, NAN), duf(n, NAN);
        std::vector<uint16_t> h16(n, 0xffff), dg16(n, 0xffff), du16(n, 0xffff);
        cuda::swiglu_forward(hf.data(), gf.data(), af.data(), n, h16.data(), nullptr);
        cuda::swiglu_backward(dgf.data(), duf.data(), bf.data(), gf.data(), af.data(), n, dg16.data(), du16.data(),
                              nullptr);
        expect_close("swiglu h:", hf, h);
        expect_close("swiglu dgate:", dgf, dg);
        expect_close("swiglu dup:", duf, du);
        expect_copy("swiglu h's bf16 copy", h16, hf);
        expect_copy("swiglu dgate's bf16 copy", dg16, dgf);
        expect_copy("swiglu dup's bf16 copy", du16, duf);
        std::vector<float> h2(n, NAN), dg2(n, NAN), du2(n, NAN);  // without copies: the same values
        cuda::swiglu_forward(h2.data(), gf.data(), af.data(), n, nullptr, nullptr);
        cuda::swiglu_backward(dg2.data(), du2.data(), bf.data(), gf.data(), af.data(), n, nullptr, nullptr, nullptr);
        expect_same("swiglu without copies", h2, hf);
        expect_same("swiglu backward without copies (dgate)", dg2, dgf);
        expect_same("swiglu backward without copies (dup)", du2, duf);
        std::vector<uint16_t> h_only(n, 0xffff), dg_only(n, 0xffff), du_only(n, 0xffff);  // fp32 outputs NULL
        cuda::swiglu_forward(nullptr, gf.data(), af.data(), n, h_only.data(), nullptr);
        cuda::swiglu_backward(nullptr, nullptr, bf.data(), gf.data(), af.data(), n, dg_only.data(), du_only.data(),
                              nullptr);
        expect_same("swiglu h's copy alone", h_only, h16);
        expect_same("swiglu dgate's copy alone", dg_only, dg16);
        expect_same("swiglu dup's copy alone", du_only, du16);
    }
    {
        std::vector<double> h(n), du(n);
        cpu::gelu_forward<double>(h.data(), a.data(), n);
        cpu::gelu_backward<double>(du.data(), b.data(), a.data(), n);
        std::vector<float> hf(n, NAN), duf(n, NAN);
        std::vector<uint16_t> h16(n, 0xffff), du16(n, 0xffff);
        cuda::gelu_forward(hf.data(), af.data(), n, h16.data(), nullptr);
        cuda::gelu_backward(duf.data(), bf.data(), af.data(), n, du16.data(), nullptr);
        expect_close("gelu h:", hf, h);
        expect_close("gelu du:", duf, du);
        expect_copy("gelu h's bf16 copy", h16, hf);
        expect_copy("gelu du's bf16 copy", du16, duf);
        std::vector<float> h2(n, NAN), du2(n, NAN);
        cuda::gelu_forward(h2.data(), af.data(), n, nullptr, nullptr);
        cuda::gelu_backward(du2.data(), bf.data(), af.data(), n, nullptr, nullptr);
        expect_same("gelu without copies", h2, hf);
        expect_same("gelu backward without copies", du2, duf);
        std::vector<uint16_t> h_only(n, 0xffff), du_only(n, 0xffff);
        cuda::gelu_forward(nullptr, af.data(), n, h_only.data(), nullptr);
        cuda::gelu_backward(nullptr, bf.data(), af.data(), n, du_only.data(), nullptr);
        expect_same("gelu h's copy alone", h_only, h16);
        expect_same("gelu du's copy alone", du_only, du16);
    }
    {
        const int64_t M = 7, D = 30;
        std::vector<float> cat(M * 2 * D, NAN), want(M * 2 * D);
        cpu::concat_cols<float>(want.data(), af.data(), bf.data(), M, D);
        std::vector<uint16_t> cat16(M * 2 * D, 0xffff);
        cuda::concat_cols(cat.data(), af.data(), bf.data(), M, D, cat16.data(), nullptr);
        expect_same("concat columns", cat, want);
        expect_copy("concat columns' bf16 copy", cat16, cat);
        std::vector<float> da = af, db = bf, da_want = af, db_want = bf;
        cpu::split_cols_add<float>(da_want.data(), db_want.data(), gf.data(), M, D);
        cuda::split_cols_add(da.data(), db.data(), gf.data(), M, D, nullptr);
        expect_same("split columns (a +=)", da, da_want);
        expect_same("split columns (b +=)", db, db_want);
    }
    {
        const int64_t rows = 5, width = 301;
        std::vector<std::vector<float>> bufs(rows, std::vector<float>(width + 2, NAN));
        std::vector<float *> ptrs;
        for (auto &buf : bufs) ptrs.push_back(buf.data() + 1);
        cuda::scatter_rows(ptrs.data(), af.data(), rows, width, nullptr);
        std::vector<float> got, want;  // every buffer, with the element before and after its row
        for (int64_t r = 0; r < rows; ++r) {
            got.insert(got.end(), bufs[r].begin(), bufs[r].end());
            want.push_back(NAN);
            want.insert(want.end(), af.begin() + r * width, af.begin() + (r + 1) * width);
            want.push_back(NAN);
        }
        expect_same("scatter rows", got, want);
        std::vector<float> back(rows * width, NAN);
        cuda::gather_rows(back.data(), ptrs.data(), rows, width, nullptr);
        expect_same("gather rows", back, std::vector<float>(af.begin(), af.begin() + rows * width));
    }
}

// Sinusoidal positions and RoPE, forward and inverse, on stacked sequences
// (rows wider than the heads, blocks of rows apart).
void positions(void **) {
    std::mt19937_64 rng(20261205);
    {
        const int64_t n = 9, d = 33, p0 = 1000;
        const std::vector<double> x = random_values(rng, n * d);
        std::vector<double> want = x;
        cpu::sincos_add<double>(want.data(), n, d, p0);
        std::vector<float> got = floats(x);
        cuda::sincos_add(got.data(), n, d, p0, nullptr);
        expect_close("sincos positions from 1000:", got, want);
        // rows at positions of their own (streams of text decoded together)
        const std::vector<int64_t> at = {7, 0, 123456, 3, 3, 40, 1, 999, 2};
        want = x;
        for (int64_t r = 0; r < n; ++r) cpu::sincos_add<double>(want.data() + r * d, 1, d, at[static_cast<size_t>(r)]);
        got = floats(x);
        cuda::sincos_add(got.data(), n, d, 0, nullptr, at.data());
        expect_close("sincos positions of each row:", got, want);
    }
    for (bool inverse : {false, true}) {
        const int64_t n = 13, H = 3, hd = 10, ld = 2 * H * hd + 4, n_seq = 3, stride = n * ld + 7, t0 = 5;
        const double theta = 10000.0;
        const std::vector<double> x = random_values(rng, n_seq * stride);
        std::vector<double> want = x;
        for (int64_t z = 0; z < n_seq; ++z)
            cpu::rope<double>(want.data() + z * stride, n, ld, H, hd, t0, theta, inverse);
        std::vector<float> got = floats(x);
        cuda::rope(got.data(), n, ld, H, hd, t0, static_cast<float>(theta), inverse, n_seq, stride, nullptr);
        expect_close(inverse ? "rope inverse, 3 sequences:" : "rope, 3 sequences:", got, want);
    }
}

// The recurrent cells forward and backward (LSTM with and without the cell
// state's gradient from the next segment).
void cells(void **) {
    std::mt19937_64 rng(20261206);
    const int64_t M = 5, D = 37;
    struct Case {
        CellKind kind;
        bool dc_out;
    };
    const Case cases[] = {{CellKind::gru, false}, {CellKind::lstm, false}, {CellKind::lstm, true},
                          {CellKind::minimal, false}};
    for (const Case &c : cases) {
        const int64_t G = c.kind == CellKind::gru ? 3 : c.kind == CellKind::lstm ? 4 : 2;
        const bool lstm = c.kind == CellKind::lstm, two = c.kind != CellKind::minimal;
        const std::vector<double> gi = random_values(rng, M * G * D), gh = random_values(rng, M * G * D),
                                  h = random_values(rng, M * D), c_in = random_values(rng, M * D),
                                  dm = random_values(rng, M * D), dc_out = random_values(rng, M * D),
                                  dh0 = random_values(rng, M * D);
        std::vector<double> m_out(M * D), c_out(M * D), dgi(M * G * D), dgh(M * G * D), dh = dh0, dc_in(M * D);
        cpu::cell_forward<double>(c.kind, m_out.data(), lstm ? c_out.data() : nullptr, lstm ? c_in.data() : nullptr,
                                  gi.data(), two ? gh.data() : nullptr, h.data(), M, D);
        cpu::cell_backward<double>(c.kind, dgi.data(), two ? dgh.data() : nullptr, dh.data(),
                                   lstm ? dc_in.data() : nullptr, dm.data(), c.dc_out ? dc_out.data() : nullptr,
                                   lstm ? c_in.data() : nullptr, gi.data(), two ? gh.data() : nullptr, h.data(), M, D);
        const std::vector<float> gif = floats(gi), ghf = floats(gh), hf = floats(h), c_inf = floats(c_in),
                                 dmf = floats(dm), dc_outf = floats(dc_out);
        std::vector<float> m_outf(M * D, NAN), c_outf(M * D, NAN), dgif(M * G * D, NAN), dghf(M * G * D, NAN),
            dhf = floats(dh0), dc_inf(M * D, NAN);
        cuda::cell_forward(c.kind, m_outf.data(), lstm ? c_outf.data() : nullptr, lstm ? c_inf.data() : nullptr,
                           gif.data(), two ? ghf.data() : nullptr, hf.data(), M, D, nullptr);
        std::vector<uint16_t> dgi16(M * G * D, 0xffff), dgh16(M * G * D, 0xffff);
        cuda::cell_backward(c.kind, dgif.data(), two ? dghf.data() : nullptr, dhf.data(), lstm ? dc_inf.data() : nullptr,
                            dmf.data(), c.dc_out ? dc_outf.data() : nullptr, lstm ? c_inf.data() : nullptr, gif.data(),
                            two ? ghf.data() : nullptr, hf.data(), M, D, dgi16.data(), two ? dgh16.data() : nullptr,
                            nullptr);
        const std::string name = std::string(c.kind == CellKind::gru ? "gru" : lstm ? "lstm" : "minimal") +
                                 (c.dc_out ? " (dc from the next segment)" : "");
        expect_close((name + " memory:").c_str(), m_outf, m_out);
        if (lstm) expect_close((name + " cell:").c_str(), c_outf, c_out);
        expect_close((name + " dgi:").c_str(), dgif, dgi);
        expect_copy((name + " dgi's bf16 copy").c_str(), dgi16, dgif);
        if (two) expect_close((name + " dgh:").c_str(), dghf, dgh);
        if (two) expect_copy((name + " dgh's bf16 copy").c_str(), dgh16, dghf);
        expect_close((name + " dh:").c_str(), dhf, dh);
        if (lstm) expect_close((name + " dc_in:").c_str(), dc_inf, dc_in);
    }
}

// Cross-entropy rows (a vocabulary wider than a block, a row without a target),
// into another buffer and in place (with the gradient's bf16 copy, as training
// runs it); the loss adds to what the accumulator held.
void cross_entropy(void **) {
    std::mt19937_64 rng(20261207);
    const int64_t rows = 6, V = 1000;
    const std::vector<int32_t> targets = {3, 999, -1, 0, 512, 7};
    std::vector<double> logits = random_values(rng, rows * V);
    for (double &x : logits) x = static_cast<float>(x * 4.0);
    for (bool in_place : {false, true}) {
        const double scale = 0.125;
        std::vector<double> d(rows * V);
        const double loss = cpu::cross_entropy<double>(d.data(), logits.data(), targets.data(), rows, V, scale);
        std::vector<float> lf = floats(logits), df(rows * V, NAN);
        double acc = 2.5;
        std::vector<uint16_t> d16(rows * V, 0xffff);
        const float scale_on_device = static_cast<float>(scale);
        cuda::cross_entropy(in_place ? lf.data() : df.data(), lf.data(), targets.data(), rows, V, &scale_on_device,
                            &acc, in_place ? d16.data() : nullptr, nullptr);
        expect_close(in_place ? "cross-entropy gradient, in place:" : "cross-entropy gradient:", in_place ? lf : df, d);
        if (in_place) expect_copy("cross-entropy gradient's bf16 copy", d16, lf);
        const double e = std::fabs((acc - 2.5) - loss) / std::fabs(loss);
        print_message("emulated CUDA %-44s %.2e\n", "cross-entropy loss:", e);
        if (!(e < 1e-6)) fail_msg("cross-entropy loss %.9g, the CPU's %.9g", acc - 2.5, loss);
    }
}

// A training step's update as the backend queues it: the gradients' sum of
// squares over a table of tensors cut in chunks, the clip scale, AdamW over the
// same table (its own decay per tensor, a bf16 shadow on one), then the adds of
// a lane's gradients; against the CPU's sum of squares and AdamW per tensor. A
// gradient that is not finite makes the scale NaN, and AdamW changes nothing.
void optimiser(void **) {
    std::mt19937_64 rng(20261208);
    const int64_t sizes[] = {2 * cuda::kMultiChunk + 5, 3, cuda::kMultiChunk, 1000};
    const size_t T = std::size(sizes);
    std::vector<std::vector<float>> p(T), m(T), v(T), g(T);
    std::vector<std::vector<uint16_t>> shadow(T);
    for (size_t t = 0; t < T; ++t) {
        p[t] = floats(random_values(rng, sizes[t]));
        m[t] = floats(random_values(rng, sizes[t]));
        v[t] = floats(random_values(rng, sizes[t]));
        for (float &x : v[t]) x = std::fabs(x);
        g[t] = floats(random_values(rng, sizes[t]));
        shadow[t].assign(static_cast<size_t>(sizes[t]), 0xffff);
    }
    const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, grad_scale = 0.5f, clip = 100.0f;
    const float decays[] = {1.0f - lr * 0.1f, 1.0f, 1.0f - lr * 0.01f, 1.0f};
    const float step_size = lr / (1.0f - beta1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - beta2));
    for (bool finite : {true, false}) {
        if (!finite) g[3][10] = INFINITY;
        std::vector<cuda::MultiTensor> ts;
        for (size_t t = 0; t < T; ++t)
            ts.push_back({p[t].data(), m[t].data(), v[t].data(), g[t].data(), t == 2 ? shadow[t].data() : nullptr,
                          sizes[t], decays[t]});
        std::vector<cuda::MultiChunk> chunks;
        cuda::multi_chunks(ts, chunks);
        assert_int_equal(chunks.size(), 3 + 1 + 1 + 1);
        double sum = 0;
        for (size_t t = 0; t < T; ++t) sum += cpu::sum_squares(g[t].data(), sizes[t]);
        const double norm = std::sqrt(sum) * grad_scale;
        const float scale = update_scale_of(norm, grad_scale, clip);
        auto wp = p, wm = m, wv = v;
        auto wshadow = shadow;
        if (finite)
            for (size_t t = 0; t < T; ++t)
                cpu::adamw(wp[t].data(), wm[t].data(), wv[t].data(), g[t].data(), sizes[t], scale, beta1, beta2, eps,
                           decays[t], step_size, inv_sqrt_bc2, t == 2 ? wshadow[t].data() : nullptr);

        double acc[4] = {7.0, 0.0, NAN, NAN};
        const int64_t n_chunks = static_cast<int64_t>(chunks.size());
        cuda::sum_squares_many(ts.data(), chunks.data(), n_chunks, acc + 1, nullptr);
        const double e_sum = std::fabs(acc[1] - sum) / sum;
        cuda::update_scale(acc, grad_scale, clip, nullptr);
        float got_scale;
        std::memcpy(&got_scale, acc + 3, sizeof got_scale);
        assert_true(acc[0] == 7.0 && acc[1] == 0.0);  // the loss untouched, the sum taken
        if (finite) {
            print_message("emulated CUDA %-44s %.2e\n", "sum of squares (6 chunks of 4 tensors):", e_sum);
            if (!(e_sum < 1e-12)) fail_msg("sum of squares %.17g, the CPU's %.17g", acc[1], sum);
            assert_true(std::fabs(acc[2] - norm) <= 1e-12 * norm);
            assert_true(got_scale == scale);
        } else {
            assert_true(std::isinf(acc[2]) && std::isnan(got_scale));
        }
        cuda::adamw_many(ts.data(), chunks.data(), n_chunks, beta1, beta2, eps, step_size, inv_sqrt_bc2, &got_scale,
                         nullptr);
        for (size_t t = 0; t < T; ++t) {
            char what[64];
            std::snprintf(what, sizeof what, "adamw_many tensor %zu (%lld)%s:", t, (long long)sizes[t],
                          finite ? "" : ", scale NaN");
            const std::vector<double> want(wp[t].begin(), wp[t].end());
            expect_close(what, p[t], want, 1e-6);
            expect_close("  its first moment:", m[t], std::vector<double>(wm[t].begin(), wm[t].end()), 1e-6);
            expect_close("  its second moment:", v[t], std::vector<double>(wv[t].begin(), wv[t].end()), 1e-6);
            if (t == 2) {
                std::vector<uint16_t> want_shadow(p[t].size());
                cpu::to_bf16(want_shadow.data(), p[t].data(), sizes[t]);
                expect_same("  its bf16 shadow:", shadow[t], finite ? want_shadow : wshadow[t]);
            }
            p[t] = wp[t], m[t] = wm[t], v[t] = wv[t];  // both sides go on from the same values
        }
    }
    g[3][10] = 1.0f;
    // One tensor alone (adamw), then a lane's gradients added (add_many).
    {
        const float one = 1.0f;
        std::vector<float> wp = p[0], wm = m[0], wv = v[0];
        cpu::adamw(wp.data(), wm.data(), wv.data(), g[0].data(), sizes[0], one, beta1, beta2, eps, decays[0],
                   step_size, inv_sqrt_bc2, nullptr);
        cuda::adamw(p[0].data(), m[0].data(), v[0].data(), g[0].data(), static_cast<size_t>(sizes[0]), beta1, beta2,
                    eps, decays[0], step_size, inv_sqrt_bc2, &one, nullptr, nullptr);
        expect_close("adamw, one tensor:", p[0], std::vector<double>(wp.begin(), wp.end()), 1e-6);
    }
    {
        std::vector<cuda::MultiTensor> ts;
        std::vector<std::vector<float>> want = p;
        for (size_t t = 0; t < T; ++t) {
            ts.push_back({p[t].data(), nullptr, nullptr, g[t].data(), nullptr, sizes[t], 0.0f});
            for (int64_t i = 0; i < sizes[t]; ++i) want[t][i] += g[t][i];
        }
        std::vector<cuda::MultiChunk> chunks;
        cuda::multi_chunks(ts, chunks);
        cuda::add_many(ts.data(), chunks.data(), static_cast<int64_t>(chunks.size()), nullptr);
        std::vector<float> got_all, want_all;
        for (size_t t = 0; t < T; ++t) {
            got_all.insert(got_all.end(), p[t].begin(), p[t].end());
            want_all.insert(want_all.end(), want[t].begin(), want[t].end());
        }
        expect_same("add_many", got_all, want_all);
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(norms),     cmocka_unit_test(column_sums),
                                       cmocka_unit_test(embedding), cmocka_unit_test(elementwise),
                                       cmocka_unit_test(positions), cmocka_unit_test(cells),
                                       cmocka_unit_test(cross_entropy), cmocka_unit_test(optimiser)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
