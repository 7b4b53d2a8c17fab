// libFuzzer target: the checkpoint reader (rmkv-checkpoint, SPEC section 7),
// through the paths the ABI takes (an in-memory file). Any input loads into a
// trainer or fails with FORMAT / MISMATCH (IO for nothing here) and changes
// nothing; the user JSON reader and the model reader (a checkpoint is a model
// file too) see the same bytes.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.h"

namespace {
struct Fixture {
    rmkv_model *model = nullptr;
    rmkv_trainer *trainer = nullptr;
};
Fixture &fixture() {
    static Fixture f = [] {
        Fixture x;
        if (rmkv_model_create(kCheckpointConfig, nullptr, 3, nullptr, &x.model) != RMKV_OK) std::abort();
        if (rmkv_trainer_new(x.model, nullptr, &x.trainer) != RMKV_OK) std::abort();
        return x;
    }();
    return f;
}
MemFile g_file;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Fixture &f = fixture();
    const std::string &path = g_file.set(data, size);
    std::string id_before = rmkv_model_id(f.model);
    int64_t step_before = rmkv_trainer_step_count(f.trainer);
    rmkv_status st = rmkv_trainer_load_checkpoint(f.trainer, path.c_str());
    if (st != RMKV_OK) {
        FUZZ_CHECK(st == RMKV_ERR_FORMAT || st == RMKV_ERR_MISMATCH, "load_checkpoint: %s", rmkv_status_string(st));
        expect_message(st);
        FUZZ_CHECK(id_before == rmkv_model_id(f.model), "a failed load changed the weights");
        FUZZ_CHECK(step_before == rmkv_trainer_step_count(f.trainer), "a failed load changed the step");
    } else {
        FUZZ_CHECK(rmkv_trainer_step_count(f.trainer) >= 0, "negative step");
    }
    size_t needed = 0;
    char buf[256];
    rmkv_status su = rmkv_checkpoint_user_json(path.c_str(), buf, sizeof buf, &needed);
    FUZZ_CHECK(su == RMKV_OK || su == RMKV_ERR_FORMAT || su == RMKV_ERR_BUFFER_TOO_SMALL, "user_json: %s",
               rmkv_status_string(su));
    if (st == RMKV_OK) FUZZ_CHECK(su != RMKV_ERR_FORMAT, "a loaded checkpoint has no user JSON");
    rmkv_model *m = nullptr;
    rmkv_status sm = rmkv_model_load(path.c_str(), nullptr, &m);
    FUZZ_CHECK(sm == RMKV_OK || sm == RMKV_ERR_FORMAT, "model_load: %s", rmkv_status_string(sm));
    if (st == RMKV_OK) FUZZ_CHECK(sm == RMKV_OK, "a loaded checkpoint is not a model file");
    rmkv_model_free(m);
    return 0;
}
