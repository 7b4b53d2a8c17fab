// libFuzzer target: the session state reader (rmkv-state, SPEC section 7). The
// first byte picks one of three models (LSTM / GRU / minimal cell, learned or
// rope positions); the rest is the state. Any input loads or fails with
// RMKV_ERR_FORMAT or RMKV_ERR_MISMATCH and leaves the session unchanged; a loaded
// state steps, and saves to bytes that load again and save identically.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.h"

namespace {
struct Fixture {
    rmkv_model *model = nullptr;
    rmkv_session *session = nullptr;
};
// Built once, kept for the whole run (a heap object: no destructor at exit).
std::vector<Fixture> &fixtures() {
    static std::vector<Fixture> *all = [] {
        auto *v = new std::vector<Fixture>;
        uint64_t seed = 1;
        for (const char *c : kStateConfigs) {
            Fixture f;
            if (rmkv_model_create(c, nullptr, seed++, nullptr, &f.model) != RMKV_OK) std::abort();
            if (rmkv_session_new(f.model, nullptr, &f.session) != RMKV_OK) std::abort();
            v->push_back(f);
        }
        return v;
    }();
    return *all;
}
std::vector<uint8_t> save(rmkv_session *s) {
    size_t size = 0;
    FUZZ_CHECK(rmkv_session_state_size(s, &size) == RMKV_OK, "state_size");
    std::vector<uint8_t> out(size);
    FUZZ_CHECK(rmkv_session_state_save(s, out.data(), size, &size) == RMKV_OK, "state_save");
    return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    auto &all = fixtures();
    Fixture &f = all[data[0] % all.size()];
    FUZZ_CHECK(rmkv_session_reset(f.session) == RMKV_OK, "reset");
    std::vector<uint8_t> before = save(f.session);
    rmkv_status st = rmkv_session_state_load(f.session, data + 1, size - 1);
    if (st != RMKV_OK) {
        FUZZ_CHECK(st == RMKV_ERR_FORMAT || st == RMKV_ERR_MISMATCH, "state_load: %s", rmkv_status_string(st));
        expect_message(st);
        FUZZ_CHECK(save(f.session) == before, "a failed load changed the session");
        return 0;
    }
    std::vector<uint8_t> loaded = save(f.session);
    FUZZ_CHECK(rmkv_session_state_load(f.session, loaded.data(), loaded.size()) == RMKV_OK, "reload");
    FUZZ_CHECK(save(f.session) == loaded, "save(load(save)) differs");
    int32_t tok = 1;
    std::vector<float> logits(rmkv_model_vocab_size(f.model));
    FUZZ_CHECK(rmkv_session_step(f.session, &tok, 1, logits.data()) == RMKV_OK, "step after load");
    return 0;
}
