/* rmkv.hpp, the header-only C++ wrapper: every class against the C calls it wraps,
   errors as rmkv::Error with status and message, moves and ownership. Built as
   C++17 and as C++20 (std::span overloads). */
#include <rmkv.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

// cmocka last: its macros (fail, ...) would clash with the standard headers.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

namespace {

const char *kConfig = R"({"d_model":32,"n_layers":2,"n_heads":2,"memory_slots":4,"segment_len":8})";

std::string tmp(const char *name) {
    const char *dir = std::getenv("RMKV_TEST_TMP");
    return std::string(dir ? dir : "/tmp") + "/cppw_" + std::to_string(::getpid()) + "_" + name;
}

rmkv::Tokenizer small_tokenizer() {
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    p.vocab_size = 300;
    return rmkv::Tokenizer::train_from_texts(
        {"The knight guards the gate of the old castle.\n", "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C the the the\n"}, p);
}

template <class F>
rmkv_status status_of(F &&f) {
    try {
        f();
    } catch (const rmkv::Error &e) {
        assert_true(!e.message().empty());
        assert_non_null(std::strstr(e.what(), e.message().c_str()));
        return e.status();
    }
    return RMKV_OK;
}

static_assert(!std::is_copy_constructible_v<rmkv::Model> && std::is_nothrow_move_constructible_v<rmkv::Model>);
static_assert(!std::is_copy_constructible_v<rmkv::Session> && std::is_move_constructible_v<rmkv::Session>);
static_assert(!std::is_copy_constructible_v<rmkv::Tokenizer>);

void tokenizer_and_stream(void **) {
    rmkv::Tokenizer tok = small_tokenizer();
    const std::string text = "The knight guards the gate";
    std::vector<int32_t> ids = tok.encode(text);
    assert_true(!ids.empty());
    assert_string_equal(tok.decode(ids).c_str(), text.c_str());
    int32_t end = tok.token_id("<end>");
    assert_true(end >= 0);
    assert_string_equal(tok.token_string(end).c_str(), "<end>");
    assert_int_equal(tok.token_id("no such token"), -1);
    assert_true(tok.vocab_size() > 256 && tok.vocab_size() <= 300);
    rmkv::Tokenizer again = rmkv::Tokenizer::from_json(tok.to_json());
    assert_true(again.encode(text) == ids);
    tok.save(tmp("tok.json"));
    assert_true(rmkv::Tokenizer::load(tmp("tok.json")).to_json() == tok.to_json());
    std::remove(tmp("tok.json").c_str());

    const std::string multi = "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C";
    std::vector<int32_t> mids = tok.encode(multi);
    rmkv::TokenStream stream = tok.stream();
    std::string joined;
    for (int32_t id : mids) joined += stream.feed(id);
    joined += stream.flush();
    assert_true(joined == tok.decode(mids));
    assert_int_equal(status_of([&] { stream.feed(-1); }), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(status_of([&] { tok.decode(std::vector<int32_t>{1, 1 << 20}); }), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(status_of([&] { rmkv::Tokenizer::load(tmp("missing.json")); }), RMKV_ERR_IO);
    assert_int_equal(status_of([&] { rmkv::Tokenizer::from_json("{"); }), RMKV_ERR_FORMAT);
}

void model_and_session(void **) {
    rmkv::Tokenizer tok = small_tokenizer();
    rmkv::Model model = rmkv::Model::create(kConfig, &tok, 7);
    assert_int_equal(model.vocab_size(), tok.vocab_size());
    assert_int_equal(model.id().size(), 64);
    assert_true(model.n_params() > 0);
    assert_non_null(std::strstr(model.config_json().c_str(), "\"segment_len\":8"));
    model.save(tmp("m.safetensors"));
    rmkv::Model loaded = rmkv::Model::load(tmp("m.safetensors"));
    assert_true(loaded.id() == model.id());
    rmkv::Tokenizer borrowed = loaded.tokenizer();
    assert_true(static_cast<bool>(borrowed));
    assert_true(borrowed.encode("the gate") == tok.encode("the gate"));

    std::vector<int32_t> toks = tok.encode("The knight guards the gate of the old castle.");
    rmkv::Session a(loaded), b(loaded);
    std::vector<float> la = a.step(toks);
    std::vector<float> lb(loaded.vocab_size());
    rmkv_session *raw = nullptr;
    assert_int_equal(rmkv_session_new(loaded.get(), nullptr, &raw), RMKV_OK);
    assert_int_equal(rmkv_session_step(raw, toks.data(), toks.size(), lb.data()), RMKV_OK);
    assert_memory_equal(la.data(), lb.data(), la.size() * sizeof(float));   // the wrapper is the C call
    rmkv_session_free(raw);
    std::vector<float> all = b.step_all(toks);
    assert_int_equal(all.size(), toks.size() * loaded.vocab_size());
    assert_int_equal(a.position(), toks.size());

    rmkv::Session c = a.clone();
    a.flush();
    std::vector<uint8_t> st = a.save_state();
    rmkv::Session d(loaded);
    d.load_state(st);
    std::vector<float> x = a.step(std::vector<int32_t>{5}), y = d.step(std::vector<int32_t>{5});
    assert_memory_equal(x.data(), y.data(), x.size() * sizeof(float));
    // Two sessions stepped together: the rows of stepping each alone (up to rounding).
    {
        rmkv::Session p(loaded), q(loaded), p1(loaded), q1(loaded);
        rmkv::Session *both[2] = {&p, &q};
        const int32_t next[2] = {7, 11};
        std::vector<float> rows(2 * loaded.vocab_size());
        rmkv::step_together(both, next, 2, rows.data());
        std::vector<float> r0 = p1.step(std::vector<int32_t>{7}), r1 = q1.step(std::vector<int32_t>{11});
        double worst = 0;
        for (size_t i = 0; i < r0.size(); ++i)
            for (const double e : {std::fabs(double(rows[i]) - r0[i]), std::fabs(double(rows[r0.size() + i]) - r1[i])})
                if (!(e <= worst)) worst = e;  // a NaN sticks
        assert_true(worst < 1e-4);
        assert_int_equal(q.position(), 1);
    }
    int32_t g = a.argmax();
    size_t best = 0;
    for (size_t i = 1; i < x.size(); ++i)
        if (x[i] > x[best]) best = i;
    assert_int_equal(g, static_cast<int32_t>(best));
#if defined(RMKV_HPP_SPAN)
    std::vector<float> z(loaded.vocab_size());
    c.step(std::span<const int32_t>(&g, 1), std::span<float>(z));
    std::vector<float> small(3);
    assert_int_equal(status_of([&] { c.step(std::span<const int32_t>(&g, 1), std::span<float>(small)); }),
                     RMKV_ERR_INVALID_ARGUMENT);
#endif
    d.save_state_file(tmp("s.state"));
    rmkv::Session e(loaded);
    e.load_state_file(tmp("s.state"));
    assert_int_equal(e.position(), d.position());
    e.reset();
    assert_int_equal(e.position(), 0);
    assert_int_equal(status_of([&] { e.argmax(); }), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(status_of([&] { e.step(static_cast<int32_t>(loaded.vocab_size())); }), RMKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(status_of([&] { e.load_state(st.data(), st.size() / 2); }), RMKV_ERR_FORMAT);

    {   // streamed generation = the greedy step/sample loop; stop strings; cancel; exceptions
        rmkv::Session g1(loaded), g2(loaded);
        g1.step(toks);
        std::vector<int32_t> greedy;
        for (int i = 0; i < 12; ++i) {
            greedy.push_back(g1.argmax());
            g1.step(greedy.back());
        }
        rmkv_sampler_params sp = rmkv_sampler_default_params();
        sp.temperature = 0.0f;
        rmkv_generate_params gp = rmkv_generate_default_params();
        gp.sampler = &sp;
        gp.max_tokens = 12;
        std::string streamed;
        rmkv_generate_result r = g2.generate(borrowed, "The knight guards the gate of the old castle.", gp,
                                             [&](std::string_view piece) { streamed += piece; return false; });
        assert_int_equal(r.stop_reason, RMKV_STOP_LIMIT);
        assert_int_equal(r.n_tokens, 12);
        assert_true(streamed == borrowed.decode(greedy));
        int calls = 0;
        gp.max_tokens = 100000;
        sp.temperature = 1.0f;
        r = g2.generate(borrowed, "", gp, [&](std::string_view) { return ++calls == 2; });
        assert_int_equal(r.stop_reason, RMKV_STOP_CANCELLED);
        bool caught = false;
        try {
            g2.generate(borrowed, "", gp, [](std::string_view) -> bool { throw std::runtime_error("boom"); });
        } catch (const std::runtime_error &ex) {
            caught = std::string(ex.what()) == "boom";
        }
        assert_true(caught);
        assert_int_equal(status_of([&] { rmkv::Session(loaded).generate(borrowed, "", gp); }),
                         RMKV_ERR_INVALID_ARGUMENT);
    }

    rmkv::Session moved = std::move(e);       // ownership moves; the moved-from object frees nothing
    assert_null(e.get());
    assert_non_null(moved.get());

    FILE *f = std::fopen(tmp("bad.safetensors").c_str(), "wb");
    std::fputs("not a model file at all", f);
    std::fclose(f);
    assert_int_equal(status_of([&] { rmkv::Model::load(tmp("bad.safetensors")); }), RMKV_ERR_FORMAT);
    assert_int_equal(status_of([&] { rmkv::Model::create(R"({"d_modle":3})"); }), RMKV_ERR_INVALID_ARGUMENT);
    std::remove(tmp("bad.safetensors").c_str());
    std::remove(tmp("s.state").c_str());
    std::remove(tmp("m.safetensors").c_str());
}

void trainer_and_state_tuner(void **) {
    rmkv::Tokenizer tok = small_tokenizer();
    rmkv::Model model = rmkv::Model::create(kConfig, &tok, 3);
    std::vector<int32_t> ids = tok.encode("The knight guards the gate of the old castle. The knight guards it.");
    ids.resize(17);
    std::vector<int32_t> tokens(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = 3e-3f;
    p.warmup_steps = 0;
    p.precision = RMKV_PRECISION_FP32;
    {
        rmkv::Trainer tuner = rmkv::Trainer::state_tuner(model, &p);
        const std::string id = model.id();
        rmkv_batch b = rmkv::Trainer::batch(tokens, targets, 1);
        tuner.step(b);
        assert_int_equal(tuner.step_count(), 1);
        assert_true(model.id() == id);
        rmkv::Session s(model);
        s.step(std::vector<int32_t>{1, 2});
        tuner.apply_state(s);
        assert_int_equal(s.position(), 0);
        assert_int_equal(status_of([&] { tuner.save_checkpoint(tmp("ck")); }), RMKV_ERR_INVALID_ARGUMENT);
    }
    rmkv::Trainer trainer(model, &p);
    rmkv_batch b = rmkv::Trainer::batch(tokens, targets, 1);
    float first = trainer.evaluate(b).loss;
    for (int i = 0; i < 10; ++i) trainer.step(b);
    assert_true(trainer.evaluate(b).loss < first);
    trainer.save_checkpoint(tmp("ck.safetensors"), R"({"epoch":2})");
    trainer.load_checkpoint(tmp("ck.safetensors"));
    assert_int_equal(trainer.step_count(), 10);
    assert_int_equal(status_of([&] { rmkv::Trainer::batch(tokens, std::vector<int32_t>(3), 1); }),
                     RMKV_ERR_INVALID_ARGUMENT);
    rmkv::Session s(model);
    assert_int_equal(status_of([&] { trainer.apply_state(s); }), RMKV_ERR_INVALID_ARGUMENT);
    std::remove(tmp("ck.safetensors").c_str());
}

void data_pipeline(void **) {
    rmkv::Tokenizer tok = small_tokenizer();
    const std::string corpus = tmp("corpus.txt");
    FILE *f = std::fopen(corpus.c_str(), "wb");
    for (int i = 0; i < 50; ++i) std::fputs("The knight guards the gate of the old castle.\n\n", f);
    std::fclose(f);
    rmkv::Data data(R"({"sources":[{"path":")" + corpus + R"(","kind":"text"}],"batch_size":2,"n_tokens":8,"queue_size":0})",
                    tok);
    assert_int_equal(data.batch_size(), 2);
    assert_int_equal(data.n_tokens(), 8);
    std::vector<int32_t> tokens, targets;
    rmkv_data_info info = data.next(tokens, targets);
    assert_int_equal(tokens.size(), 16);
    assert_int_equal(info.n_sequences, 2);
    for (size_t i = 0; i + 1 < 8; ++i) assert_int_equal(tokens[i + 1], targets[i]);
    assert_int_equal(status_of([&] { rmkv::Data("{\"sources\":[{\"path\":\"/nonexistent/x\"}]}", tok); }),
                     RMKV_ERR_IO);
    std::remove(corpus.c_str());
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokenizer_and_stream),
        cmocka_unit_test(model_and_session),
        cmocka_unit_test(trainer_and_state_tuner),
        cmocka_unit_test(data_pipeline),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
