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

/* Precision of matrix products (rmkv_train_params, rmkv_session_params; each
   says what it applies to). */
typedef enum rmkv_precision {
    RMKV_PRECISION_AUTO = 0,  /* bf16 matrix products where the device has them (CPUs with AVX512-BF16), else fp32 */
    RMKV_PRECISION_FP32 = 1,  /* everything in fp32 (checks, reproducibility across machines) */
    RMKV_PRECISION_BF16 = 2   /* bf16 inputs, fp32 accumulation; BACKEND error if the device has no bf16 products */
} rmkv_precision;

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
   F32 weights are used in place from the mapped file. On the CPU, the matrices of
   a BF16 or F16 file (every product's weights and tok_emb) are used in place too:
   half the memory of F32, and decoding reads half the bytes; on a CUDA device
   they are copied there as stored, also half the memory. They are computed
   with in fp32, each weight widened exactly, so the logits are those of the same
   weights in an F32 file up to the order of the sums; except that by default, on
   CPUs with AVX512-BF16 and on CUDA devices, a session's products with BF16
   weights take bf16 inputs (rmkv_session_params.precision). (A prefill in fp32
   widens one matrix at a time, into a buffer each calling thread keeps: at most
   16 MB; on CUDA, blocks of at most 16 MB per session.) A
   trainer made from such a model widens them to fp32 (rmkv_trainer_new in the
   model; rmkv_state_tuner_new in a copy of its own). Other tensors: converted
   to fp32.
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
   Borrowed: valid until the model is freed or a trainer changes its weights (the
   next call then returns the new fingerprint). NULL for a NULL model. */
RMKV_API const char *rmkv_model_id(const rmkv_model *model);

/* Number of parameters (scalars). 0 for a NULL model. */
RMKV_API size_t rmkv_model_n_params(const rmkv_model *model);

/* Frees the model. Sessions of the model must be freed first. NULL is a no-op. */
RMKV_API void rmkv_model_free(rmkv_model *model);

/* ------------------------------------------------------------------------- */
/* Tokenizers                                                                 */
/* ------------------------------------------------------------------------- */
/* BEGIN TOKENIZER SECTION */

/* Byte-level BPE, interchangeable with Hugging Face tokenizer.json (SPEC section 8).
   The pipeline is Hugging Face's: added/special tokens are split out of the raw
   text first (leftmost-longest, with their single_word/lstrip/rstrip flags), the
   rest is normalised (NFD/NFC/NFKD/NFKC/Lowercase), normalised added tokens are
   split out, the pre-tokenizers (Digits, ByteLevel with the GPT-2 split) cut words,
   and BPE merges each word.

   Text is bytes. Invalid UTF-8 in a text to encode is first replaced by U+FFFD,
   one per maximal invalid subsequence (as Rust's String::from_utf8_lossy and
   Python's errors="replace" do); NUL bytes are ordinary characters (U+0000).
   Decoding returns exactly what Hugging Face's decode(ids, skip_special_tokens=False)
   returns, as UTF-8: bytes of tokens that do not form whole characters become
   U+FFFD. So decode(encode(x)) == normalise(lossy(x)) whenever every byte has a
   token (always for tokenizers trained by rmkv).

   Threads: a tokenizer is immutable; any number of threads may encode and decode
   with it at once (a word cache inside the tokenizer is shared without contention).

   Supported tokenizer.json components: model BPE (vocab, merges as "a b" or
   ["a", "b"], unk_token (which must be in vocab), fuse_unk, ignore_merges; no dropout, byte_fallback,
   continuing_subword_prefix or end_of_word_suffix), normalizers NFD, NFC, NFKD,
   NFKC, Lowercase and Sequence, pre-tokenizers ByteLevel (add_prefix_space,
   use_regex), Digits and Sequence, decoder ByteLevel or none, post_processor
   none or ByteLevel, truncation and padding null, added tokens with all their
   flags. Anything else is refused (RMKV_ERR_FORMAT naming it), and so is a file
   with more than 32 normalisers or pre-tokenizers, Sequences nested more than 8
   deep, or more than 4 ByteLevel steps (each can double the text). */

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

/* Frees a tokenizer from load, from_json or train. NULL is a no-op. The tokenizer
   of a model (rmkv_model_tokenizer) belongs to the model: do not free it. */
RMKV_API void rmkv_tokenizer_free(rmkv_tokenizer *tok);

/* The vocabulary string of an id (for example "\xC4\xA0the" for " the" in a byte-level
   vocabulary, or "<end>"), NUL-terminated; `needed` counts the NUL. An unused id is
   RMKV_ERR_INVALID_ARGUMENT. Any thread. */
RMKV_API rmkv_status rmkv_tokenizer_token_string(const rmkv_tokenizer *tok, int32_t id,
                                                 char *buf, size_t capacity, size_t *needed);

/* Encodes n_texts texts on up to n_threads threads (0 = all cores). texts[i] has
   sizes[i] bytes (sizes may be NULL: the texts are NUL-terminated). The ids of all
   texts are written one after the other into ids; offsets (n_texts + 1 entries,
   may be NULL) receives where each text's ids begin, offsets[n_texts] being the
   total. *n_ids is the total needed: when it exceeds capacity the call returns
   RMKV_ERR_BUFFER_TOO_SMALL, writes *n_ids and nothing else. Each text is encoded
   exactly as rmkv_tokenizer_encode would. Any thread. */
RMKV_API rmkv_status rmkv_tokenizer_encode_batch(const rmkv_tokenizer *tok, const char *const *texts,
                                                 const size_t *sizes, size_t n_texts, int32_t n_threads,
                                                 int32_t *ids, size_t capacity, size_t *offsets, size_t *n_ids);

/* Training progress: `stage` is "count words" (done/total in bytes read), "count pairs"
   (words) or "merges" (done/total in vocabulary entries). Called on the thread that
   called rmkv_tokenizer_train, a few hundred times at most. Return non-zero to stop:
   the training call then returns RMKV_ERR_CANCELLED. */
typedef int (*rmkv_tokenizer_progress_callback)(const char *stage, uint64_t done, uint64_t total, void *user_data);

typedef struct rmkv_tokenizer_train_params {
    size_t struct_size;              /* sizeof(rmkv_tokenizer_train_params) */
    size_t vocab_size;               /* target size including special tokens; default 30000. Never
                                        below special tokens + alphabet; less when the corpus runs
                                        out of pairs */
    uint64_t min_frequency;          /* a pair seen fewer times is never merged; default 0 */
    const char *const *special_tokens; /* NULL (default): <pad> <unk> <start> <end> <think> </think>,
                                        ids 0..5; otherwise exactly these n_special_tokens (may be 0) */
    size_t n_special_tokens;
    const char *normalizer;          /* comma-separated NFD, NFC, NFKD, NFKC, Lowercase; NULL = "NFD"
                                        (the default); "" = none */
    int32_t individual_digits;       /* 1 (default): Digits(individual_digits) before ByteLevel; 0: none */
    int32_t add_prefix_space;        /* ByteLevel add_prefix_space; default 0 */
    int32_t byte_alphabet;           /* 1 (default): all 256 byte tokens are in the vocabulary even if
                                        unseen, so every text encodes; 0: only the bytes seen (as a
                                        Hugging Face BpeTrainer without initial_alphabet) */
    int32_t n_threads;               /* threads counting words; 0 (default) = all cores */
    rmkv_tokenizer_progress_callback progress;  /* NULL = none */
    void *progress_user_data;
    /* appended fields only */
} rmkv_tokenizer_train_params;

/* Defaults: the original design's tokenizer (vocabulary 30000, NFD, individual digits,
   ByteLevel without prefix space, the six special tokens). Any thread. */
RMKV_API rmkv_tokenizer_train_params rmkv_tokenizer_train_default_params(void);

/* Trains a byte-level BPE tokenizer on text files, read line by line (each line
   with its "\n"), as Hugging Face's Tokenizer.train(files) does: with the same
   corpus and settings the merges are Hugging Face's. Special tokens take the
   first ids and are not split out of the training text. Memory grows with the
   number of distinct words, not with the corpus. Invalid UTF-8 in the files is
   replaced by U+FFFD. *out is owned by the caller. A file that cannot be read is
   RMKV_ERR_IO naming it; a progress callback that returns non-zero gives
   RMKV_ERR_CANCELLED. Any thread. */
RMKV_API rmkv_status rmkv_tokenizer_train(const char *const *files, size_t n_files,
                                          const rmkv_tokenizer_train_params *params, rmkv_tokenizer **out);

/* Same, on texts in memory: each text is one sequence (as Hugging Face's
   train_from_iterator), not split into lines. texts[i] has sizes[i] bytes (sizes
   may be NULL: NUL-terminated texts). The texts are only read during the call. */
RMKV_API rmkv_status rmkv_tokenizer_train_from_texts(const char *const *texts, const size_t *sizes, size_t n_texts,
                                                     const rmkv_tokenizer_train_params *params, rmkv_tokenizer **out);

/* Streaming decoder for token-by-token output (chat, games): the text of a few
   tokens at a time, never half a UTF-8 character. Bytes that may still become a
   character are held back until the next token completes them (or proves them
   invalid: they then come out as U+FFFD). The concatenation of everything fed
   and flushed equals rmkv_tokenizer_decode of all the ids. The stream borrows the
   tokenizer, which must outlive it; one stream is used by one thread at a time. */
typedef struct rmkv_token_stream rmkv_token_stream;

/* *out is owned by the caller (rmkv_token_stream_free). */
RMKV_API rmkv_status rmkv_token_stream_new(const rmkv_tokenizer *tok, rmkv_token_stream **out);

/* Adds one token and writes the text that is now complete (often 0 bytes, never
   NUL-terminated) to text; *size is the count. If capacity is too small the call
   returns RMKV_ERR_BUFFER_TOO_SMALL with *size needed and the stream unchanged
   (3 x the longest token's bytes + 16 always suffice). A bad id is
   RMKV_ERR_INVALID_ARGUMENT, stream unchanged. */
RMKV_API rmkv_status rmkv_token_stream_feed(rmkv_token_stream *s, int32_t id, char *text, size_t capacity, size_t *size);

/* Writes what is held back (an incomplete character comes out as U+FFFD) and
   starts a new sequence. Same buffer rule as feed. */
RMKV_API rmkv_status rmkv_token_stream_flush(rmkv_token_stream *s, char *text, size_t capacity, size_t *size);

/* Frees the stream. NULL is a no-op. */
RMKV_API void rmkv_token_stream_free(rmkv_token_stream *s);
/* END TOKENIZER SECTION */

/* ------------------------------------------------------------------------- */
/* Sessions: the persistent memory of one conversation, story or character    */
/* ------------------------------------------------------------------------- */

typedef struct rmkv_session_params {
    size_t struct_size;      /* sizeof(rmkv_session_params) */
    /* CPU threads this session's computations may use (0 .. 1024). 0 (default): the
       OpenMP setting of the calling thread (OMP_NUM_THREADS, else every core). An
       application that keeps cores busy itself (a game's main and render threads)
       gives fewer: threads that must wait for a busy core slow every step down. */
    int32_t n_threads;
    /* An rmkv_precision, of the products whose weights are stored in bf16 (a model
       loaded from a BF16 file); other weights are always computed in fp32.
       FP32: each weight widened exactly, fp32 products: the logits of the same
       weights in an F32 file, up to the order of the sums. BF16: every such product
       takes its inputs rounded to bf16 and the weights as stored (AVX512-BF16, fp32
       accumulation): faster prefill and faster sessions stepped together; decoding
       one session, bound by memory, 1.1-1.2x. Logits then move
       typically less than the rounding of the weights to bf16 moved them (the tests
       hold them within twice that). On a CUDA device, BF16 is the tensor cores'
       bf16 products. AUTO (default): BF16 where the CPU has AVX512-BF16 or the
       model is on a CUDA device (sm_80 and later), else FP32. 64 bits wide so
       that the struct of callers built before it (struct_size 16 on 64-bit
       systems) keeps the default. */
    int64_t precision;
    /* appended fields only */
} rmkv_session_params;

RMKV_API rmkv_session_params rmkv_session_default_params(void);

/* A new session on `model`, at stream position 0 with each layer's init_memory.
   The model must outlive the session. *out is owned by the caller. params: NULL
   = rmkv_session_default_params(). */
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

/* One token for each of n_sessions (1 .. 2^20) sessions of one model, computed
   together: sessions[i] reads tokens[i]. The sessions' token rows share every
   matrix product, so stepping many sessions (the characters of a game, the
   requests of a server) costs much less than stepping them one by one; the
   results are those of rmkv_session_step(sessions[i], &tokens[i], 1, ...) for
   each i, up to float rounding (for sessions of bf16 precision, up to bf16
   rounding once a product has 32 rows or more: from 32 sessions, or when the
   sessions that end a segment in the same call, whose memory rewrites run
   together, have 32 memory rows or more; see rmkv_session_params.precision).
   When `logits` is not NULL it receives n_sessions x vocab_size floats, row i
   for sessions[i]; each session keeps its own for rmkv_session_sample. Every session must belong to the same
   model and, when the model has BF16 weights, have the same resolved precision
   (else RMKV_ERR_MISMATCH), and appear once. The call uses sessions[0]'s scratch
   (grown to n_sessions rows on first use and kept until that session is freed):
   no session of the list may be in use on another thread meanwhile. Validated
   first: on an error no session has moved. */
RMKV_API rmkv_status rmkv_sessions_step(rmkv_session *const *sessions, size_t n_sessions, const int32_t *tokens,
                                        float *logits);

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
/* Sampling: draws the next token from the logits of the last token stepped   */
/* ------------------------------------------------------------------------- */

typedef struct rmkv_sampler_params {
    size_t struct_size;
    float temperature;          /* 0 = greedy */
    int32_t top_k;              /* 0 = off */
    float top_p;                /* 1 = off */
    float min_p;                /* 0 = off */
    float repetition_penalty;   /* 1 = off */
    int32_t penalty_window;     /* tokens looked back for the penalties (at most 1024) */
    float presence_penalty, frequency_penalty;
    uint64_t seed;
    /* Logit bias: bias_values[i] is added to the logit of bias_tokens[i] before
       everything else (-INFINITY bans the token). The arrays are read during
       each call only. */
    const int32_t *bias_tokens;
    const float *bias_values;
    size_t n_bias;
    /* Tokens never drawn (after the penalties; greedy skips them too). */
    const int32_t *banned_tokens;
    size_t n_banned;
    /* appended fields only */
} rmkv_sampler_params;

/* Defaults: temperature 0.8, top_k 0, top_p 0.95, min_p 0, repetition_penalty 1,
   penalty_window 64, presence and frequency penalties 0, seed 0, no bias, no bans. */
RMKV_API rmkv_sampler_params rmkv_sampler_default_params(void);

/* Draws a token (it is not stepped: step it to continue). Order: logit bias, penalties over
   the last penalty_window tokens stepped (repetition: positive logits divided,
   negative multiplied; presence: minus once; frequency: minus per occurrence),
   bans, then greedy when temperature is 0; else top_k, softmax at the temperature,
   top_p (smallest set reaching the mass), min_p (relative to the most likely),
   and a draw. The session's RNG is seeded from params->seed on its first draw
   and whenever the seed changes; it and the token window are part of the saved
   state, so the same seed gives the same text on every platform and a restored
   session continues the same draws. INVALID_ARGUMENT before any token was
   stepped (after new, reset or a state load) or for bad params. */
RMKV_API rmkv_status rmkv_session_sample(rmkv_session *s, const rmkv_sampler_params *params, int32_t *token);

/* The distribution rmkv_session_sample draws from, on the caller's logits:
   probs[n_vocab] receives each token's probability after bias, penalties (over
   recent[0..n_recent), oldest first; the last penalty_window count), bans and
   filters; 0 for every token filtered out; greedy gives 1 for the argmax. For
   custom decoders and for checking a sampler. Any thread. */
RMKV_API rmkv_status rmkv_sampler_probs(const float *logits, size_t n_vocab, const int32_t *recent, size_t n_recent,
                                        const rmkv_sampler_params *params, float *probs);

/* ------------------------------------------------------------------------- */
/* Generation: prompt in, streamed text out                                   */
/* ------------------------------------------------------------------------- */

typedef enum rmkv_stop_reason {
    RMKV_STOP_LIMIT = 0,      /* max_tokens tokens were generated */
    RMKV_STOP_TOKEN = 1,      /* a stop token was sampled */
    RMKV_STOP_STRING = 2,     /* the text reached a stop string */
    RMKV_STOP_CANCELLED = 3   /* the callback returned non-zero */
} rmkv_stop_reason;

/* Receives each piece of generated text (never half a UTF-8 character, not
   NUL-terminated, valid during the call only). Return 0 to go on, non-zero to
   stop (RMKV_STOP_CANCELLED). */
typedef int (*rmkv_piece_callback)(const char *text, size_t size, void *user_data);

typedef struct rmkv_generate_params {
    size_t struct_size;                   /* sizeof(rmkv_generate_params) */
    const rmkv_sampler_params *sampler;   /* NULL = rmkv_sampler_default_params() */
    int32_t max_tokens;                   /* tokens generated at most (default 256) */
    const int32_t *stop_tokens;           /* a sampled stop token ends the generation; */
    size_t n_stop_tokens;                 /*   its text is not emitted */
    const char *const *stop_strings;      /* NUL-terminated; generation ends when the */
    size_t n_stop_strings;                /*   text contains one, emitted up to it only */
    rmkv_piece_callback on_piece;         /* NULL: nothing is streamed */
    void *user_data;
    /* appended fields only */
} rmkv_generate_params;

RMKV_API rmkv_generate_params rmkv_generate_default_params(void);

typedef struct rmkv_generate_result {
    rmkv_stop_reason stop_reason;
    int32_t n_tokens;        /* tokens sampled (every one was stepped) */
    int32_t stop_index;      /* which stop token or stop string matched; -1 otherwise */
    size_t text_size;        /* bytes of text emitted through on_piece */
} rmkv_generate_result;

/* Steps prompt[0..n_prompt) (n_prompt may be 0 when the session has already
   stepped a token), then samples up to max_tokens tokens. Every sampled token is
   stepped right after it is drawn, so the session has read all of them (a stop
   token included: a turn that ends with <end> leaves <end> in the memory). The
   text goes through the streaming decoder of `tok` (borrowed for the call) to
   on_piece; text that may be the start of a stop string is held back until it
   is known not to be one, so a stop string spanning several tokens is caught and
   never emitted. The concatenation of the pieces is the decoded text of the
   generated tokens up to the stop (without a stop token's text or a stop
   string). `result` may be NULL. A failed prompt step leaves the session as it
   was; on another failure the tokens generated so far remain stepped. */
RMKV_API rmkv_status rmkv_session_generate(rmkv_session *s, const rmkv_tokenizer *tok, const int32_t *prompt,
                                           size_t n_prompt, const rmkv_generate_params *params,
                                           rmkv_generate_result *result);

/* Same, with the prompt given as text (prompt_size bytes, encoded by `tok`). */
RMKV_API rmkv_status rmkv_session_generate_text(rmkv_session *s, const rmkv_tokenizer *tok, const char *prompt,
                                                size_t prompt_size, const rmkv_generate_params *params,
                                                rmkv_generate_result *result);

/* One chat turn in the form of SPEC section 8: steps the user's text followed by
   <start>, generates the model's answer until it samples <end> (added to the stop
   tokens; params' other stops apply too), steps <end> when the answer stopped
   otherwise, and flushes the memory so the turn is folded in and the session
   saves compactly. `tok` must have the <start> and <end> tokens
   (RMKV_ERR_INVALID_ARGUMENT otherwise). */
RMKV_API rmkv_status rmkv_session_chat_turn(rmkv_session *s, const rmkv_tokenizer *tok, const char *user_text,
                                            size_t user_size, const rmkv_generate_params *params,
                                            rmkv_generate_result *result);

/* BEGIN DATA SECTION */
/* ------------------------------------------------------------------------- */
/* Training data: text and JSONL sources tokenised into batches               */
/* ------------------------------------------------------------------------- */

/* A data pipeline turns files into batches in the layout of rmkv_batch: B rows
   of n_tokens inputs and n_tokens next-token targets (-1 = no loss). It streams:
   files are indexed once (offsets only) and read piece by piece while batches
   are made, on a background thread, so a corpus larger than memory is fine.

   Configuration (rmkv_data_new, a JSON object; an unknown key or a bad value
   fails with RMKV_ERR_INVALID_ARGUMENT naming it):
     "sources"         array (required) of source objects, below
     "batch_size"      rows per batch (default 8)
     "n_tokens"        tokens per row (default 512)
     "walk"            default walk of the sources: "shuffled" (default: a new
                       permutation of the items every epoch, no repeats within
                       one), "sequential" (file order) or "random" (independent
                       draws with replacement; an epoch = as many draws as items)
     "seed"            unsigned integer (default 0); the same seed gives the same
                       batches on every platform
     "validation_fraction"  in [0, 1): part of every source's items (documents
                       or examples) held out for validation; at least one item
                       when above 0, and at least one item stays for training
     "validation_count"     or: that many items of every source (default 0)
     "eod_token"       id or token string ("<end>"); when set it ends every text
                       document and every JSONL response (default: none; text
                       documents are then simply concatenated)
     "pad_token"       id or token string for padding (default "<pad>" if the
                       tokenizer has it, else 0); padded targets are -1
     "max_prompt_tokens"     JSONL: the prompt keeps its LAST that many tokens (0 = all)
     "max_completion_tokens" JSONL: the response (eod_token included) keeps its
                       FIRST that many tokens (0 = all)
     "queue_size"      batches prepared ahead on the background thread (default
                       4; 0 = no thread, batches are made inside rmkv_data_next)
     "chunk_bytes"     largest piece of a document read and tokenised at once
                       (default 1 MiB, at least 256; a piece ends where a
                       byte-level pre-tokenizer splits anyway: before a space
                       that follows a word or after a newline, else at a UTF-8
                       character boundary)
     "on_error"        "fail" (default) or "skip": a bad JSONL line is then skipped
                       with a warning on the log
   A source object:
     "path"            a file, or a folder (every regular file below it, hidden
                       names skipped, in sorted path order)
     "kind"            "text" or "jsonl" (default: "jsonl" if path ends in .jsonl)
     "weight"          mixing weight >= 0 (default 1): each row comes from a
                       source drawn with these weights (5, 1, 1 = 5/7, 1/7, 1/7);
                       weight 0 = validation only
     "walk"            this source's walk (default: the top-level "walk")
     "extensions"      folders: file name endings to take (text default: all;
                       jsonl default [".jsonl"])
     text only:
     "separator"       documents are split inside files at this string (for
                       example "\n\n"); default: one document per file. Empty
                       documents are skipped.
     jsonl only (one example per non-blank line, a JSON object):
     "input_field", "output_field"   names of the two string fields (defaults
                       "input" and "output"; for example "prompt" and "response")
     "format"          "default": prompt "user: {input}\n\nassistant:", response
                       " {output}"; "chat": prompt "{input}<start>", response
                       "{output}<end>" (<start>: the model's turn begins, <end>:
                       it ends; both must be tokens of the tokenizer)
     "prompt_template", "response_template"  override the format's templates.
                       {input} and {output} stand for the two fields; a "<name>"
                       that is one token of the tokenizer becomes that token id
                       (text between special tokens is encoded as a whole; a
                       "<end>" inside a field value stays text). Any other {name}
                       is an error.
     "mask_prompt"     true (default): targets that are prompt tokens are -1
   Rows: a text source's token stream (its documents in walk order, each
   followed by eod_token when set) is cut into windows of n_tokens + 1 tokens,
   consecutive windows sharing one token; row = window[0..n), targets =
   window[1..n]. A JSONL row is one example: prompt + response, cut to
   n_tokens + 1 tokens, then padded; target i is token i + 1, -1 when masked or
   padded. Validation rows: the held-out items of each source in turn, in file
   order, once; a text source's last window is padded. */
typedef struct rmkv_data rmkv_data;

/* What rmkv_data_next / rmkv_data_next_validation report with a batch. The
   caller sets struct_size (sizeof(rmkv_data_info)); fields past it are not written. */
typedef struct rmkv_data_info {
    size_t struct_size;
    size_t n_sequences;      /* rows holding data; 0 = the validation pass is over.
                                Rows past it are padding (pad_token, targets -1). */
    int64_t n_targets;       /* targets != -1 in the batch */
    int64_t batch_index;     /* batches served before this one (training, or this validation pass) */
    int64_t epoch;           /* whole epochs completed by the least advanced source of weight > 0 */
    double epoch_progress;   /* the same with the fraction of the current epoch (2.25) */
    /* appended fields only */
} rmkv_data_info;

/* A pipeline over the sources of config_json (see above). Indexes every file
   (reads them once, keeps offsets only): RMKV_ERR_IO names a missing or
   unreadable path, RMKV_ERR_INVALID_ARGUMENT a bad key or value or a source
   without documents. The tokenizer is borrowed: it must stay alive until the
   pipeline is freed. *out is owned by the caller (rmkv_data_free). A pipeline
   is used by one thread at a time (it runs its own background thread). */
RMKV_API rmkv_status rmkv_data_new(const char *config_json, const rmkv_tokenizer *tok, rmkv_data **out);

/* batch_size and n_tokens: a batch needs batch_size x n_tokens int32 per array.
   Either pointer may be NULL. */
RMKV_API rmkv_status rmkv_data_batch_shape(const rmkv_data *data, size_t *batch_size, size_t *n_tokens);

/* The next training batch: tokens and targets each receive batch_size x n_tokens
   ids, row after row; capacity is the length of each array, in int32
   (RMKV_ERR_BUFFER_TOO_SMALL, nothing consumed, when smaller). The stream never
   ends: epochs follow each other. info may be NULL. A bad JSONL line fails with
   RMKV_ERR_FORMAT naming file and line, a file gone with RMKV_ERR_IO; the
   position is then unchanged (the next call tries the same batch again). */
RMKV_API rmkv_status rmkv_data_next(rmkv_data *data, int32_t *tokens, int32_t *targets, size_t capacity,
                                    rmkv_data_info *info);

/* The next batch of the validation pass (same arrays and errors). At the end of
   the pass a batch may be partial (info->n_sequences < batch_size); after it,
   calls return RMKV_OK with n_sequences 0 and all rows padding, until
   rmkv_data_validation_rewind. Without held-out items the pass is empty.
   Independent of the training position. */
RMKV_API rmkv_status rmkv_data_next_validation(rmkv_data *data, int32_t *tokens, int32_t *targets, size_t capacity,
                                               rmkv_data_info *info);

/* Back to the start of the validation pass. */
RMKV_API rmkv_status rmkv_data_validation_rewind(rmkv_data *data);

/* The position (training: after the last batch served; validation pass) as a
   small JSON text (not NUL-terminated), with a checksum and the identity of the
   configuration and the files. *size is the size needed; the size reported is
   the size written as long as no batch is taken in between. Loaded into a
   pipeline made with the same configuration over the same files, the following
   batches are exactly those the saving pipeline would have served. */
RMKV_API rmkv_status rmkv_data_state_save(const rmkv_data *data, void *buf, size_t capacity, size_t *size);

/* Continues from a saved position. A state of another configuration or of
   changed files is RMKV_ERR_MISMATCH saying which; a corrupt one
   RMKV_ERR_FORMAT. On failure the pipeline is unchanged. */
RMKV_API rmkv_status rmkv_data_state_load(rmkv_data *data, const void *buf, size_t size);

/* The resolved configuration and per source: path, kind, weight, walk, files,
   documents or examples, train and validation item counts, templates; as JSON,
   NUL-terminated; *needed counts the NUL. */
RMKV_API rmkv_status rmkv_data_summary_json(const rmkv_data *data, char *buf, size_t capacity, size_t *needed);

/* Stops the background thread and frees the pipeline. NULL is a no-op. */
RMKV_API void rmkv_data_free(rmkv_data *data);
/* END DATA SECTION */

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
    float dropout;                            /* rate at attention probabilities, Wo and ffn.down outputs; [0, 1) */
    uint64_t seed;                            /* of the dropout masks */
    int32_t precision;                        /* rmkv_precision of every product; BF16 keeps fp32 master
                                                 weights and moments; default RMKV_PRECISION_AUTO */
    int64_t recompute;                        /* 1: activation recomputation (checkpointing per layer): the
                                                 backward recomputes each layer's intermediates from its
                                                 kept input, so activation memory stops growing with the
                                                 layer internals x K x L, for about one more forward of
                                                 compute; same gradients. 0 (default): keep everything */
    int64_t parallel_sequences;               /* sequences of a batch computed at once, each on its own device
                                                 stream and host thread, with its own activations and
                                                 gradient buffer (memory grows with it); the gradients are
                                                 summed in sequence-lane order, so results match 1 up to
                                                 rounding. 0 (default): the device's choice (CPU 1, CUDA 4);
                                                 1: one sequence after another; at most 64 */
    int64_t stacked_sequences;                /* sequences one pass runs together, their rows stacked: every
                                                 matrix product, norm and row-wise operation runs once for all
                                                 of them (larger products, fewer launches); attention, pooling
                                                 and the caches stay per sequence. Each parallel lane stacks
                                                 up to this many of its sequences; its activation memory grows
                                                 with it. Same results up to rounding. 0 (default): the
                                                 device's choice (CPU 4, CUDA 1); at most 256 */
    int64_t n_threads;                        /* CPU threads each of the trainer's calls (and each parallel
                                                 lane) may use, 0 .. 1024; 0 (default): the OpenMP setting
                                                 of the calling thread, as for rmkv_session_params.n_threads */
    /* appended fields only */
} rmkv_train_params;

/* Defaults: learning_rate 3e-4, min_learning_rate 3e-5, warmup_steps 100,
   total_steps 0, weight_decay 0.1, beta1 0.9, beta2 0.95, epsilon 1e-8,
   grad_clip 1.0, grad_accum_steps 1, dropout 0, seed 0, precision AUTO, recompute 0,
   parallel_sequences 0, stacked_sequences 0, n_threads 0.
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

/* State tuning (SPEC section 6): a trainer that trains only the initial memories
   (layers.*.init_memory) of `model`, as its own copies; every other weight is
   frozen and the model is never written (its file, mapped or not, stays byte for
   byte the same; its sessions may step between training steps). The LSTM cell
   state still starts at zero. rmkv_train_step, rmkv_trainer_evaluate,
   rmkv_trainer_compute_gradients, rmkv_trainer_gradient and
   rmkv_trainer_step_count work as for a trainer (evaluation and training read the
   tuned memories); checkpoints are refused (INVALID_ARGUMENT). The result becomes
   a session's starting point with rmkv_trainer_apply_state, and a state file
   (a few kilobytes) with rmkv_session_state_save_file. `model` (not owned) must
   outlive the trainer; free with rmkv_trainer_free. */
RMKV_API rmkv_status rmkv_state_tuner_new(const rmkv_model *model, const rmkv_train_params *params, rmkv_trainer **out);

/* State tuning: resets `session` (a session of the tuned model, else
   RMKV_ERR_MISMATCH) to position 0 with the tuned memories as its memory.
   INVALID_ARGUMENT for a trainer of the whole model. */
RMKV_API rmkv_status rmkv_trainer_apply_state(const rmkv_trainer *t, rmkv_session *session);

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

typedef struct rmkv_eval_stats {
    size_t struct_size;
    float loss, accuracy;                      /* mean cross-entropy and argmax accuracy over every target */
    float loss_later, accuracy_later;          /* over segments k >= 2, memory carried */
    float loss_later_reset, accuracy_later_reset; /* the same segments, each starting from init_memory */
    int64_t n_targets, n_targets_later;
} rmkv_eval_stats;

/* Forward only (no gradients, no update): validation loss (perplexity = exp(loss))
   and the memory effect of SPEC section 6, loss_later_reset - loss_later. */
RMKV_API rmkv_status rmkv_trainer_evaluate(rmkv_trainer *t, const rmkv_batch *batch, rmkv_eval_stats *stats);

/* Writes a checkpoint (SPEC section 7): the model (loadable with rmkv_model_load,
   so a checkpoint converts to a model file by loading and saving it), the AdamW
   moments, the optimiser step, the training parameters and `user_json` (a JSON
   object or NULL: the caller's data position, epoch, ...). Atomic. Only between
   optimiser updates (INVALID_ARGUMENT while gradient accumulation is pending). */
RMKV_API rmkv_status rmkv_trainer_save_checkpoint(const rmkv_trainer *t, const char *path, const char *user_json);

/* Continues from a checkpoint: the model's weights, the moments and the step are
   replaced (the schedule continues at that step). The checkpoint's config must
   equal the model's (else RMKV_ERR_MISMATCH); everything is validated before
   anything changes. The trainer's own params stay in force. */
RMKV_API rmkv_status rmkv_trainer_load_checkpoint(rmkv_trainer *t, const char *path);

/* The user_json stored in a checkpoint, NUL-terminated; `needed` counts the NUL. */
RMKV_API rmkv_status rmkv_checkpoint_user_json(const char *path, char *buf, size_t capacity, size_t *needed);

/* Optimiser updates done (0 for NULL). */
RMKV_API int64_t rmkv_trainer_step_count(const rmkv_trainer *t);

RMKV_API void rmkv_trainer_free(rmkv_trainer *t);

#ifdef __cplusplus
}
#endif

#endif /* RMKV_H */
