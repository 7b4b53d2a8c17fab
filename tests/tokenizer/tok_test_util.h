/* Helpers shared by the tokenizer tests (C99). */
#ifndef RMKV_TOK_TEST_UTIL_H
#define RMKV_TOK_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "rmkv.h"

/* The held-out multilingual text: English, accented Latin (precomposed and
   decomposed), Greek, CJK, emoji, digits, code, whitespace runs, special tokens. */
extern const char tok_heldout_text[];

/* Whole file into a malloc'ed buffer (NUL added, not counted); NULL on failure. */
char *tok_read_file(const char *path, size_t *size);
int tok_write_file(const char *path, const void *data, size_t size);

/* rmkv_tokenizer_encode / _decode into malloc'ed buffers; abort the test on failure. */
int32_t *tok_encode(const rmkv_tokenizer *tok, const char *text, size_t size, size_t *n);
char *tok_decode(const rmkv_tokenizer *tok, const int32_t *ids, size_t n, size_t *size);

/* Independent reference: invalid UTF-8 replaced by U+FFFD, one per maximal
   invalid subsequence (Unicode's recommended practice). */
char *tok_utf8_lossy(const char *s, size_t n, size_t *out_n);
int tok_is_valid_utf8(const char *s, size_t n);

/* The text files of /usr/share/common-licenses (Debian package base-files),
   symbolic links left out; a NULL-terminated static list. */
const char *const *tok_corpus_files(size_t *n);

#endif
