#include "model/model.h"

#include <cstring>

#include "core/error.h"
#include "core/fingerprint.h"
#include "core/log.h"
#include "core/memory.h"
#include "io/safetensors.h"

using namespace rmkv;

namespace {

constexpr const char *kFormatVersion = "1";

std::shared_ptr<Backend> backend_for(const rmkv_model_params &p) { return get_backend(p.device ? p.device : "cpu"); }

bool is_hex_id(const std::string &s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

std::string rmkv::model_fingerprint(const std::string &config_json, const std::vector<ParamSpec> &specs,
                                    const std::vector<const float *> &host_weights) {
    Fingerprint fp;
    fp.update(config_json.data(), config_json.size());
    for (size_t i = 0; i < specs.size(); ++i) {
        fp.update(specs[i].name.data(), specs[i].name.size());
        fp.update(host_weights[i], static_cast<size_t>(specs[i].numel) * sizeof(float));
    }
    return fp.hex();
}

size_t rmkv_model::n_params() const {
    size_t n = 0;
    for (const ParamSpec &s : specs_) n += static_cast<size_t>(s.numel);
    return n;
}

bool rmkv_model::has_bf16_matrices() const {
    for (const HalfTensor &k : kept_)
        if (k.data && k.half == Half::bf16) return true;
    return false;
}

void rmkv_model::bind() { weights_ = bind_weights(config_, specs_, params_, kept_backend_); }

void rmkv_model::to_host(Stream &s, size_t i, float *host) const {
    const size_t n = static_cast<size_t>(specs_[i].numel);
    if (const HalfTensor &k = kept_[i]; k.data)
        convert_to_f32(host, reinterpret_cast<const uint8_t *>(k.data),
                       k.half == Half::f16 ? RMKV_DTYPE_F16 : RMKV_DTYPE_BF16, n);
    else
        backend_->to_host(s, host, params_[i], n);
}

float *rmkv_model::f32_copy(size_t i) const {
    const size_t n = static_cast<size_t>(specs_[i].numel);
    float *p = backend_->alloc(n);
    auto stream = backend_->new_stream();
    std::vector<float> host;
    if (kept_[i].data) {
        host.resize(n);
        to_host(*stream, i, host.data());
        backend_->from_host(*stream, p, host.data(), n);
    } else {
        backend_->copy(*stream, p, params_[i], n);
    }
    backend_->sync(*stream);
    return p;
}

const std::vector<float *> &rmkv_model::writable_params() {
    // Every copy first: if one fails (out of memory), the model is as it was.
    std::vector<float *> owned(params_.size(), nullptr);
    try {
        for (size_t i = 0; i < params_.size(); ++i)
            // Mapped from a file or a caller's buffer, or kept in 16 bits (both NULL).
            if (params_[i] == sources_[i]) owned[i] = f32_copy(i);
    } catch (...) {
        for (float *p : owned) backend_->free(p);
        throw;
    }
    for (size_t i = 0; i < params_.size(); ++i) {
        if (!owned[i]) continue;  // already the backend's own copy
        if (params_[i]) backend_->release_weights(params_[i], sources_[i]);
        if (kept_backend_[i].data) backend_->release_half_weights(kept_backend_[i].data, kept_[i].data);
        params_[i] = owned[i];
        sources_[i] = nullptr;  // released with free(), never aliases host memory
        kept_[i] = kept_backend_[i] = {};
    }
    bind();
    return params_;
}

void rmkv_model::weights_changed() {
    std::lock_guard<std::mutex> lock(id_mutex_);
    id_stale_ = true;
}

const std::string &rmkv_model::model_id() const {
    std::lock_guard<std::mutex> lock(id_mutex_);
    if (id_stale_) {
        auto stream = backend_->new_stream();
        std::vector<std::vector<float>> host(specs_.size());
        std::vector<const float *> ptrs;
        for (size_t i = 0; i < specs_.size(); ++i) {
            host[i].resize(static_cast<size_t>(specs_[i].numel));
            to_host(*stream, i, host[i].data());
            ptrs.push_back(host[i].data());
        }
        backend_->sync(*stream);
        model_id_ = model_fingerprint(config_.to_json(), specs_, ptrs);
        id_stale_ = false;
    }
    return model_id_;
}

rmkv_model::~rmkv_model() {
    if (backend_)
        for (size_t i = 0; i < params_.size(); ++i) {
            if (params_[i]) backend_->release_weights(params_[i], sources_[i]);
            if (i < kept_backend_.size() && kept_backend_[i].data)
                backend_->release_half_weights(kept_backend_[i].data, kept_[i].data);
        }
}

std::unique_ptr<rmkv_model> rmkv_model::create(const std::string &config_json, const rmkv_tokenizer *tokenizer,
                                               uint64_t seed, const rmkv_model_params &params) {
    std::unique_ptr<rmkv_model> m(new rmkv_model());
    int64_t default_vocab = tokenizer ? static_cast<int64_t>(tokenizer->vocab_size()) : 0;
    m->config_ = Config::from_json(config_json, default_vocab, false);
    if (tokenizer && static_cast<size_t>(m->config_.vocab_size) < tokenizer->vocab_size())
        fail(RMKV_ERR_INVALID_ARGUMENT, "config: \"vocab_size\": ", m->config_.vocab_size, " is smaller than the tokenizer's ",
             tokenizer->vocab_size(), " ids");
    m->backend_ = backend_for(params);
    m->specs_ = param_specs(m->config_);
    if (tokenizer) m->tokenizer_ = tokenizer->clone();
    double numel = 0;
    for (const ParamSpec &s : m->specs_) numel += static_cast<double>(s.numel);
    ensure_fits(numel * sizeof(float), "a model of this configuration");
    std::vector<const float *> host;
    for (size_t i = 0; i < m->specs_.size(); ++i) {
        m->host_copies_.emplace_back(static_cast<size_t>(m->specs_[i].numel));
        init_param(m->specs_[i], m->config_, seed, i, m->host_copies_.back().data());
        host.push_back(m->host_copies_.back().data());
    }
    m->model_id_ = model_fingerprint(m->config_.to_json(), m->specs_, host);
    for (size_t i = 0; i < m->specs_.size(); ++i) {
        m->sources_.push_back(host[i]);
        m->params_.push_back(m->backend_->import_weights(host[i], static_cast<size_t>(m->specs_[i].numel), true));
        m->kept_.emplace_back();
        m->kept_backend_.emplace_back();
    }
    m->bind();
    return m;
}

std::unique_ptr<rmkv_model> rmkv_model::load_file(const std::string &path, const rmkv_model_params &params) {
    std::unique_ptr<rmkv_model> m(new rmkv_model());
    m->file_ = std::make_unique<MappedFile>(path, params.use_mmap != 0);
    m->init_from_file(m->file_->data(), m->file_->size(), "model file '" + path + "'", true, params);
    return m;
}

std::unique_ptr<rmkv_model> rmkv_model::load_memory(const void *data, size_t size, const rmkv_model_params &params) {
    std::unique_ptr<rmkv_model> m(new rmkv_model());
    const uint8_t *bytes = static_cast<const uint8_t *>(data);
    if (!(params.flags & RMKV_MODEL_ZERO_COPY)) {
        m->buffer_.assign(bytes, bytes + size);
        bytes = m->buffer_.data();
    }
    m->init_from_file(bytes, size, "model buffer", true, params);
    return m;
}

rmkv_model::FileModel rmkv_model::read_model(const SafetensorsFile &f, const std::string &what) {
    FileModel m;
    const std::string &format = f.meta("format", what);
    // A checkpoint holds a whole model too (plus optimiser moments, ignored here).
    const bool checkpoint = format == "rmkv-checkpoint";
    if (format != "rmkv-model" && !checkpoint)
        fail(RMKV_ERR_FORMAT, what, ": __metadata__ format is '", format.substr(0, 40), "', expected 'rmkv-model' or 'rmkv-checkpoint'");
    const std::string &version = f.meta("format_version", what);
    if (version != kFormatVersion)
        fail(RMKV_ERR_FORMAT, what, ": format_version '", version, "' is not supported (this library reads ", kFormatVersion, ")");
    try {
        m.config = Config::from_json(f.meta("config", what), 0, true);
    } catch (const Error &e) {
        fail(RMKV_ERR_FORMAT, what, ": ", e.what());
    }
    m.model_id = f.meta("model_id", what);
    if (!is_hex_id(m.model_id)) fail(RMKV_ERR_FORMAT, what, ": model_id '", m.model_id.substr(0, 80), "' is not 64 hex digits");
    auto tok = f.metadata.find("tokenizer");
    if (tok != f.metadata.end() && !tok->second.empty()) {
        try {
            m.tokenizer = rmkv_tokenizer::from_json(tok->second);
        } catch (const Error &e) {
            fail(RMKV_ERR_FORMAT, what, ": embedded tokenizer: ", e.what());
        }
        if (m.tokenizer->vocab_size() > static_cast<size_t>(m.config.vocab_size))
            fail(RMKV_ERR_FORMAT, what, ": the embedded tokenizer has ", m.tokenizer->vocab_size(), " ids but vocab_size is ",
                 m.config.vocab_size);
    }
    m.specs = param_specs(m.config);
    for (const auto &kv : f.tensors) {
        bool known = checkpoint && (kv.first.rfind("adam.m.", 0) == 0 || kv.first.rfind("adam.v.", 0) == 0);
        for (const ParamSpec &s : m.specs) known = known || s.name == kv.first;
        if (!known) fail(RMKV_ERR_FORMAT, what, ": unexpected tensor '", kv.first.substr(0, 80), "' for this config");
    }
    for (const ParamSpec &s : m.specs) {
        const TensorView &t = f.tensor(s.name, what);
        if (t.shape != s.shape) {
            std::string want, got;
            for (int64_t d : s.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
            for (int64_t d : t.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
            fail(RMKV_ERR_FORMAT, what, ": tensor '", s.name, "' has shape [", got, "], the config needs [", want, "]");
        }
        m.tensors.push_back(&t);
    }
    return m;
}

void rmkv_model::init_from_file(const uint8_t *data, size_t size, const std::string &what, bool stable,
                                const rmkv_model_params &p) {
    SafetensorsFile f = SafetensorsFile::parse(data, size, what);
    // Validate every tensor before importing any.
    FileModel m = read_model(f, what);
    config_ = m.config;
    model_id_ = m.model_id;
    tokenizer_ = std::move(m.tokenizer);
    specs_ = std::move(m.specs);
    const std::vector<const TensorView *> &views = m.tensors;
    backend_ = backend_for(p);
    params_.reserve(specs_.size()), sources_.reserve(specs_.size());
    kept_.reserve(specs_.size()), kept_backend_.reserve(specs_.size());
    for (size_t i = 0; i < specs_.size(); ++i) {
        const TensorView &t = *views[i];
        const size_t n = static_cast<size_t>(specs_[i].numel);
        const bool half = t.dtype == RMKV_DTYPE_BF16 || t.dtype == RMKV_DTYPE_F16;
        if (half && is_matrix(specs_[i]) && backend_->has_half_weights()) {
            const uint16_t *w16 = reinterpret_cast<const uint16_t *>(t.data);
            if (!stable || reinterpret_cast<uintptr_t>(t.data) % alignof(uint16_t) != 0) {
                kept_copies_.emplace_back(n);
                std::memcpy(kept_copies_.back().data(), t.data, n * sizeof(uint16_t));
                w16 = kept_copies_.back().data();
            }
            const Half h = t.dtype == RMKV_DTYPE_F16 ? Half::f16 : Half::bf16;
            kept_.push_back({w16, h});
            sources_.push_back(nullptr);
            params_.push_back(nullptr);
            kept_backend_.push_back({backend_->import_half_weights(w16, n), h});
            continue;
        }
        const float *host;
        bool host_stable = stable;
        if (t.dtype == RMKV_DTYPE_F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) {
            host = reinterpret_cast<const float *>(t.data);
        } else {
            host_copies_.emplace_back(static_cast<size_t>(specs_[i].numel));
            convert_to_f32(host_copies_.back().data(), t.data, t.dtype, host_copies_.back().size());
            host = host_copies_.back().data();
            host_stable = true;
        }
        sources_.push_back(host);
        params_.push_back(backend_->import_weights(host, n, host_stable));
        kept_.emplace_back();
        kept_backend_.emplace_back();
    }
    bind();
    log(RMKV_LOG_INFO, what, ": loaded ", n_params(), " parameters, ", config_.n_layers, " layers, d_model ", config_.d_model);
}

void rmkv_model::write_into(SafetensorsWriter &w, rmkv_dtype dtype, ModelImage &img) const {
    auto stream = backend_->new_stream();
    // Host copies, as stored (rounded for 16-bit dtypes) so the fingerprint matches the file.
    img.host.assign(specs_.size(), {});
    img.stored.assign(specs_.size(), {});
    std::vector<const float *> host_ptrs;
    for (size_t i = 0; i < specs_.size(); ++i) {
        size_t n = static_cast<size_t>(specs_[i].numel);
        img.host[i].resize(n);
        to_host(*stream, i, img.host[i].data());
    }
    backend_->sync(*stream);
    for (size_t i = 0; i < specs_.size(); ++i) {
        size_t n = static_cast<size_t>(specs_[i].numel);
        if (dtype != RMKV_DTYPE_F32) {
            img.stored[i].resize(n * 2);
            convert_from_f32(img.stored[i].data(), img.host[i].data(), dtype, n);
            convert_to_f32(img.host[i].data(), img.stored[i].data(), dtype, n);
        }
        host_ptrs.push_back(img.host[i].data());
    }
    std::string config_json = config_.to_json();
    w.set_metadata("format", "rmkv-model");
    w.set_metadata("format_version", kFormatVersion);
    w.set_metadata("config", config_json);
    w.set_metadata("model_id", model_fingerprint(config_json, specs_, host_ptrs));
    if (tokenizer_) w.set_metadata("tokenizer", tokenizer_->to_json());
    for (size_t i = 0; i < specs_.size(); ++i)
        w.add(specs_[i].name, dtype, specs_[i].shape,
              dtype == RMKV_DTYPE_F32 ? static_cast<const void *>(img.host[i].data()) : img.stored[i].data());
}

void rmkv_model::save(const std::string &path, rmkv_dtype dtype) const {
    SafetensorsWriter w;
    ModelImage img;
    write_into(w, dtype, img);
    write_file_atomic(path, w.size(), [&](uint8_t *dest) { w.write(dest); });
}
