// The session behind the opaque rmkv_session: the memory of one conversation,
// story or character, the caches of its current segment, and its position.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/sampler.h"
#include "model/model.h"
#include "model/segment.h"

struct rmkv_session {
public:
    // n_threads: CPU threads of its computations (0 = the calling thread's OpenMP setting).
    // bf16: products with bf16-stored weights take bf16 inputs (Backend::set_bf16 on
    // its stream; rmkv_session_params.precision resolved).
    explicit rmkv_session(const rmkv_model &model, int n_threads = 0, bool bf16 = false);
    ~rmkv_session();
    rmkv_session(const rmkv_session &) = delete;
    rmkv_session &operator=(const rmkv_session &) = delete;

    std::unique_ptr<rmkv_session> clone() const;

    // Feeds tokens (validated first). logits_host: NULL, the last token's [V], or with
    // all_rows every token's [n, V].
    void step(const int32_t *tokens, size_t n, float *logits_host, bool all_rows);
    // One token for each of n sessions of one model (distinct), computed together:
    // the same as ss[i]->step(&tokens[i], 1, logits_host + i * V) for each i, with
    // the matrix products shared. Runs on ss[0]'s stream and scratch (grown to n
    // rows once). Validated first: on an error no session has moved.
    static void step_together(rmkv_session *const *ss, size_t n, const int32_t *tokens, float *logits_host);
    void flush();
    void reset();
    // reset(), then the memory of layer l is memory[l] ([M, D], backend memory of
    // the model's backend; a tuned starting state).
    void restart_from(const std::vector<const float *> &memory);
    // Draws the next token from the logits of the last token stepped.
    int32_t sample(const rmkv_sampler_params &p);

    uint64_t position() const { return position_; }
    int64_t segment_fill() const { return fill_; }
    const rmkv_model &model() const { return model_; }

    // Serialisation (state_file.cpp): exact size (no copy), save into a buffer or a
    // file (the tensors go from the session straight to their place), validated load.
    size_t state_size() const;
    // Writes the state to dest when capacity suffices; returns its size.
    size_t state_save(uint8_t *dest, size_t capacity) const;
    void state_save_file(const std::string &path) const;  // atomic (io/file.h)
    void state_load(const uint8_t *data, size_t size, const std::string &what);

private:
    // The scratch of step_together (this session leading): grown to the most rows asked.
    struct Together {
        size_t rows = 0;
        rmkv::RowsWorkspace ws{};
        std::vector<float *> owned;
        std::vector<float> logits;  // host [rows, V], when the caller wants none
        std::vector<rmkv::DecodeRow> decode;
        std::vector<rmkv::CacheRow> cache_rows;  // ws.cache_rows
        std::vector<float *> row_dst;            // ws.row_dst
        std::vector<int32_t> places;             // ws.places
        std::vector<int64_t> positions;          // ws.positions
        std::vector<const float *> rewrite_from;  // rewrite.from, rewrite.to
        std::vector<float *> rewrite_to;
        // Memory rows prepared, and memories rewritten at a segment's end, for up to
        // rewrite_rows sessions at once (0: one at a time).
        rmkv::RewriteRowsWorkspace rewrite{};
        int64_t rewrite_rows = 0;
        std::vector<std::vector<rmkv::LayerState> *> pass;  // the sessions of one such pass (prepare, then rewrite)
        std::vector<const rmkv_session *> sorted;
    };
    Together &together(size_t n);
    // The memory rewrite of the current segment, queued on stream st.
    void rewrite_on(rmkv::Stream &st);

    void allocate();
    void free_all();
    void copy_state_from(const rmkv_session &other);

    const rmkv_model &model_;
    const int n_threads_;
    const bool bf16_;
    std::unique_ptr<rmkv::Stream> stream_;
    std::vector<rmkv::LayerState> layers_;
    rmkv::Workspace ws_{};
    std::vector<float *> owned_;  // every backend buffer above
    float *logits_rows_ = nullptr; // [S, V], allocated on the first step with all_rows
    std::vector<float> last_logits_;  // host copy of the logits after the last token stepped
    bool have_logits_ = false;        // false after reset or a state load: step before sampling
    rmkv::Sampler sampler_;
    uint64_t position_ = 0;       // tokens read since the start of the stream
    int64_t fill_ = 0;            // tokens in the current segment
    bool memory_ready_ = false;   // memory rows' q/k/v computed for this segment
    std::unique_ptr<Together> together_;
};
