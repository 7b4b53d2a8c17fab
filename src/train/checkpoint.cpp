// Checkpoints (SPEC section 7, "rmkv-checkpoint"): the model's tensors and
// metadata, the AdamW moments (adam.m.<name>, adam.v.<name>), the optimiser step,
// the training parameters, and a caller's JSON (data position, epoch, ...).
// Written atomically; read back only after every tensor has been validated.
#include <charconv>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "train/trainer.h"

using namespace rmkv;
using json = nlohmann::json;

namespace {

constexpr const char *kCheckpointVersion = "1";

json params_json(const rmkv_train_params &p) {
    return {{"learning_rate", p.learning_rate}, {"min_learning_rate", p.min_learning_rate},
            {"warmup_steps", p.warmup_steps},   {"total_steps", p.total_steps},
            {"weight_decay", p.weight_decay},   {"beta1", p.beta1},
            {"beta2", p.beta2},                 {"epsilon", p.epsilon},
            {"grad_clip", p.grad_clip},         {"grad_accum_steps", p.grad_accum_steps},
            {"dropout", p.dropout},             {"seed", p.seed},
            {"precision", p.precision}};
}

// The checkpoint's own metadata, as save_checkpoint writes it: format, version,
// step, user JSON (an object). Both readers check all of it, so that whatever
// loads into a trainer also gives its user JSON.
struct CheckpointMeta {
    int64_t step;
    std::string user;
};
CheckpointMeta read_checkpoint_meta(const SafetensorsFile &f, const std::string &what) {
    if (f.meta("format", what) != "rmkv-checkpoint") fail(RMKV_ERR_FORMAT, what, ": format is not 'rmkv-checkpoint'");
    if (f.meta("checkpoint_version", what) != kCheckpointVersion)
        fail(RMKV_ERR_FORMAT, what, ": checkpoint_version '", f.meta("checkpoint_version", what).substr(0, 20), "' is not supported");
    const std::string &step_text = f.meta("step", what);
    int64_t step = -1;
    auto r = std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
    if (r.ec != std::errc() || r.ptr != step_text.data() + step_text.size() || step < 0)
        fail(RMKV_ERR_FORMAT, what, ": step '", step_text.substr(0, 30), "' is not a non-negative integer");
    const std::string &user = f.meta("user", what);
    const json parsed = json::parse(user, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) fail(RMKV_ERR_FORMAT, what, ": the user metadata is not a JSON object");
    return {step, user};
}

}  // namespace

void rmkv_trainer::save_checkpoint(const std::string &path, const std::string &user_json) const {
    if (state_tuning_)
        fail(RMKV_ERR_INVALID_ARGUMENT, "state tuning writes no checkpoints: save its result with rmkv_trainer_apply_state "
                                        "and rmkv_session_state_save_file");
    if (micro_ != 0)
        fail(RMKV_ERR_INVALID_ARGUMENT, "a checkpoint is taken between optimiser updates; ", micro_, " of ",
             p_.grad_accum_steps, " accumulation steps are pending");
    json user = user_json.empty() ? json::object() : json::parse(user_json, nullptr, false);
    if (user.is_discarded() || !user.is_object()) fail(RMKV_ERR_INVALID_ARGUMENT, "user_json must be a JSON object");
    SafetensorsWriter w;
    rmkv_model::ModelImage img;
    model_.write_into(w, RMKV_DTYPE_F32, img);
    Backend &be = model_.backend();
    const auto &specs = model_.specs();
    std::vector<std::vector<float>> moments(2 * specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        for (int j = 0; j < 2; ++j) {
            auto &h = moments[2 * i + j];
            h.resize(static_cast<size_t>(specs[i].numel));
            be.to_host(*stream_, h.data(), j ? v_[i] : m_[i], h.size());
        }
    }
    be.sync(*stream_);
    for (size_t i = 0; i < specs.size(); ++i) {
        w.add("adam.m." + specs[i].name, RMKV_DTYPE_F32, specs[i].shape, moments[2 * i].data());
        w.add("adam.v." + specs[i].name, RMKV_DTYPE_F32, specs[i].shape, moments[2 * i + 1].data());
    }
    w.set_metadata("format", "rmkv-checkpoint");
    w.set_metadata("checkpoint_version", kCheckpointVersion);
    w.set_metadata("step", std::to_string(step_));
    w.set_metadata("train_params", params_json(p_).dump());
    w.set_metadata("user", user.dump());
    write_file_atomic(path, w.size(), [&](uint8_t *dest) { w.write(dest); });
}

void rmkv_trainer::load_checkpoint(const std::string &path) {
    if (state_tuning_) fail(RMKV_ERR_INVALID_ARGUMENT, "state tuning loads no checkpoints");
    MappedFile file(path, true);
    const std::string what = "checkpoint '" + path + "'";
    SafetensorsFile f = SafetensorsFile::parse(file.data(), file.size(), what);
    const int64_t step = read_checkpoint_meta(f, what).step;
    // The model part: exactly what the model reader accepts (a checkpoint loads as a model).
    const Config theirs = rmkv_model::read_model(f, what).config;
    if (theirs.to_json() != model_.config().to_json())
        fail(RMKV_ERR_MISMATCH, what, ": made for config ", theirs.to_json(), ", this trainer's model has ", model_.config().to_json());
    const auto &specs = model_.specs();
    std::vector<const TensorView *> views;
    for (const ParamSpec &s : specs)
        for (const std::string &name : {s.name, "adam.m." + s.name, "adam.v." + s.name}) {
            const TensorView &t = f.tensor(name, what);
            if (t.dtype != RMKV_DTYPE_F32 || t.shape != s.shape)
                fail(RMKV_ERR_FORMAT, what, ": tensor '", name, "' is not F32 of the parameter's shape");
            views.push_back(&t);
        }
    // Validated: swap in weights, moments and the step.
    Backend &be = model_.backend();
    std::vector<float> tmp;
    for (size_t i = 0; i < specs.size(); ++i) {
        float *dst[3] = {params_[i], m_[i], v_[i]};
        for (int j = 0; j < 3; ++j) {
            const TensorView &t = *views[3 * i + j];
            tmp.resize(static_cast<size_t>(specs[i].numel));
            convert_to_f32(tmp.data(), t.data, RMKV_DTYPE_F32, tmp.size());
            be.from_host(*stream_, dst[j], tmp.data(), tmp.size());
            be.sync(*stream_);
        }
    }
    step_ = step;
    micro_ = 0;
    refresh_shadows();
    model_.weights_changed();
}

std::string rmkv::checkpoint_user_json(const std::string &path) {
    MappedFile file(path, true);
    const std::string what = "checkpoint '" + path + "'";
    SafetensorsFile f = SafetensorsFile::parse(file.data(), file.size(), what);
    return read_checkpoint_meta(f, what).user;
}
