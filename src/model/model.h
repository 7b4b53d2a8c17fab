// The model behind the opaque rmkv_model: configuration, weights on a backend,
// tokenizer and fingerprint. Immutable after loading (a trainer is the one writer).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/segment.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

struct rmkv_model {
public:
    // Random initialisation (rmkv_model_create).
    static std::unique_ptr<rmkv_model> create(const std::string &config_json, const rmkv_tokenizer *tokenizer,
                                              uint64_t seed, const rmkv_model_params &params);
    // A model file on disk (mapped when params.use_mmap).
    static std::unique_ptr<rmkv_model> load_file(const std::string &path, const rmkv_model_params &params);
    // A model file in memory; copied unless RMKV_MODEL_ZERO_COPY.
    static std::unique_ptr<rmkv_model> load_memory(const void *data, size_t size, const rmkv_model_params &params);

    void save(const std::string &path, rmkv_dtype dtype) const;

    // The model in a parsed model file or checkpoint, validated by every check the
    // model reader makes (format, format_version, config, model_id, the embedded
    // tokenizer, tensor names and shapes); nothing imported. The checkpoint reader
    // holds a checkpoint's model part to the same rules.
    struct FileModel {
        rmkv::Config config;
        std::string model_id;
        std::unique_ptr<rmkv_tokenizer> tokenizer;  // NULL when none is embedded
        std::vector<rmkv::ParamSpec> specs;
        std::vector<const rmkv::TensorView *> tensors;  // one per spec, into the parsed file
    };
    static FileModel read_model(const rmkv::SafetensorsFile &f, const std::string &what);

    // Host copies of the weights that a writer points into while it is alive.
    struct ModelImage {
        std::vector<std::vector<float>> host;
        std::vector<std::vector<uint8_t>> stored;
    };
    // Adds the model's tensors and metadata (format "rmkv-model") to a writer.
    void write_into(rmkv::SafetensorsWriter &w, rmkv_dtype dtype, ModelImage &img) const;

    ~rmkv_model();

    const rmkv::Config &config() const { return config_; }
    const rmkv::ModelWeights &weights() const { return weights_; }
    rmkv::Backend &backend() const { return *backend_; }
    rmkv::ModelView view() const { return {&config_, &weights_, backend_.get()}; }
    const std::string &model_id() const;

    // For a trainer, the one writer: makes every weight owned backend memory (no
    // longer pointing into a mapped file or a caller's buffer) and returns the
    // parameters to update. Call weights_changed() after each update.
    const std::vector<float *> &writable_params();
    void weights_changed();
    const rmkv_tokenizer *tokenizer() const { return tokenizer_.get(); }
    const std::vector<rmkv::ParamSpec> &specs() const { return specs_; }
    // One per spec: backend memory, or NULL for a matrix kept in 16 bits (a BF16 or
    // F16 file on a backend with has_half_weights; f32_copy widens it).
    const std::vector<float *> &params() const { return params_; }
    // Whether some matrix is kept in bf16 (a BF16 file on a backend with
    // has_half_weights): only then does a session's precision change anything.
    bool has_bf16_matrices() const;
    // Tensor i as f32 into host memory (widened when kept in 16 bits), queued on s:
    // valid once s is synchronised.
    void to_host(rmkv::Stream &s, size_t i, float *host) const;
    // A new backend buffer with tensor i in f32 (widened when kept in 16 bits); the
    // caller frees it (Backend::free).
    float *f32_copy(size_t i) const;
    size_t n_params() const;

private:
    rmkv_model() = default;
    void init_from_file(const uint8_t *data, size_t size, const std::string &what, bool stable, const rmkv_model_params &p);
    void bind();

    rmkv::Config config_;
    std::vector<rmkv::ParamSpec> specs_;
    std::vector<float *> params_;         // backend memory, one per spec
    std::vector<const float *> sources_;  // host memory each was imported from
    std::vector<rmkv::HalfTensor> kept_;  // matrices kept in 16 bits (params_ NULL), else data NULL: host memory
    std::vector<rmkv::HalfTensor> kept_backend_;  // the same, as the backend computes with them (import_half_weights)
    rmkv::ModelWeights weights_{};
    std::shared_ptr<rmkv::Backend> backend_;
    std::unique_ptr<rmkv_tokenizer> tokenizer_;
    mutable std::string model_id_;
    mutable bool id_stale_ = false;  // weights changed since model_id_ was computed
    mutable std::mutex id_mutex_;
    // Owners of host memory the weights may point into.
    std::unique_ptr<rmkv::MappedFile> file_;
    std::vector<uint8_t> buffer_;
    std::vector<std::vector<float>> host_copies_;
    std::vector<std::vector<uint16_t>> kept_copies_;  // kept tensors the file's memory cannot serve (odd offset)
};

namespace rmkv {
// Fingerprint of a configuration and F32 weights (the model_id).
std::string model_fingerprint(const std::string &config_json, const std::vector<ParamSpec> &specs,
                              const std::vector<const float *> &host_weights);
}  // namespace rmkv
