/*
 * rmkv.h — the C ABI of librmkv: RMKV (Recurrent Memory Key-Value) language models.
 *
 * This is the only public header. It compiles as C99 and as C++.
 *
 * Conventions that hold for every function below:
 * - A fallible function returns rmkv_status; results go through out-parameters,
 *   which are written only on success. rmkv_last_error() then says what went wrong.
 * - All or nothing: a call that fails leaves its object as it was.
 * - A params pointer may be NULL, meaning the defaults of rmkv_*_default_params().
 *   Params structs begin with struct_size; new fields are only ever appended.
 * - Buffers: the caller passes (buf, capacity, &needed). When capacity is too small
 *   the call returns RMKV_ERR_BUFFER_TOO_SMALL and writes the size needed, so a
 *   caller may ask with capacity 0 first.
 * - Threads: a model (and its tokenizer) is immutable after loading and may be
 *   used by any number of sessions on any number of threads at once. A session or
 *   a trainer is used by one thread at a time. Functions that take no object are
 *   thread-safe.
 * - The library never exits the process and never prints; diagnostics go to the
 *   log callback (silent by default).
 * - Every *_free accepts NULL.
 */
#ifndef RMKV_H
#define RMKV_H

#include <stddef.h>
#include <stdint.h>

#define RMKV_VERSION_MAJOR 0
#define RMKV_VERSION_MINOR 1
#define RMKV_VERSION_PATCH 0

#if defined(_WIN32)
#  if defined(RMKV_BUILDING)
#    define RMKV_API __declspec(dllexport)
#  else
#    define RMKV_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define RMKV_API __attribute__((visibility("default")))
#else
#  define RMKV_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Status, errors, version, logging                                           */
/* ------------------------------------------------------------------------- */

/* Codes are only ever appended, never renumbered or removed. */
typedef enum rmkv_status {
    RMKV_OK = 0,
    RMKV_ERR_INVALID_ARGUMENT = 1,  /* NULL handle, bad size, bad config value */
    RMKV_ERR_IO = 2,                /* cannot open/read/write a file */
    RMKV_ERR_FORMAT = 3,            /* corrupt, truncated or unsupported file */
    RMKV_ERR_MISMATCH = 4,          /* state or checkpoint made for another model */
    RMKV_ERR_OUT_OF_MEMORY = 5,
    RMKV_ERR_BUFFER_TOO_SMALL = 6,
    RMKV_ERR_BACKEND = 7,           /* device missing or failed (CUDA errors) */
    RMKV_ERR_CANCELLED = 8,         /* a callback asked to stop */
    RMKV_ERR_INTERNAL = 9
} rmkv_status;

/* "MAJOR.MINOR.PATCH" of the library actually loaded. Static string; any thread. */
RMKV_API const char *rmkv_version(void);

/* Message of the last failed call on the calling thread ("" if none). The pointer
   is valid until the next failing call on this thread. Thread-local. */
RMKV_API const char *rmkv_last_error(void);

/* Name of a status code ("RMKV_ERR_FORMAT"). Static string; any thread. */
RMKV_API const char *rmkv_status_string(rmkv_status status);

typedef enum rmkv_log_level {
    RMKV_LOG_DEBUG = 0,
    RMKV_LOG_INFO = 1,
    RMKV_LOG_WARN = 2,
    RMKV_LOG_ERROR = 3
} rmkv_log_level;

/* Receives one complete line (no trailing newline), on any thread, possibly from
   inside load or step. `line` is valid only during the call. */
typedef void (*rmkv_log_callback)(rmkv_log_level level, const char *line, void *user_data);

/* Installs the log callback (NULL = silent, the default). Swapped atomically;
   any thread. Lines below min_level are not delivered. */
RMKV_API void rmkv_set_log_callback(rmkv_log_callback callback, void *user_data,
                                    rmkv_log_level min_level);

/* ------------------------------------------------------------------------- */
/* Opaque objects                                                             */
/* ------------------------------------------------------------------------- */

typedef struct rmkv_model rmkv_model;
typedef struct rmkv_tokenizer rmkv_tokenizer;
typedef struct rmkv_session rmkv_session;
typedef struct rmkv_trainer rmkv_trainer;

/* ------------------------------------------------------------------------- */
/* Models                                                                     */
/* ------------------------------------------------------------------------- */

typedef enum rmkv_dtype {
    RMKV_DTYPE_F32 = 0,
    RMKV_DTYPE_BF16 = 1,
    RMKV_DTYPE_F16 = 2
} rmkv_dtype;

/* rmkv_model_load_from_memory: keep pointers into the caller's buffer instead of
   copying it. The caller keeps the buffer alive and unchanged until the model is
   freed; the buffer must be 8-byte aligned. */
#define RMKV_MODEL_ZERO_COPY 1u

typedef struct rmkv_model_params {
    size_t struct_size;      /* sizeof(rmkv_model_params) */
    const char *device;      /* "cpu" (default; NULL means "cpu"); "cuda", "cuda:N" when built with CUDA */
    uint32_t flags;          /* RMKV_MODEL_* bits; default 0 */
    int32_t use_mmap;        /* rmkv_model_load: 1 (default) maps the file, 0 reads it into memory */
    /* appended fields only */
} rmkv_model_params;

RMKV_API rmkv_model_params rmkv_model_default_params(void);

/* Loads a model file (safetensors, SPEC section 7; F32, BF16 or F16 weights).
   F32 weights are used in place from the mapped file; other dtypes are converted.
   On success *out owns the model: free it with rmkv_model_free. */
RMKV_API rmkv_status rmkv_model_load(const char *path, const rmkv_model_params *params, rmkv_model **out);

/* Same, from a buffer holding a model file. Copies what it needs unless
   params->flags has RMKV_MODEL_ZERO_COPY (see there). */
RMKV_API rmkv_status rmkv_model_load_from_memory(const void *data, size_t size,
                                                 const rmkv_model_params *params, rmkv_model **out);

/* Random initialisation. config_json holds keys of SPEC section 2 (an object; omitted
   keys take their defaults; vocab_size defaults to the tokenizer's size). tokenizer
   may be NULL and is copied. An unknown key or a bad value fails with
   RMKV_ERR_INVALID_ARGUMENT naming the key and the value. Same seed, same weights. */
RMKV_API rmkv_status rmkv_model_create(const char *config_json, const rmkv_tokenizer *tokenizer, uint64_t seed,
                                       const rmkv_model_params *params, rmkv_model **out);

/* Writes the model file (F32 weights) atomically: temp file in the same
   directory, flush, rename. An existing file at path is replaced only on success. */
RMKV_API rmkv_status rmkv_model_save(const rmkv_model *model, const char *path);

/* Same, with the weights stored as `dtype` (F32, BF16 or F16; rounding to nearest even). */
RMKV_API rmkv_status rmkv_model_save_as(const rmkv_model *model, const char *path, rmkv_dtype dtype);

/* The model's tokenizer, or NULL if it has none. Borrowed: valid until the model is freed. */
RMKV_API const rmkv_tokenizer *rmkv_model_tokenizer(const rmkv_model *model);

/* vocab_size of the model (0 for a NULL model). */
RMKV_API size_t rmkv_model_vocab_size(const rmkv_model *model);

/* The full configuration as JSON (every key of SPEC section 2), NUL-terminated.
   `needed` counts the bytes including the NUL. */
RMKV_API rmkv_status rmkv_model_config_json(const rmkv_model *model, char *buf, size_t capacity, size_t *needed);

/* Fingerprint of config and weights (64 hex digits), the `model_id` of SPEC 7.
   Borrowed: valid until the model is freed. NULL for a NULL model. */
RMKV_API const char *rmkv_model_id(const rmkv_model *model);

/* Number of parameters (scalars). 0 for a NULL model. */
RMKV_API size_t rmkv_model_n_params(const rmkv_model *model);

/* Frees the model. Sessions of the model must be freed first. NULL is a no-op. */
RMKV_API void rmkv_model_free(rmkv_model *model);

/* ------------------------------------------------------------------------- */
/* Tokenizers                                                                 */
/* ------------------------------------------------------------------------- */
/* BEGIN TOKENIZER SECTION */

/* Reads a Hugging Face tokenizer.json. A component rmkv does not support is refused
   with RMKV_ERR_FORMAT naming it. *out is owned by the caller (rmkv_tokenizer_free). */
RMKV_API rmkv_status rmkv_tokenizer_load(const char *path, rmkv_tokenizer **out);

/* Same, from the JSON text (need not be NUL-terminated). */
RMKV_API rmkv_status rmkv_tokenizer_from_json(const char *json, size_t size, rmkv_tokenizer **out);

/* Writes the tokenizer as tokenizer.json (atomically). */
RMKV_API rmkv_status rmkv_tokenizer_save(const rmkv_tokenizer *tok, const char *path);

/* The tokenizer.json text, NUL-terminated; `needed` counts the NUL. */
RMKV_API rmkv_status rmkv_tokenizer_to_json(const rmkv_tokenizer *tok, char *buf, size_t capacity, size_t *needed);

/* Encodes `size` bytes of text (any bytes, including NUL and invalid UTF-8).
   Writes up to capacity ids; *n_ids is the count needed (BUFFER_TOO_SMALL if more
   than capacity). The tokenizer may be used from many threads at once. */
RMKV_API rmkv_status rmkv_tokenizer_encode(const rmkv_tokenizer *tok, const char *text, size_t size,
                                           int32_t *ids, size_t capacity, size_t *n_ids);

/* Decodes ids to bytes (not NUL-terminated); *size is the count needed. An id
   outside the vocabulary is RMKV_ERR_INVALID_ARGUMENT. */
RMKV_API rmkv_status rmkv_tokenizer_decode(const rmkv_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                           char *text, size_t capacity, size_t *size);

/* Id of a token given by its vocabulary string (for example "<end>"); -1 if absent. */
RMKV_API int32_t rmkv_tokenizer_token_id(const rmkv_tokenizer *tok, const char *token);

/* Number of ids (vocabulary plus added tokens). 0 for NULL. */
RMKV_API size_t rmkv_tokenizer_vocab_size(const rmkv_tokenizer *tok);

RMKV_API void rmkv_tokenizer_free(rmkv_tokenizer *tok);
/* END TOKENIZER SECTION */

/* ------------------------------------------------------------------------- */
/* Sessions: the persistent memory of one conversation, story or character    */
/* ------------------------------------------------------------------------- */

typedef struct rmkv_session_params {
    size_t struct_size;      /* sizeof(rmkv_session_params) */
    /* appended fields only */
} rmkv_session_params;

RMKV_API rmkv_session_params rmkv_session_default_params(void);

/* A new session on `model`, at stream position 0 with each layer's init_memory.
   The model must outlive the session. *out is owned by the caller. */
RMKV_API rmkv_status rmkv_session_new(const rmkv_model *model, const rmkv_session_params *params,
                                      rmkv_session **out);

/* Feeds n_tokens (1 .. 2^30) tokens. When `logits` is not NULL it receives vocab_size
   floats: the logits after the last token. Memory is rewritten each time the
   current segment reaches segment_len. A failed step (bad token id, ...) has not
   advanced the session. */
RMKV_API rmkv_status rmkv_session_step(rmkv_session *s, const int32_t *tokens, size_t n_tokens,
                                       float *logits);

/* Same as rmkv_session_step, but `logits` (not NULL) receives n_tokens x vocab_size
   floats: the logits after every token (scoring a text, perplexity). Computing
   every row costs n_tokens head products instead of one. */
RMKV_API rmkv_status rmkv_session_step_all(rmkv_session *s, const int32_t *tokens, size_t n_tokens, float *logits);

/* Rewrites the memory from the partial segment now (end of a chat turn, before a
   compact save). A flush of an empty segment changes nothing. */
RMKV_API rmkv_status rmkv_session_flush(rmkv_session *s);

/* Back to position 0 and the model's init_memory. */
RMKV_API rmkv_status rmkv_session_reset(rmkv_session *s);

/* An independent copy (for branching a story). *out is owned by the caller. */
RMKV_API rmkv_status rmkv_session_clone(const rmkv_session *s, rmkv_session **out);

/* Absolute stream position (tokens read so far) and tokens in the current segment. */
RMKV_API rmkv_status rmkv_session_position(const rmkv_session *s, uint64_t *position, size_t *segment_fill);

/* Exact size in bytes that rmkv_session_state_save writes now. */
RMKV_API rmkv_status rmkv_session_state_size(const rmkv_session *s, size_t *size);

/* Serialises the state (a safetensors "rmkv-state", SPEC 7): memories, positions and,
   when the segment is not flushed, its caches. *size is the size needed. */
RMKV_API rmkv_status rmkv_session_state_save(const rmkv_session *s, void *buf, size_t capacity, size_t *size);

/* Replaces the session's state. The whole state is validated first: a state of
   another model or with other shapes is RMKV_ERR_MISMATCH naming what differs; a
   corrupt one RMKV_ERR_FORMAT. On failure the session is unchanged. */
RMKV_API rmkv_status rmkv_session_state_load(rmkv_session *s, const void *buf, size_t size);

/* File variants; the save is atomic (temp file, flush, rename). */
RMKV_API rmkv_status rmkv_session_state_save_file(const rmkv_session *s, const char *path);
RMKV_API rmkv_status rmkv_session_state_load_file(rmkv_session *s, const char *path);

/* Frees the session. NULL is a no-op. */
RMKV_API void rmkv_session_free(rmkv_session *s);

/* ------------------------------------------------------------------------- */
/* Training: a trainer updates the model it was made with, in place           */
/* ------------------------------------------------------------------------- */

typedef struct rmkv_train_params {
    size_t struct_size;
    float learning_rate, min_learning_rate;   /* peak, and the floor of the cosine decay */
    int64_t warmup_steps, total_steps;        /* schedule; total_steps 0 = constant after warmup */
    float weight_decay, beta1, beta2, epsilon;
    float grad_clip;                          /* global norm; 0 = off */
    int32_t grad_accum_steps;                 /* rmkv_train_step calls per optimiser update */
    float dropout;
    uint64_t seed;
    /* appended fields only (device, precision, checkpointing, ...) */
} rmkv_train_params;

/* Defaults: learning_rate 3e-4, min_learning_rate 3e-5, warmup_steps 100,
   total_steps 0, weight_decay 0.1, beta1 0.9, beta2 0.95, epsilon 1e-8,
   grad_clip 1.0, grad_accum_steps 1, dropout 0, seed 0.
   Schedule: at optimiser step s (1, 2, ...) lr = learning_rate * s / warmup_steps
   while s <= warmup_steps; then, when total_steps > 0, a cosine from learning_rate
   down to min_learning_rate reached at total_steps (and held after). */
RMKV_API rmkv_train_params rmkv_train_default_params(void);

typedef struct rmkv_batch {
    size_t struct_size;
    size_t batch_size;              /* B sequences, each starting from the initial memory */
    size_t n_tokens;                /* tokens per sequence */
    const int32_t *tokens;          /* [B][n_tokens] inputs */
    const int32_t *targets;         /* [B][n_tokens] next-token targets; -1 = no loss (prompt, padding) */
    size_t n_segments;              /* K; 0 = consecutive segments of segment_len */
    const int32_t *segment_lens;    /* [K], sums to n_tokens; NULL when n_segments is 0 */
} rmkv_batch;

typedef struct rmkv_train_stats {
    size_t struct_size;
    float loss;                     /* mean over targets != -1 */
    float grad_norm;                /* before clipping; of the last optimiser update */
    float learning_rate;
    int64_t step;                   /* optimiser updates so far */
    int64_t n_targets;
} rmkv_train_stats;

/* A trainer for `model` (not owned; it must outlive the trainer). The model's
   weights become owned, writable memory (a mapped file is no longer referenced).
   Sessions of the model may step between training steps, never during one.
   Weight decay applies to the matrices of attention, cells, feed-forward and
   head; not to norms, biases, embeddings, init_memory or pool.query. */
RMKV_API rmkv_status rmkv_trainer_new(rmkv_model *model, const rmkv_train_params *params, rmkv_trainer **out);

/* Forward and backward over the batch (every sequence from the initial memory,
   memory and gradients flowing through its K segments), then, every
   grad_accum_steps calls, an AdamW update with clipping and the schedule. A step
   whose gradients are not finite is skipped (weights and moments untouched) with
   a warning on the log; stats->grad_norm then reports the non-finite norm.
   stats may be NULL. */
RMKV_API rmkv_status rmkv_train_step(rmkv_trainer *t, const rmkv_batch *batch, rmkv_train_stats *stats);

/* Loss and gradients of a batch without updating anything (the gradients of an
   accumulation in progress are replaced). For inspection and checks. */
RMKV_API rmkv_status rmkv_trainer_compute_gradients(rmkv_trainer *t, const rmkv_batch *batch, float *loss);

/* The current gradient of the parameter named `name` (a tensor name of SPEC
   section 3) as float32; *n is its element count (BUFFER_TOO_SMALL if capacity,
   in floats, is smaller). */
RMKV_API rmkv_status rmkv_trainer_gradient(const rmkv_trainer *t, const char *name, float *buf, size_t capacity,
                                           size_t *n);

RMKV_API void rmkv_trainer_free(rmkv_trainer *t);

#ifdef __cplusplus
}
#endif

#endif /* RMKV_H */
