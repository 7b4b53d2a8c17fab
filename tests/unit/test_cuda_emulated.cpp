// The CUDA backend's attention kernels on CPU threads (cuda_emulation.h), against
// the CPU backend's double kernels (themselves checked by finite differences in
// test_op_gradients): the fused kernels (fused_attention.cuh) forward and
// backward on every shape class the GPU tests use (blocks cut short, one decoding
// row, memory rows that see every key, GQA, key rows wider than the heads,
// dropout, head sizes 8 to 128); the tensor-core kernels of bf16 streams
// (tensor_attention.cuh; bf16 and WMMA are written for the host in
// cuda_emulation.h: each lane holds a whole fragment, and the warp meets at a
// barrier around each WMMA call) on bf16-rounded inputs; the kernel of sessions
// decoded together (rows over caches of their own), also read only for one query
// row; the product with 16-bit weights for few rows (half_kernels.cuh); and
// attention and pooling through the products (products.h: the cuBLAS calls
// through a reference product, the softmax rows through the CUDA kernels). This
// runs without a GPU, so CI checks the kernels' arithmetic and indexing.
#include "cuda_emulation.h"

using namespace rmkv;

namespace {

struct AttentionCase {
    int64_t nq, nk, visible0, H, Hkv, hd;
    bool interleaved;  // k and v in one row of 2 x Hkv x hd
    float p;           // dropout
    int64_t n_seq;     // sequences stacked in one launch (blockIdx.z), each with its own dropout
};

// One case of the fused kernels (tensor_cores: those of tensor_attention.cuh, on
// inputs rounded to bf16, so that only the kernels' own rounding is left: the
// probabilities and score gradients to bf16, a relative step of 2^-8) forward and
// backward against the CPU backend's double kernels. Each sequence's key rows lie
// in a block of nk + 3 rows (the cache blocks of training are longer than the
// keys a call sees); its rows of q follow the last's.
void check_attention(const AttentionCase &c, std::mt19937_64 &rng, bool tensor_cores, double tol) {
    auto randf = [&](int64_t n) {
        std::vector<double> v = random_values(rng, n);
        if (tensor_cores)
            for (double &x : v) x = __bfloat162float(__float2bfloat16_rn(static_cast<float>(x)));
        return v;
    };
    auto to_float = [](const std::vector<double> &v) { return std::vector<float>(v.begin(), v.end()); };
    const int64_t D = c.H * c.hd, kvw = c.Hkv * c.hd, ldkv = c.interleaved ? 2 * kvw : kvw;
    const int64_t kvs = (c.nk + 3) * ldkv, Z = c.n_seq, qs = c.nq * D;
    std::vector<Dropout> drops;
    for (int64_t z = 0; z < Z; ++z) drops.push_back({c.p, 0xfeedull + static_cast<uint64_t>(c.nq + 977 * z)});
    std::vector<double> q = randf(Z * qs), kv = randf(Z * kvs), vrows = randf(Z * kvs), dout = randf(Z * qs);
    const std::vector<double> dk0 = random_values(rng, Z * kvs), dv0 = random_values(rng, Z * kvs);
    const int64_t voff = c.interleaved ? kvw : 0;
    const std::vector<double> &vsrc = c.interleaved ? kv : vrows;
    std::vector<double> out(q.size()), dq(q.size()), dk = dk0, dv = dv0;
    for (int64_t z = 0; z < Z; ++z) {
        const double *k = kv.data() + z * kvs, *v = vsrc.data() + z * kvs + voff;
        cpu::attention_forward<double>(out.data() + z * qs, q.data() + z * qs, k, v, c.nq, c.nk, ldkv, c.H, c.Hkv,
                                       c.hd, c.visible0, drops[z]);
        cpu::attention_backward<double>(dq.data() + z * qs, dk.data() + z * kvs, dv.data() + z * kvs,
                                        dout.data() + z * qs, q.data() + z * qs, k, v, c.nq, c.nk, ldkv, c.H, c.Hkv,
                                        c.hd, c.visible0, drops[z]);
    }

    std::vector<float> qf = to_float(q), kvf = to_float(kv), vrowsf = to_float(vrows), doutf = to_float(dout);
    std::vector<float> outf(q.size(), NAN), dqf(q.size(), NAN), dkf = to_float(dk0), dvf = to_float(dv0);
    std::vector<uint16_t> out16(q.size(), 0xffff);  // the output's bf16 copy (0xffff: a NaN, never written)
    const float *kf = kvf.data(), *vf = (c.interleaved ? kvf.data() : vrowsf.data()) + voff;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    const Dropout *fd = drops.data();  // (device memory is host memory here)
    const int64_t tile = tensor_cores ? cuda::kTcQ : cuda::kFusedQ;
    const dim3 grid{static_cast<unsigned>((c.nq + tile - 1) / tile), static_cast<unsigned>(c.H), static_cast<unsigned>(Z)};
    const int group = static_cast<int>(c.H / c.Hkv);
    if (tensor_cores) {
        launch(grid, cuda::kTcThreads, cuda::tc_smem(c.hd, false).total, [&] {
            cuda::k_tc_attention(outf.data(), out16.data(), qf.data(), kf, vf, c.nq, c.nk, ldkv, group, c.hd, c.visible0, scale, kvs, fd);
        });
        launch(grid, cuda::kTcThreads, cuda::tc_smem(c.hd, true).total, [&] {
            cuda::k_tc_attention_backward(dqf.data(), dkf.data(), dvf.data(), doutf.data(), qf.data(), kf, vf, c.nq, c.nk,
                                          ldkv, group, c.hd, c.visible0, scale, kvs, fd);
        });
    } else {
        const int threads = cuda::kFusedWarps * 32;
        launch(grid, threads, cuda::fused_smem_floats(c.hd, c.nk, false), [&] {
            cuda::k_fused_attention(outf.data(), out16.data(), qf.data(), kf, vf, c.nq, c.nk, ldkv, group, c.hd, c.visible0, scale, kvs,
                                    fd);
        });
        launch(grid, threads, cuda::fused_smem_floats(c.hd, c.nk, true), [&] {
            cuda::k_fused_attention_backward(dqf.data(), dkf.data(), dvf.data(), doutf.data(), qf.data(), kf, vf, c.nq,
                                             c.nk, ldkv, group, c.hd, c.visible0, scale, kvs, fd);
        });
    }
    for (size_t i = 0; i < outf.size(); ++i)
        if (out16[i] != bf16_bits(outf[i]))
            fail_msg("out16[%zu] = %#x, not the bf16 bits of out (%g)", i, unsigned{out16[i]}, double{outf[i]});
    // dk and dv against what the kernels added (the starting values cancel).
    for (size_t i = 0; i < dk.size(); ++i) dk[i] -= dk0[i], dkf[i] -= static_cast<float>(dk0[i]);
    for (size_t i = 0; i < dv.size(); ++i) dv[i] -= dv0[i], dvf[i] -= static_cast<float>(dv0[i]);
    const char *names[4] = {"out", "dq", "dk", "dv"};
    const std::vector<float> *got[4] = {&outf, &dqf, &dkf, &dvf};
    const std::vector<double> *want[4] = {&out, &dq, &dk, &dv};
    for (int t = 0; t < 4; ++t) {
        const double worst = worst_error(*got[t], *want[t]);
        print_message("emulated CUDA %s attention %-3s nq %3lld nk %3lld hd %3lld H %lld/%lld dropout %.2f x%lld: %.2e\n",
                      tensor_cores ? "tensor-core" : "fused", names[t], (long long)c.nq, (long long)c.nk,
                      (long long)c.hd, (long long)c.H, (long long)c.Hkv, c.p, (long long)Z, worst);
        if (!(worst < tol)) fail_msg("%s differs from the CPU kernel by %g of its largest value", names[t], worst);
    }
}

void fused_attention(void **) {
    const AttentionCase cases[] = {
        {5, 12, 7, 4, 2, 16, true, 0.0f, 1},      // few rows, GQA, k and v in one wide row
        {40, 56, 16, 4, 1, 32, true, 0.3f, 1},    // two blocks, the second short; one kv head; dropout
        {1, 30, 29, 2, 2, 64, false, 0.0f, 1},    // decoding: one row sees every key
        {24, 24, 0, 2, 2, 8, false, 0.0f, 1},     // pure causal, head size 8
        {33, 40, 7, 8, 2, 8, true, 0.1f, 1},      // groups of 4 query heads
        {70, 90, 20, 2, 1, 128, true, 0.1f, 1},   // head size 128: four 32-lane columns
        {33, 45, 12, 3, 3, 48, false, 0.0f, 1},   // head size 48: columns cut short
        {65, 80, 15, 2, 2, 16, false, 0.2f, 1},   // three blocks
        {16, 40, 40, 8, 8, 48, false, 0.0f, 1},   // memory rows: every key visible
        {40, 60, 200, 2, 1, 64, true, 0.2f, 1},   // memory rows past the keys (visible0 > nk), two blocks
        {20, 28, 8, 4, 2, 16, true, 0.25f, 3},    // three stacked sequences: token rows, GQA, dropout
        {8, 30, 30, 2, 2, 32, false, 0.1f, 4},    // four stacked sequences' memory rows
    };
    std::mt19937_64 rng(20261123);
    for (const AttentionCase &c : cases) check_attention(c, rng, false, 1e-5);
}

constexpr double kTolTensorAttention = 1e-2;  // measured: at most 3.5e-3

void tensor_attention(void **) {
    const AttentionCase cases[] = {
        {5, 12, 7, 4, 2, 16, true, 0.0f, 1},       // few rows, GQA, k and v in one wide row
        {70, 150, 80, 2, 1, 32, true, 0.3f, 1},    // two query tiles, three key tiles (online softmax), dropout
        {1, 30, 29, 2, 2, 64, false, 0.0f, 1},     // one row sees every key
        {130, 130, 0, 2, 2, 16, false, 0.0f, 1},   // pure causal over three query tiles
        {33, 100, 67, 8, 2, 48, true, 0.1f, 1},    // groups of 4 query heads, head size 48
        {70, 90, 20, 2, 1, 128, true, 0.1f, 1},    // head size 128
        {16, 70, 200, 4, 4, 64, false, 0.0f, 1},   // memory rows past the keys: every key visible
        {20, 84, 64, 4, 2, 16, true, 0.25f, 3},    // three stacked sequences: token rows, GQA, dropout
        {8, 30, 30, 2, 2, 32, false, 0.1f, 4},     // four stacked sequences' memory rows
    };
    std::mt19937_64 rng(20261124);
    for (const AttentionCase &c : cases) check_attention(c, rng, true, kTolTensorAttention);
    // The element-wise phases' order of columns (tc_column): at each step, the 32
    // threads of a warp read 32 different banks of the fp32 score tiles, for the
    // row stride of every head size.
    for (int64_t hd = 16; hd <= cuda::kTcMaxHd; hd += 16) {
        const int64_t lds = cuda::tc_smem(hd, false).lds;
        for (int warp = 0; warp < cuda::kTcWarps; ++warp)
            for (int i = 0; i < 32; ++i) {
                unsigned banks = 0;
                for (int lane = 0; lane < 32; ++lane) {
                    const int t = warp * 32 + lane;
                    banks |= 1u << static_cast<unsigned>(((t >> 1) * lds + cuda::tc_column(t, i)) % 32);
                }
                if (banks != 0xffffffffu) fail_msg("hd %lld: warp %d step %d shares a bank", (long long)hd, warp, i);
            }
    }
}

// k_decode_attention against the CPU backend's double kernels run row after row
// (rope, then attention over the cache with the new row in it), as the seam's
// default decode_attention does: out, q rotated in place, the cache rows the new
// keys and values take, and every other cache row left as it was.
void decode_attention(void **) {
    struct Case {
        int64_t H, Hkv, hd;
        bool rope;
        std::vector<int64_t> at;  // each row's cache row (its cache has at + 3 rows)
    };
    const Case cases[] = {
        {4, 2, 16, true, {7, 0, 30}},            // GQA; a row whose cache is empty before it
        {2, 2, 64, true, {40}},                  // one row, two column groups
        {8, 2, 8, false, {3, 19, 5, 11, 60}},    // groups of 4 query heads, head size 8 (16 column groups), no RoPE
        {2, 1, 128, true, {300, 1}},             // head size 128: one column group; long cache
        {3, 3, 48, true, {25, 26}},              // head size 48: 2 groups of 48, 32 threads idle
        {4, 4, 32, true, {129, 128, 127, 255}},  // keys past one pass of the threads
    };
    std::mt19937_64 rng(20261124);
    const float theta = 10000.0f;
    for (const Case &c : cases) {
        const int64_t n = static_cast<int64_t>(c.at.size()), D = c.H * c.hd, Dkv = c.Hkv * c.hd;
        const std::vector<double> q = random_values(rng, n * D), k = random_values(rng, n * Dkv),
                                  v = random_values(rng, n * Dkv);
        std::vector<std::vector<double>> keys, values;
        std::vector<int64_t> pos;
        for (int64_t i = 0; i < n; ++i) {
            keys.push_back(random_values(rng, (c.at[i] + 3) * Dkv));
            values.push_back(random_values(rng, (c.at[i] + 3) * Dkv));
            pos.push_back(static_cast<int64_t>(rng() % 2000));
        }
        // The reference, in double.
        std::vector<double> out(static_cast<size_t>(n * D)), qr = q;
        std::vector<std::vector<double>> keys_r = keys, values_r = values;
        for (int64_t i = 0; i < n; ++i) {
            double *key = keys_r[i].data() + c.at[i] * Dkv;
            std::copy(k.begin() + i * Dkv, k.begin() + (i + 1) * Dkv, key);
            std::copy(v.begin() + i * Dkv, v.begin() + (i + 1) * Dkv, values_r[i].data() + c.at[i] * Dkv);
            if (c.rope) {
                cpu::rope<double>(qr.data() + i * D, 1, D, c.H, c.hd, pos[i], theta, false);
                cpu::rope<double>(key, 1, Dkv, c.Hkv, c.hd, pos[i], theta, false);
            }
            cpu::attention_forward<double>(out.data() + i * D, qr.data() + i * D, keys_r[i].data(), values_r[i].data(),
                                           1, c.at[i] + 1, Dkv, c.H, c.Hkv, c.hd, c.at[i], Dropout{});
        }
        // The kernel, on float copies (NaN in out, so a row not written shows).
        auto to_float = [](const std::vector<double> &x) { return std::vector<float>(x.begin(), x.end()); };
        std::vector<float> qf = to_float(q), kf = to_float(k), vf = to_float(v), outf(out.size(), NAN);
        std::vector<std::vector<float>> keys_f, values_f;
        std::vector<CacheRow> rows;
        int64_t max_nv = 0;
        for (int64_t i = 0; i < n; ++i) {
            keys_f.push_back(to_float(keys[i]));
            values_f.push_back(to_float(values[i]));
            rows.push_back({keys_f[i].data(), values_f[i].data(), c.at[i], pos[i]});
            max_nv = std::max(max_nv, c.at[i] + 1);
        }
        // Last block first: a kv group's readers run before the block that writes its
        // new cache row, so reading that row from the cache (not the block's own
        // copy) would show.
        launch(
            dim3{static_cast<unsigned>(n), static_cast<unsigned>(c.H), 1}, cuda::kDecodeThreads,
            cuda::decode_smem_floats(c.hd, max_nv),
            [&] {
                cuda::k_decode_attention(outf.data(), qf.data(), kf.data(), vf.data(), rows.data(), CacheRow{},
                                         c.H / c.Hkv, c.hd, c.rope, theta, 1.0f / std::sqrt(static_cast<float>(c.hd)),
                                         true);
            },
            true);
        double worst_cache = 0;
        for (int64_t i = 0; i < n; ++i) {
            worst_cache = std::max({worst_cache, worst_error(keys_f[i], keys_r[i]), worst_error(values_f[i], values_r[i])});
            for (int64_t j = 0; j < (c.at[i] + 3) * Dkv; ++j) {
                if (j / Dkv == c.at[i]) continue;
                if (keys_f[i][j] != static_cast<float>(keys[i][j]) || values_f[i][j] != static_cast<float>(values[i][j]))
                    fail_msg("row %lld: cache row %lld changed", (long long)i, (long long)(j / Dkv));
            }
        }
        const double worst_out = worst_error(outf, out), worst_q = worst_error(qf, qr);
        print_message("emulated CUDA decode attention rows %lld hd %3lld H %lld/%lld rope %d: out %.2e q %.2e cache %.2e\n",
                      (long long)n, (long long)c.hd, (long long)c.H, (long long)c.Hkv, c.rope ? 1 : 0, worst_out, worst_q,
                      worst_cache);
        if (!(worst_out < 1e-5 && worst_q < 1e-5 && worst_cache < 1e-5))
            fail_msg("decode attention differs from the CPU kernels: out %g, q %g, cache %g", worst_out, worst_q,
                     worst_cache);

        // Read-only, one row passed by value (the CUDA backend's attention of one
        // query row): the last row's rotated q over its cache as the reference left
        // it, whose row `at` holds the new key and value; q and the cache unchanged.
        const int64_t i = n - 1, at = c.at[i];
        const std::vector<float> q1(qr.begin() + i * D, qr.begin() + (i + 1) * D);
        const std::vector<float> keys1 = to_float(keys_r[i]), values1 = to_float(values_r[i]);
        std::vector<float> qc = q1, kc = keys1, vc = values1, out1(static_cast<size_t>(D), NAN);
        const CacheRow single{kc.data(), vc.data(), at, 0};
        launch(dim3{1, static_cast<unsigned>(c.H), 1}, cuda::kDecodeThreads, cuda::decode_smem_floats(c.hd, at + 1), [&] {
            cuda::k_decode_attention(out1.data(), qc.data(), kc.data() + at * Dkv, vc.data() + at * Dkv, nullptr, single,
                                     c.H / c.Hkv, c.hd, false, theta, 1.0f / std::sqrt(static_cast<float>(c.hd)), false);
        });
        const double worst_one = worst_error(out1, std::vector<double>(out.begin() + i * D, out.begin() + (i + 1) * D));
        print_message("emulated CUDA one-row attention hd %3lld H %lld/%lld keys %lld: out %.2e\n", (long long)c.hd,
                      (long long)c.H, (long long)c.Hkv, (long long)(at + 1), worst_one);
        if (!(worst_one < 1e-5)) fail_msg("one-row attention differs from the CPU kernel: %g", worst_one);
        if (qc != q1 || kc != keys1 || vc != values1) fail_msg("one-row attention wrote to q or the cache");
    }
}

// The CUDA backend's attention and pooling through batched products
// (products.h: its cuBLAS calls, in order and with their arguments) run through a
// column-major reference product and the CUDA softmax kernels, against the CPU's
// double kernels.
struct EmulatedProductOps {
    int64_t calls = 0;
    void batched(cuda::Op ta, cuda::Op tb, int64_t m, int64_t n, int64_t k, const float *A, int64_t lda, int64_t sa,
                 const float *B, int64_t ldb, int64_t sb, float *C, int64_t ldc, int64_t sc, int64_t batch,
                 bool accumulate) {
        ++calls;
        if (ldc < m || lda < (ta == cuda::Op::N ? m : k) || ldb < (tb == cuda::Op::N ? k : n))
            fail_msg("product %lld: a leading dimension below its rows", (long long)calls);
        for (int64_t b = 0; b < batch; ++b) {
            const float *Ab = A + b * sa, *Bb = B + b * sb;
            float *Cb = C + b * sc;
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < n; ++j) {
                    double sum = 0;
                    for (int64_t l = 0; l < k; ++l)
                        sum += static_cast<double>(ta == cuda::Op::N ? Ab[i + l * lda] : Ab[l + i * lda]) *
                               (tb == cuda::Op::N ? Bb[l + j * ldb] : Bb[j + l * ldb]);
                    Cb[i + j * ldc] = static_cast<float>(sum + (accumulate ? Cb[i + j * ldc] : 0.0));
                }
        }
    }
    void softmax(float *P, int64_t heads, int64_t nq, int64_t nk, int64_t visible0, float scale, const Dropout &drop,
                 bool apply_drop) {
        cuda::attention_softmax(P, heads, nq, nk, visible0, scale, drop.on() ? &drop : nullptr, apply_drop, nullptr);
    }
    void softmax_backward(float *P, float *dP, int64_t heads, int64_t nq, int64_t nk, int64_t visible0, float scale,
                          const Dropout &drop) {
        cuda::attention_softmax_backward(P, dP, heads, nq, nk, visible0, scale, drop.on() ? &drop : nullptr, nullptr);
    }
};

// Attention through the products: GQA, key rows wider than the heads (k and v in
// one row), memory rows, dropout; out, dq, dk (+=), dv (+=).
void attention_products(void **) {
    struct Case {
        int64_t nq, nk, visible0, H, Hkv, hd;
        bool interleaved;
        float p;
    };
    const Case cases[] = {
        {5, 12, 7, 4, 2, 16, true, 0.0f}, {40, 56, 16, 4, 1, 8, false, 0.3f}, {9, 30, 30, 2, 2, 12, false, 0.0f},
        {33, 40, 7, 8, 2, 8, true, 0.1f},
    };
    std::mt19937_64 rng(20261126);
    auto to_float = [](const std::vector<double> &x) { return std::vector<float>(x.begin(), x.end()); };
    for (const Case &c : cases) {
        const int64_t D = c.H * c.hd, kvw = c.Hkv * c.hd, ldkv = c.interleaved ? 2 * kvw : kvw;
        const Dropout drop{c.p, 0xabcdull + static_cast<uint64_t>(c.nq)};
        const std::vector<double> q = random_values(rng, c.nq * D), kv = random_values(rng, c.nk * ldkv),
                                  vrows = random_values(rng, c.nk * ldkv), dout = random_values(rng, c.nq * D),
                                  dk0 = random_values(rng, c.nk * ldkv), dv0 = random_values(rng, c.nk * ldkv);
        const double *k = kv.data(), *v = c.interleaved ? kv.data() + kvw : vrows.data();
        std::vector<double> out(q.size()), dq(q.size()), dk = dk0, dv = dv0;
        cpu::attention_forward<double>(out.data(), q.data(), k, v, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0, drop);
        cpu::attention_backward<double>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k, v, c.nq, c.nk, ldkv,
                                        c.H, c.Hkv, c.hd, c.visible0, drop);
        const std::vector<float> qf = to_float(q), kvf = to_float(kv), vrowsf = to_float(vrows), doutf = to_float(dout);
        std::vector<float> outf(q.size(), NAN), dqf(q.size(), NAN), dkf = to_float(dk0), dvf = to_float(dv0);
        std::vector<float> P(c.H * c.nq * c.nk, NAN), dP(P.size(), NAN);
        const float *kf = kvf.data(), *vf = c.interleaved ? kvf.data() + kvw : vrowsf.data();
        const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
        EmulatedProductOps ops;
        cuda::attention_forward_products(ops, P.data(), outf.data(), qf.data(), kf, vf, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd,
                                         c.visible0, scale, drop);
        std::fill(P.begin(), P.end(), NAN);
        cuda::attention_backward_products(ops, P.data(), dP.data(), dqf.data(), dkf.data(), dvf.data(), doutf.data(),
                                          qf.data(), kf, vf, c.nq, c.nk, ldkv, c.H, c.Hkv, c.hd, c.visible0, scale, drop);
        const double e_out = worst_error(outf, out), e_dq = worst_error(dqf, dq), e_dk = worst_error(dkf, dk),
                     e_dv = worst_error(dvf, dv);
        print_message("emulated CUDA attention products nq %lld nk %lld hd %lld H %lld/%lld dropout %.1f: out %.2e dq "
                      "%.2e dk %.2e dv %.2e\n",
                      (long long)c.nq, (long long)c.nk, (long long)c.hd, (long long)c.H, (long long)c.Hkv, c.p, e_out,
                      e_dq, e_dk, e_dv);
        if (!(e_out < 1e-5 && e_dq < 1e-5 && e_dk < 1e-5 && e_dv < 1e-5))
            fail_msg("attention products differ from the CPU kernels: out %g, dq %g, dk %g, dv %g", e_out, e_dq, e_dk,
                     e_dv);
    }
}

// Pooling of stacked sequences through the products, against the CPU's double
// pooling sequence by sequence: out, dx (+=), dP (+=, summed over the sequences),
// and a frozen query (dP NULL).
void pool_products(void **) {
    struct Case {
        int64_t n_seq, M, T, D;
    };
    const Case cases[] = {{1, 4, 9, 8}, {3, 5, 11, 12}, {4, 8, 32, 16}};
    std::mt19937_64 rng(20261125);
    auto to_float = [](const std::vector<double> &x) { return std::vector<float>(x.begin(), x.end()); };
    for (const Case &c : cases) {
        const int64_t Z = c.n_seq, M = c.M, T = c.T, D = c.D;
        const std::vector<double> P = random_values(rng, M * D), x = random_values(rng, Z * T * D),
                                  dout = random_values(rng, Z * M * D), dx0 = random_values(rng, Z * T * D),
                                  dP0 = random_values(rng, M * D);
        std::vector<double> out(Z * M * D), dx = dx0, dP = dP0;
        for (int64_t i = 0; i < Z; ++i) {
            cpu::pool_forward<double>(out.data() + i * M * D, P.data(), x.data() + i * T * D, M, T, D);
            cpu::pool_backward<double>(dx.data() + i * T * D, dP.data(), dout.data() + i * M * D, P.data(),
                                       x.data() + i * T * D, M, T, D);
        }
        const std::vector<float> Pf = to_float(P), xf = to_float(x), doutf = to_float(dout);
        std::vector<float> S(Z * M * T, NAN), dS(Z * M * T, NAN), outf(Z * M * D, NAN), dxf = to_float(dx0),
                           dPf = to_float(dP0), dx_frozen = to_float(dx0);
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        EmulatedProductOps ops;
        cuda::pool_forward_products(ops, S.data(), outf.data(), Pf.data(), xf.data(), M, T, D, Z, scale);
        std::fill(S.begin(), S.end(), NAN);
        cuda::pool_backward_products(ops, S.data(), dS.data(), dxf.data(), dPf.data(), doutf.data(), Pf.data(), xf.data(),
                                     M, T, D, Z, scale);
        cuda::pool_backward_products(ops, S.data(), dS.data(), dx_frozen.data(), nullptr, doutf.data(), Pf.data(),
                                     xf.data(), M, T, D, Z, scale);
        const double e_out = worst_error(outf, out), e_dx = worst_error(dxf, dx), e_dP = worst_error(dPf, dP),
                     e_frozen = worst_error(dx_frozen, dx);
        print_message("emulated CUDA pooling products x%lld M %lld T %lld D %lld: out %.2e dx %.2e dP %.2e frozen dx %.2e\n",
                      (long long)Z, (long long)M, (long long)T, (long long)D, e_out, e_dx, e_dP, e_frozen);
        if (!(e_out < 1e-5 && e_dx < 1e-5 && e_dP < 1e-5 && e_frozen < 1e-5))
            fail_msg("pooling products differ from the CPU kernels: out %g, dx %g, dP %g, frozen dx %g", e_out, e_dx, e_dP,
                     e_frozen);
    }
}

// k_gemv_half (16-bit weights, few rows, exact) against double sums of the
// widened weights: both formats, 1 to 8 rows, widths that are no multiple of 32,
// a last block of W rows cut short, bias and accumulation; the f16 weights
// include subnormals, the bf16 ones values of every binade in use.
void gemv_half(void **) {
    std::mt19937_64 rng(20261124);
    std::normal_distribution<double> normal(0.0, 1.0);
    struct Case {
        int64_t n, in, out;
        Half h;
        bool bias, accumulate;
    };
    const Case cases[] = {{1, 64, 16, Half::bf16, false, false}, {3, 37, 13, Half::f16, true, false},
                          {8, 770, 21, Half::bf16, true, true},  {5, 100, 8, Half::f16, false, true},
                          {8, 32, 9, Half::f16, true, true},     {2, 1, 3, Half::bf16, false, false}};
    for (const Case &c : cases) {
        std::vector<uint16_t> W(static_cast<size_t>(c.out * c.in));
        for (size_t i = 0; i < W.size(); ++i) {
            const float v = static_cast<float>(normal(rng) * (i % 7 == 0 ? 1e-6 : 1.0));  // f16: some subnormal
            if (c.h == Half::bf16) {
                W[i] = bf16_bits(v);
            } else {
                uint16_t best = 0;  // the f16 nearest v, by search over the positive or negative halves
                double best_err = INFINITY;
                for (uint32_t u = v < 0 ? 0x8000u : 0u; u < (v < 0 ? 0xfc00u : 0x7c00u); ++u) {
                    const double e = std::fabs(static_cast<double>(half_value(static_cast<uint16_t>(u), Half::f16)) - v);
                    if (e < best_err) best_err = e, best = static_cast<uint16_t>(u);
                }
                W[i] = best;
            }
        }
        const std::vector<double> x = random_values(rng, c.n * c.in), b = random_values(rng, c.out),
                                  y0 = random_values(rng, c.n * c.out);
        std::vector<double> want(static_cast<size_t>(c.n * c.out));
        for (int64_t r = 0; r < c.n; ++r)
            for (int64_t o = 0; o < c.out; ++o) {
                double s = 0;
                for (int64_t i = 0; i < c.in; ++i) s += x[r * c.in + i] * half_value(W[o * c.in + i], c.h);
                want[r * c.out + o] = s + (c.bias ? b[o] : 0.0) + (c.accumulate ? y0[r * c.out + o] : 0.0);
            }
        const std::vector<float> xf(x.begin(), x.end()), bf(b.begin(), b.end());
        std::vector<float> y = c.accumulate ? std::vector<float>(y0.begin(), y0.end()) : std::vector<float>(y0.size(), NAN);
        y.push_back(12345.0f);  // a guard after y
        launch(dim3{static_cast<unsigned>((c.out + cuda::kGemvWarps - 1) / cuda::kGemvWarps), 1, 1}, cuda::kGemvWarps * 32,
               cuda::gemv_half_smem_floats(), [&] {
                   cuda::k_gemv_half(y.data(), xf.data(), W.data(), c.h, c.bias ? bf.data() : nullptr,
                                     static_cast<int>(c.n), c.in, c.out, c.accumulate);
               });
        assert_true(y.back() == 12345.0f);
        y.pop_back();
        const double worst = worst_error(y, want);
        print_message("emulated CUDA gemv_half %s rows %lld in %4lld out %3lld bias %d accumulate %d: %.2e\n",
                      c.h == Half::bf16 ? "bf16" : "f16 ", (long long)c.n, (long long)c.in, (long long)c.out, c.bias,
                      c.accumulate, worst);
        if (!(worst < 1e-6)) fail_msg("gemv_half differs from the double sums by %g of the largest value", worst);
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(fused_attention), cmocka_unit_test(tensor_attention),
                                       cmocka_unit_test(decode_attention),
                                       cmocka_unit_test(gemv_half), cmocka_unit_test(attention_products),
                                       cmocka_unit_test(pool_products)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
