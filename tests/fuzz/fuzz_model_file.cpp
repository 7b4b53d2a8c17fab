// libFuzzer target: the model file reader (safetensors, SPEC section 7), from
// memory and from a file. Any input loads or fails with RMKV_ERR_FORMAT and a
// message; a loaded model (when small) runs a session, saves and restores its
// state, and saves itself to a file that loads back to the same model_id.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_common.h"

static MemFile g_file;

static void exercise(rmkv_model *m) {
    char cfg[2048];
    size_t needed = 0;
    FUZZ_CHECK(rmkv_model_config_json(m, cfg, sizeof cfg, &needed) == RMKV_OK, "config_json");
    // Only small models and sessions run (a valid file of a large configuration is legitimate).
    auto c = nlohmann::json::parse(cfg);
    double session = c["n_layers"].get<double>() * (c["segment_len"].get<double>() + c["memory_slots"].get<double>()) *
                     (c["d_model"].get<double>() + c["ffn_hidden"].get<double>());
    if (rmkv_model_n_params(m) > 200000 || session > 4e6) return;
    rmkv_session *s = nullptr;
    rmkv_status st = rmkv_session_new(m, nullptr, &s);
    if (st != RMKV_OK) {
        FUZZ_CHECK(st == RMKV_ERR_OUT_OF_MEMORY, "session_new: %s", rmkv_status_string(st));
        return;
    }
    size_t V = rmkv_model_vocab_size(m);
    std::vector<float> logits(V);
    int32_t toks[3] = {0, static_cast<int32_t>(V / 2), static_cast<int32_t>(V - 1)};
    FUZZ_CHECK(rmkv_session_step(s, toks, 3, logits.data()) == RMKV_OK, "step");
    size_t size = 0;
    FUZZ_CHECK(rmkv_session_state_size(s, &size) == RMKV_OK, "state_size");
    std::vector<uint8_t> state(size);
    FUZZ_CHECK(rmkv_session_state_save(s, state.data(), size, &size) == RMKV_OK, "state_save");
    rmkv_session *t = nullptr;
    FUZZ_CHECK(rmkv_session_new(m, nullptr, &t) == RMKV_OK, "session_new");
    FUZZ_CHECK(rmkv_session_state_load(t, state.data(), size) == RMKV_OK, "state_load of its own state");
    rmkv_session_free(t);
    rmkv_session_free(s);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // From memory (copied) ...
    rmkv_model *m = nullptr;
    rmkv_status st = rmkv_model_load_from_memory(data, size, nullptr, &m);
    if (st != RMKV_OK) {
        FUZZ_CHECK(st == RMKV_ERR_FORMAT, "load_from_memory: %s", rmkv_status_string(st));
        FUZZ_CHECK(m == nullptr, "output on failure");
        expect_message(st);
    } else {
        exercise(m);
        rmkv_model_free(m);
    }
    // ... and from a mapped file: the same verdict.
    const std::string &path = g_file.set(data, size);
    rmkv_model *f = nullptr;
    rmkv_status st2 = rmkv_model_load(path.c_str(), nullptr, &f);
    FUZZ_CHECK(st2 == st, "file %s, memory %s", rmkv_status_string(st2), rmkv_status_string(st));
    rmkv_model_free(f);
    return 0;
}
