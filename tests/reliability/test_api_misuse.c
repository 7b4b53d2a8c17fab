/* API misuse: a table of every ABI function called with NULL handles and
   pointers, zero and huge sizes, wrong-model states, wrong struct sizes and
   buffers too small, each with the status the header promises and a message.
   Freeing NULL is a no-op for every *_free (the header's only word on freeing;
   freeing a handle twice is undefined behaviour in C and is not an error status
   the library could return). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const char *cfg_a =
    "{\"vocab_size\":40,\"d_model\":8,\"n_layers\":1,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":4,\"ffn_hidden\":8}";
static const char *cfg_b =
    "{\"vocab_size\":40,\"d_model\":8,\"n_layers\":2,\"n_heads\":2,\"memory_slots\":2,\"segment_len\":4,\"ffn_hidden\":8}";

typedef struct {
    rmkv_model *a, *b, *out_model;
    rmkv_session *sa, *sb, *out_session;
    rmkv_tokenizer *tok, *out_tok;
    rmkv_trainer *tr, *out_trainer;
    rmkv_token_stream *ts;
    uint8_t *state_b; /* a state of model b */
    size_t state_b_size;
    uint8_t *model_file;
    size_t model_file_size;
    const char *ckpt_path; /* a checkpoint of model a's trainer */
    const char *ckpt_b_path; /* a checkpoint of a trainer on model b */
} fixture;

static fixture F;
static char buf[64];
static float logits[40 * 8];
static int32_t ids[64];
static size_t sz;
static uint64_t pos;
static int32_t tok1 = 1, bad_tok = 40, neg_tok = -1;

#define HUGE_SIZE ((size_t)-1)

static rmkv_batch batch_of(size_t b, size_t n, const int32_t *t, const int32_t *y) {
    rmkv_batch x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    x.batch_size = b;
    x.n_tokens = n;
    x.tokens = t;
    x.targets = y;
    return x;
}

static const int32_t bt[4] = {1, 2, 3, 4}, by[4] = {2, 3, 4, 5};

/* Each entry: a name, the promised status, the call. */
#define MISUSE_TABLE(X)                                                                                            \
    /* models */                                                                                                   \
    X(model_load_null_path, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load(NULL, NULL, &F.out_model))                  \
    X(model_load_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load("x", NULL, NULL))                            \
    X(model_load_missing, RMKV_ERR_IO, rmkv_model_load("/nonexistent/m.safetensors", NULL, &F.out_model))          \
    X(model_load_directory, RMKV_ERR_IO, rmkv_model_load("/", NULL, &F.out_model))                                  \
    X(model_load_mem_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load_from_memory(NULL, 8, NULL, &F.out_model))    \
    X(model_load_mem_zero, RMKV_ERR_FORMAT, rmkv_model_load_from_memory(buf, 0, NULL, &F.out_model))                \
    X(model_load_mem_huge, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load_from_memory(buf, HUGE_SIZE, NULL, &F.out_model)) \
    X(model_load_mem_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_load_from_memory(F.model_file, F.model_file_size, NULL, NULL)) \
    X(model_load_mem_zero_copy_unaligned, RMKV_ERR_INVALID_ARGUMENT, zero_copy_unaligned())                         \
    X(model_create_null_config, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(NULL, NULL, 1, NULL, &F.out_model))   \
    X(model_create_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create(cfg_a, NULL, 1, NULL, NULL))             \
    X(model_create_not_json, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create("{", NULL, 1, NULL, &F.out_model))        \
    X(model_create_unknown_key, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create("{\"vocab_size\":4,\"x\":1}", NULL, 1, NULL, &F.out_model)) \
    X(model_create_zero_dim, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create("{\"vocab_size\":4,\"d_model\":0}", NULL, 1, NULL, &F.out_model)) \
    X(model_create_huge_dim, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_create("{\"vocab_size\":4,\"d_model\":1e300}", NULL, 1, NULL, &F.out_model)) \
    X(model_create_small_struct, RMKV_ERR_INVALID_ARGUMENT, create_with_struct_size(3))                            \
    X(model_create_zero_struct, RMKV_ERR_INVALID_ARGUMENT, create_with_struct_size(0))                             \
    X(model_save_null_model, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save(NULL, "x"))                                \
    X(model_save_null_path, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save(F.a, NULL))                                 \
    X(model_save_as_bad_dtype, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_save_as(F.a, tmp_path("m"), (rmkv_dtype)7))   \
    X(model_save_no_dir, RMKV_ERR_IO, rmkv_model_save(F.a, "/nonexistent/dir/m.safetensors"))                      \
    X(model_config_null_model, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_config_json(NULL, buf, sizeof buf, &sz))      \
    X(model_config_null_needed, RMKV_ERR_INVALID_ARGUMENT, rmkv_model_config_json(F.a, buf, sizeof buf, NULL))     \
    X(model_config_small, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_model_config_json(F.a, buf, 4, &sz))                    \
    X(model_config_zero_capacity, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_model_config_json(F.a, NULL, 0, &sz))           \
    /* tokenizers */                                                                                               \
    X(tok_load_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_load(NULL, &F.out_tok))                            \
    X(tok_load_missing, RMKV_ERR_IO, rmkv_tokenizer_load("/nonexistent/t.json", &F.out_tok))                      \
    X(tok_from_json_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_from_json(NULL, 4, &F.out_tok))               \
    X(tok_from_json_empty, RMKV_ERR_FORMAT, rmkv_tokenizer_from_json("", 0, &F.out_tok))                           \
    X(tok_from_json_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_from_json("{}", 2, NULL))                  \
    X(tok_save_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_save(NULL, "x"))                                    \
    X(tok_save_no_dir, RMKV_ERR_IO, rmkv_tokenizer_save(F.tok, "/nonexistent/dir/t.json"))                         \
    X(tok_to_json_small, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_tokenizer_to_json(F.tok, buf, sizeof buf, &sz))            \
    X(tok_encode_null_tok, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_encode(NULL, "a", 1, ids, 64, &sz))           \
    X(tok_encode_null_text, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_encode(F.tok, NULL, 1, ids, 64, &sz))        \
    X(tok_encode_null_count, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_encode(F.tok, "a", 1, ids, 64, NULL))       \
    X(tok_encode_small, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_tokenizer_encode(F.tok, "hello there", 11, ids, 0, &sz))    \
    X(tok_decode_bad_id, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_decode(F.tok, &neg_tok, 1, buf, sizeof buf, &sz)) \
    X(tok_decode_null_ids, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_decode(F.tok, NULL, 3, buf, sizeof buf, &sz))  \
    X(tok_token_string_bad, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_token_string(F.tok, 1 << 30, buf, sizeof buf, &sz)) \
    X(tok_batch_null_texts, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_encode_batch(F.tok, NULL, NULL, 2, 1, ids, 64, NULL, &sz)) \
    X(tok_train_null_files, RMKV_ERR_INVALID_ARGUMENT, rmkv_tokenizer_train(NULL, 1, NULL, &F.out_tok))            \
    X(tok_train_missing_file, RMKV_ERR_IO, train_missing_file())                                                   \
    X(stream_new_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_token_stream_new(NULL, &F.ts))                              \
    X(stream_feed_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_token_stream_feed(NULL, 1, buf, sizeof buf, &sz))          \
    X(stream_feed_bad_id, RMKV_ERR_INVALID_ARGUMENT, stream_feed(-5))                                              \
    X(stream_flush_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_token_stream_flush(NULL, buf, sizeof buf, &sz))           \
    /* sessions */                                                                                                 \
    X(session_new_null_model, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(NULL, NULL, &F.out_session))             \
    X(session_new_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_new(F.a, NULL, NULL))                          \
    X(session_new_small_struct, RMKV_ERR_INVALID_ARGUMENT, session_with_struct_size(1))                            \
    X(session_new_negative_threads, RMKV_ERR_INVALID_ARGUMENT, session_with_threads(-1))                           \
    X(session_new_huge_threads, RMKV_ERR_INVALID_ARGUMENT, session_with_threads(1 << 20))                          \
    X(session_new_negative_precision, RMKV_ERR_INVALID_ARGUMENT, session_with_precision(-1))                       \
    X(session_new_unknown_precision, RMKV_ERR_INVALID_ARGUMENT, session_with_precision(3))                         \
    X(step_null_session, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(NULL, &tok1, 1, logits))                     \
    X(step_null_tokens, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, NULL, 1, logits))                       \
    X(step_zero_tokens, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, &tok1, 0, logits))                      \
    X(step_huge_count, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, &tok1, HUGE_SIZE, logits))               \
    X(step_token_past_vocab, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, &bad_tok, 1, logits))              \
    X(step_negative_token, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, &neg_tok, 1, logits))                \
    X(step_all_null_logits, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step_all(F.sa, &tok1, 1, NULL))               \
    X(step_all_zero_tokens, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step_all(F.sa, &tok1, 0, logits))             \
    X(sessions_step_null_list, RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(NULL, 1, &tok1, logits))             \
    X(sessions_step_null_tokens, RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(&F.sa, 1, NULL, logits))            \
    X(sessions_step_zero, RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(&F.sa, 0, &tok1, logits))                  \
    X(sessions_step_huge_count, RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(&F.sa, HUGE_SIZE, &tok1, logits))    \
    X(sessions_step_bad_token, RMKV_ERR_INVALID_ARGUMENT, rmkv_sessions_step(&F.sa, 1, &bad_tok, logits))          \
    X(sessions_step_null_entry, RMKV_ERR_INVALID_ARGUMENT, sessions_step_pair(F.sa, NULL))                         \
    X(sessions_step_twice, RMKV_ERR_INVALID_ARGUMENT, sessions_step_pair(F.sa, F.sa))                              \
    X(sessions_step_other_model, RMKV_ERR_MISMATCH, sessions_step_pair(F.sa, F.sb))                                \
    X(flush_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_flush(NULL))                                             \
    X(reset_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_reset(NULL))                                             \
    X(clone_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_clone(NULL, &F.out_session))                             \
    X(clone_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_clone(F.sa, NULL))                                   \
    X(position_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_position(NULL, &pos, &sz))                            \
    X(state_size_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_size(F.sa, NULL))                             \
    X(state_save_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_save(NULL, buf, sizeof buf, &sz))             \
    X(state_save_small, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_session_state_save(F.sa, buf, sizeof buf, &sz))            \
    X(state_save_zero_capacity, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_session_state_save(F.sa, NULL, 0, &sz))           \
    X(state_load_null_buf, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load(F.sa, NULL, 10))                    \
    X(state_load_zero, RMKV_ERR_FORMAT, rmkv_session_state_load(F.sa, buf, 0))                                     \
    X(state_load_huge, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load(F.sa, buf, HUGE_SIZE))                  \
    X(state_load_wrong_model, RMKV_ERR_MISMATCH, rmkv_session_state_load(F.sa, F.state_b, F.state_b_size))         \
    X(state_load_model_file, RMKV_ERR_FORMAT, rmkv_session_state_load(F.sa, F.model_file, F.model_file_size))     \
    X(state_save_file_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_save_file(F.sa, NULL))                   \
    X(state_save_file_no_dir, RMKV_ERR_IO, rmkv_session_state_save_file(F.sa, "/nonexistent/dir/s.state"))        \
    X(state_load_file_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_state_load_file(NULL, "x"))                    \
    X(state_load_file_missing, RMKV_ERR_IO, rmkv_session_state_load_file(F.sa, "/nonexistent/s.state"))           \
    X(state_load_file_wrong_model, RMKV_ERR_MISMATCH, load_state_file_of_b())                                     \
    X(sample_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(NULL, NULL, &tok1))                               \
    X(sample_before_step, RMKV_ERR_INVALID_ARGUMENT, sample_fresh())                                               \
    X(sample_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_sample(F.sa, NULL, NULL))                            \
    X(sample_bad_temperature, RMKV_ERR_INVALID_ARGUMENT, sample_with_temperature(-1.0f))                            \
    /* data */                                                                                                     \
    X(data_new_null_config, RMKV_ERR_INVALID_ARGUMENT, rmkv_data_new(NULL, F.tok, NULL))                           \
    X(data_new_no_sources, RMKV_ERR_INVALID_ARGUMENT, data_new("{}"))                                              \
    X(data_new_missing_file, RMKV_ERR_IO, data_new("{\"sources\":[{\"path\":\"/nonexistent/x.txt\",\"kind\":\"text\"}]}")) \
    X(data_next_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_data_next(NULL, ids, ids, 64, NULL))                         \
    X(data_batch_shape_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_data_batch_shape(NULL, &sz, &sz))                    \
    X(data_state_load_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_data_state_load(NULL, buf, 4))                         \
    /* training */                                                                                                 \
    X(trainer_new_null_model, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(NULL, NULL, &F.out_trainer))             \
    X(trainer_new_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_new(F.b, NULL, NULL))                          \
    X(trainer_new_bad_lr, RMKV_ERR_INVALID_ARGUMENT, trainer_with_lr(-1.0f))                                       \
    X(train_step_null, RMKV_ERR_INVALID_ARGUMENT, train_step_batch(NULL))                                          \
    X(train_step_null_batch, RMKV_ERR_INVALID_ARGUMENT, rmkv_train_step(F.tr, NULL, NULL))                        \
    X(train_step_zero_rows, RMKV_ERR_INVALID_ARGUMENT, train_step_shape(0, 4, bt, by))                             \
    X(train_step_zero_tokens, RMKV_ERR_INVALID_ARGUMENT, train_step_shape(1, 0, bt, by))                           \
    X(train_step_null_tokens, RMKV_ERR_INVALID_ARGUMENT, train_step_shape(1, 4, NULL, by))                         \
    X(train_step_bad_token, RMKV_ERR_INVALID_ARGUMENT, train_step_bad_token())                                     \
    X(train_gradient_unknown, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_gradient(F.tr, "no.such.tensor", logits, 4, &sz)) \
    X(train_save_ckpt_null_path, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_save_checkpoint(F.tr, NULL, NULL))        \
    X(train_save_ckpt_bad_user, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_save_checkpoint(F.tr, tmp_path("c"), "[1]")) \
    X(train_save_ckpt_no_dir, RMKV_ERR_IO, rmkv_trainer_save_checkpoint(F.tr, "/nonexistent/d/c.ckpt", NULL))      \
    X(train_load_ckpt_missing, RMKV_ERR_IO, rmkv_trainer_load_checkpoint(F.tr, "/nonexistent/c.ckpt"))             \
    X(train_load_ckpt_wrong_model, RMKV_ERR_MISMATCH, rmkv_trainer_load_checkpoint(F.tr, F.ckpt_b_path))          \
    X(train_load_ckpt_not_ckpt, RMKV_ERR_FORMAT, load_model_file_as_checkpoint())                                   \
    X(train_load_ckpt_null, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_load_checkpoint(NULL, F.ckpt_path))            \
    X(ckpt_user_json_small, RMKV_ERR_BUFFER_TOO_SMALL, rmkv_checkpoint_user_json(F.ckpt_path, buf, 1, &sz))        \
    X(ckpt_user_json_null_path, RMKV_ERR_INVALID_ARGUMENT, rmkv_checkpoint_user_json(NULL, buf, sizeof buf, &sz)) \
    /* generation */                                                                                               \
    X(generate_null_session, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate(NULL, F.tok, ids, 1, NULL, NULL))   \
    X(generate_null_prompt, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate(F.sa, F.tok, NULL, 2, NULL, NULL))   \
    X(generate_bad_token, RMKV_ERR_INVALID_ARGUMENT, generate_prompt_token(40))                                    \
    X(generate_small_struct, RMKV_ERR_INVALID_ARGUMENT, generate_with_struct_size(3))                              \
    X(generate_text_null_prompt, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate_text(F.sa, F.tok, NULL, 5, NULL, NULL)) \
    X(generate_text_null_tok, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_generate_text(F.sa, NULL, "hi", 2, NULL, NULL)) \
    X(chat_turn_no_chat_tokens, RMKV_ERR_INVALID_ARGUMENT, rmkv_session_chat_turn(F.sa, F.tok, "hi", 2, NULL, NULL)) \
    X(sampler_probs_null_logits, RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(NULL, 40, NULL, 0, NULL, logits))  \
    X(sampler_probs_zero_vocab, RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(logits, 0, NULL, 0, NULL, logits))  \
    X(sampler_probs_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_sampler_probs(logits, 4, NULL, 0, NULL, NULL))      \
    /* state tuning */                                                                                             \
    X(state_tuner_new_null_model, RMKV_ERR_INVALID_ARGUMENT, rmkv_state_tuner_new(NULL, NULL, &F.out_trainer))     \
    X(state_tuner_new_null_out, RMKV_ERR_INVALID_ARGUMENT, rmkv_state_tuner_new(F.a, NULL, NULL))                  \
    X(apply_state_full_trainer, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_apply_state(F.tr, F.sa))                   \
    X(apply_state_null_session, RMKV_ERR_INVALID_ARGUMENT, rmkv_trainer_apply_state(F.tr, NULL))                   \
    X(apply_state_other_model, RMKV_ERR_MISMATCH, apply_state_other_model())                                       \
    X(state_tuner_checkpoint, RMKV_ERR_INVALID_ARGUMENT, state_tuner_checkpoint())

static rmkv_status session_with_threads(int32_t n) {
    rmkv_session_params p = rmkv_session_default_params();
    p.n_threads = n;
    return rmkv_session_new(F.a, &p, &F.out_session);
}
static rmkv_status session_with_precision(int32_t precision) {
    rmkv_session_params p = rmkv_session_default_params();
    p.precision = precision;
    return rmkv_session_new(F.a, &p, &F.out_session);
}
static rmkv_status sessions_step_pair(rmkv_session *x, rmkv_session *y) {
    rmkv_session *list[2] = {x, y};
    int32_t toks[2] = {1, 2};
    return rmkv_sessions_step(list, 2, toks, logits);
}
static rmkv_status generate_prompt_token(int32_t id) {
    int32_t prompt[2] = {1, id};
    return rmkv_session_generate(F.sa, F.tok, prompt, 2, NULL, NULL);
}
static rmkv_status generate_with_struct_size(size_t n) {
    rmkv_generate_params p = rmkv_generate_default_params();
    p.struct_size = n;
    return rmkv_session_generate(F.sa, F.tok, ids, 1, &p, NULL);
}
static rmkv_status apply_state_other_model(void) {
    rmkv_trainer *t = NULL;
    RMKV_CHECK(rmkv_state_tuner_new(F.a, NULL, &t));
    rmkv_status st = rmkv_trainer_apply_state(t, F.sb);
    rmkv_trainer_free(t);
    return st;
}
static rmkv_status state_tuner_checkpoint(void) {
    rmkv_trainer *t = NULL;
    RMKV_CHECK(rmkv_state_tuner_new(F.a, NULL, &t));
    rmkv_status st = rmkv_trainer_save_checkpoint(t, tmp_path("tuner.ckpt"), NULL);
    rmkv_trainer_free(t);
    return st;
}
static rmkv_status zero_copy_unaligned(void) {
    rmkv_model_params p = rmkv_model_default_params();
    p.flags = RMKV_MODEL_ZERO_COPY;
    uint8_t *shifted = malloc(F.model_file_size + 1);
    memcpy(shifted + 1, F.model_file, F.model_file_size);
    rmkv_status st = rmkv_model_load_from_memory(shifted + 1, F.model_file_size, &p, &F.out_model);
    free(shifted);
    return st;
}
static rmkv_status create_with_struct_size(size_t n) {
    rmkv_model_params p = rmkv_model_default_params();
    p.struct_size = n;
    return rmkv_model_create(cfg_a, NULL, 1, &p, &F.out_model);
}
static rmkv_status session_with_struct_size(size_t n) {
    rmkv_session_params p = rmkv_session_default_params();
    p.struct_size = n;
    return rmkv_session_new(F.a, &p, &F.out_session);
}
static rmkv_status train_missing_file(void) {
    const char *files[1] = {"/nonexistent/corpus.txt"};
    return rmkv_tokenizer_train(files, 1, NULL, &F.out_tok);
}
static rmkv_status stream_feed(int32_t id) {
    rmkv_token_stream *s = NULL;
    RMKV_CHECK(rmkv_token_stream_new(F.tok, &s));
    rmkv_status st = rmkv_token_stream_feed(s, id, buf, sizeof buf, &sz);
    rmkv_token_stream_free(s);
    return st;
}
static rmkv_status load_state_file_of_b(void) {
    const char *p = tmp_path("b.state");
    RMKV_CHECK(rmkv_session_state_save_file(F.sb, p));
    rmkv_status st = rmkv_session_state_load_file(F.sa, p);
    remove(p);
    return st;
}
static rmkv_status sample_fresh(void) {
    rmkv_session *s = NULL;
    RMKV_CHECK(rmkv_session_new(F.a, NULL, &s));
    rmkv_sampler_params p = rmkv_sampler_default_params();
    int32_t t;
    rmkv_status st = rmkv_session_sample(s, &p, &t);
    rmkv_session_free(s);
    return st;
}
static rmkv_status sample_with_temperature(float temp) {
    rmkv_sampler_params p = rmkv_sampler_default_params();
    p.temperature = temp;
    int32_t t;
    RMKV_CHECK(rmkv_session_step(F.sa, &tok1, 1, NULL));
    return rmkv_session_sample(F.sa, &p, &t);
}
static rmkv_status data_new(const char *json) {
    rmkv_data *d = NULL;
    rmkv_status st = rmkv_data_new(json, F.tok, &d);
    rmkv_data_free(d);
    return st;
}
static rmkv_status trainer_with_lr(float lr) {
    rmkv_train_params p = rmkv_train_default_params();
    p.learning_rate = lr;
    return rmkv_trainer_new(F.b, &p, &F.out_trainer);
}
static rmkv_status train_step_batch(rmkv_trainer *t) {
    rmkv_batch b = batch_of(1, 4, bt, by);
    return rmkv_train_step(t, &b, NULL);
}
static rmkv_status train_step_shape(size_t rows, size_t n, const int32_t *t, const int32_t *y) {
    rmkv_batch b = batch_of(rows, n, t, y);
    return rmkv_train_step(F.tr, &b, NULL);
}
static rmkv_status train_step_bad_token(void) {
    int32_t t[4] = {1, 2, 400, 4};
    rmkv_batch b = batch_of(1, 4, t, by);
    return rmkv_train_step(F.tr, &b, NULL);
}
static rmkv_status load_model_file_as_checkpoint(void) {
    const char *p = tmp_path("not-a-ckpt.safetensors");
    RMKV_CHECK(rmkv_model_save(F.a, p));
    rmkv_status st = rmkv_trainer_load_checkpoint(F.tr, p);
    remove(p);
    return st;
}

#define DEFINE_CASE(name, expected, call) \
    static rmkv_status case_##name(void) { return call; }
MISUSE_TABLE(DEFINE_CASE)

typedef struct {
    const char *name;
    rmkv_status expected;
    rmkv_status (*run)(void);
} misuse_case;

#define TABLE_ENTRY(name, expected, call) {#name, expected, case_##name},
static const misuse_case cases[] = {MISUSE_TABLE(TABLE_ENTRY)};

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof F);
    F.a = make_model(cfg_a, 1);
    F.b = make_model(cfg_b, 2);
    RMKV_CHECK(rmkv_session_new(F.a, NULL, &F.sa));
    RMKV_CHECK(rmkv_session_new(F.b, NULL, &F.sb));
    int32_t t[3] = {1, 2, 3};
    RMKV_CHECK(rmkv_session_step(F.sa, t, 3, NULL));
    RMKV_CHECK(rmkv_session_step(F.sb, t, 3, NULL));
    RMKV_CHECK(rmkv_session_state_size(F.sb, &F.state_b_size));
    F.state_b = malloc(F.state_b_size);
    RMKV_CHECK(rmkv_session_state_save(F.sb, F.state_b, F.state_b_size, &F.state_b_size));
    const char *mp = tmp_path("misuse-a.safetensors");
    RMKV_CHECK(rmkv_model_save(F.a, mp));
    F.model_file = read_whole(mp, &F.model_file_size);
    remove(mp);
    const char *texts[2] = {"hello there, general misuse", "the table of misuse cases"};
    rmkv_tokenizer_train_params tp = rmkv_tokenizer_train_default_params();
    tp.vocab_size = 300;
    RMKV_CHECK(rmkv_tokenizer_train_from_texts(texts, NULL, 2, &tp, &F.tok));
    /* a trainer on a third model (its weights become writable), and a checkpoint of model b */
    rmkv_model *c = make_model(cfg_a, 3);
    RMKV_CHECK(rmkv_trainer_new(c, NULL, &F.tr));
    F.ckpt_path = strdup(tmp_path("misuse-a.ckpt"));
    RMKV_CHECK(rmkv_trainer_save_checkpoint(F.tr, F.ckpt_path, "{\"epoch\":12345}"));
    rmkv_model *d = make_model(cfg_b, 4);
    rmkv_trainer *tb = NULL;
    RMKV_CHECK(rmkv_trainer_new(d, NULL, &tb));
    F.ckpt_b_path = strdup(tmp_path("misuse-b.ckpt"));
    RMKV_CHECK(rmkv_trainer_save_checkpoint(tb, F.ckpt_b_path, NULL));
    rmkv_trainer_free(tb);
    rmkv_model_free(d);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    rmkv_trainer_free(F.tr);
    rmkv_model_free((rmkv_model *)*state);
    remove(F.ckpt_path);
    remove(F.ckpt_b_path);
    free((void *)F.ckpt_path);
    free((void *)F.ckpt_b_path);
    rmkv_session_free(F.sa);
    rmkv_session_free(F.sb);
    rmkv_model_free(F.a);
    rmkv_model_free(F.b);
    rmkv_tokenizer_free(F.tok);
    free(F.state_b);
    free(F.model_file);
    return 0;
}

static void every_case_returns_its_status(void **state) {
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        F.out_model = NULL;
        F.out_session = NULL;
        F.out_tok = NULL;
        F.out_trainer = NULL;
        uint64_t pos_before = 0;
        RMKV_CHECK(rmkv_session_position(F.sa, &pos_before, NULL));
        rmkv_status st = cases[i].run();
        const char *msg = rmkv_last_error();
        if (st != cases[i].expected) {
            print_error("%s: %s, expected %s (%s)\n", cases[i].name, rmkv_status_string(st),
                        rmkv_status_string(cases[i].expected), msg);
            failed++;
        } else if (st != RMKV_OK && strlen(msg) < 8) {
            print_error("%s: no message for %s\n", cases[i].name, rmkv_status_string(st));
            failed++;
        }
        /* a failed call hands out nothing */
        if (F.out_model || F.out_session || F.out_tok || F.out_trainer) {
            print_error("%s: failed but wrote an output handle\n", cases[i].name);
            failed++;
        }
        rmkv_model_free(F.out_model);
        rmkv_session_free(F.out_session);
        rmkv_tokenizer_free(F.out_tok);
        rmkv_trainer_free(F.out_trainer);
    }
    print_message("%zu misuse cases\n", sizeof cases / sizeof cases[0]);
    assert_int_equal(failed, 0);
}

static void free_null_is_a_no_op(void **state) {
    (void)state;
    rmkv_model_free(NULL);
    rmkv_session_free(NULL);
    rmkv_tokenizer_free(NULL);
    rmkv_token_stream_free(NULL);
    rmkv_data_free(NULL);
    rmkv_trainer_free(NULL);
    assert_int_equal(rmkv_model_vocab_size(NULL), 0);
    assert_int_equal(rmkv_model_n_params(NULL), 0);
    assert_null(rmkv_model_id(NULL));
    assert_null(rmkv_model_tokenizer(NULL));
    assert_int_equal(rmkv_tokenizer_vocab_size(NULL), 0);
    assert_int_equal(rmkv_tokenizer_token_id(NULL, "a"), -1);
    assert_int_equal(rmkv_tokenizer_token_id(F.tok, NULL), -1);
    assert_int_equal(rmkv_trainer_step_count(NULL), 0);
    assert_non_null(rmkv_status_string((rmkv_status)12345));
    assert_non_null(rmkv_version());
}

/* A failed load leaves the session where it was; a failed train step leaves the step count. */
static void failures_change_nothing(void **state) {
    (void)state;
    uint64_t before, after;
    RMKV_CHECK(rmkv_session_position(F.sa, &before, NULL));
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_session_state_load(F.sa, F.state_b, F.state_b_size));
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, rmkv_session_step(F.sa, &bad_tok, 1, logits));
    RMKV_CHECK(rmkv_session_position(F.sa, &after, NULL));
    assert_int_equal(before, after);
    int64_t steps = rmkv_trainer_step_count(F.tr);
    RMKV_EXPECT(RMKV_ERR_INVALID_ARGUMENT, train_step_bad_token());
    RMKV_EXPECT(RMKV_ERR_MISMATCH, rmkv_trainer_load_checkpoint(F.tr, F.ckpt_b_path));
    assert_int_equal(rmkv_trainer_step_count(F.tr), steps);
    char user[64];
    RMKV_CHECK(rmkv_checkpoint_user_json(F.ckpt_path, user, sizeof user, &sz));
    assert_string_equal(user, "{\"epoch\":12345}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_case_returns_its_status),
        cmocka_unit_test(free_null_is_a_no_op),
        cmocka_unit_test(failures_change_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
