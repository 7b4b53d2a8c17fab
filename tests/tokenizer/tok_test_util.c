#include "tok_test_util.h"

#include <dirent.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

const char tok_heldout_text[] =
    "<start>The quick brown fox \xE2\x80\x94 didn't jump; it's 3.14159 times \"faster\" than you'd think!<end>\n"
    "Cr\xC3\xA8me br\xC3\xBBl\xC3\xA9""e, na\xC3\xAFve fa\xC3\xA7""ade, \xC3\x85ngstr\xC3\xB6m, S\xC3\xA3o Paulo, Dvo\xC5\x99\xC3\xA1k, "
    "\xC5\x81\xC3\xB3""d\xC5\xBA, \xC4\xB0stanbul; cafe\xCC\x81 vs caf\xC3\xA9.\n"
    "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC: \xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 "
    "\xCF\x83\xCE\xB1\xCF\x82! \xCE\x9F\xCE\x94\xCE\xA5\xCE\xA3\xCE\xA3\xCE\x95\xCE\xA5\xCE\xA3 \xE1\xBD\x81 \xCF\x80\xCE\xBF\xCE\xBB"
    "\xCF\x8D\xCF\x84\xCF\x81\xCE\xBF\xCF\x80\xCE\xBF\xCF\x82.\n"
    "\xE4\xB8\xAD\xE6\x96\x87\xEF\xBC\x9A\xE6\x88\x91\xE7\x88\xB1\xE8\x87\xAA\xE7\x84\xB6\xE8\xAF\xAD\xE8\xA8\x80\xE5\xA4\x84\xE7\x90\x86"
    "\xE3\x80\x82\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xEF\xBC\x9A\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\xE3\x80\x81"
    "\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4: \xEC\x95\x88\xEB\x85\x95\xED\x95\x98\xEC\x84\xB8\xEC\x9A\x94.\n"
    "Emoji: \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
    "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \xE2\x9D\xA4\xEF\xB8\x8F \xE2\x9C\xA8\xF0\x9F\x9A\x80\n"
    "Digits: 0123456789 \xD9\xA1\xD9\xA2\xD9\xA3 \xE2\x85\xB7 \xC2\xB2 1,000,000.00 2024-06-22T11:41:49Z 3rd 42nd\n"
    "Code:\n"
    "    def f(x):\n\treturn x**2  # squared\n"
    "\tif (a != b && c >= d) { printf(\"%d\\n\", a[i]); } // done\n"
    "Whitespace:   three   spaces,\ttab,  trailing   \n"
    "  leading,\xC2\xA0nbsp here, ideographic\xE3\x80\x80space,\r\n"
    "line with CRLF\r\n\n\n"
    "<think>hmm</think> <pad><unk> <start>again<end>  \n"
    "It's, it'S, they'll, we've, I'm, you're, she'd 'quoted' ''s\n"
    "tail without newline  ";

char *tok_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (size) *size = (size_t)n;
    return buf;
}

int tok_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    return w == size ? 0 : -1;
}

int32_t *tok_encode(const rmkv_tokenizer *tok, const char *text, size_t size, size_t *n) {
    size_t needed = 0;
    rmkv_status st = rmkv_tokenizer_encode(tok, text, size, NULL, 0, &needed);
    if (st != RMKV_OK && st != RMKV_ERR_BUFFER_TOO_SMALL) fail_msg("encode: %s", rmkv_last_error());
    int32_t *ids = malloc((needed + 1) * sizeof(int32_t));
    st = rmkv_tokenizer_encode(tok, text, size, ids, needed, n);
    if (st != RMKV_OK) fail_msg("encode: %s", rmkv_last_error());
    assert_int_equal(*n, needed);
    return ids;
}

char *tok_decode(const rmkv_tokenizer *tok, const int32_t *ids, size_t n, size_t *size) {
    size_t needed = 0;
    rmkv_status st = rmkv_tokenizer_decode(tok, ids, n, NULL, 0, &needed);
    if (st != RMKV_OK && st != RMKV_ERR_BUFFER_TOO_SMALL) fail_msg("decode: %s", rmkv_last_error());
    char *text = malloc(needed + 1);
    st = rmkv_tokenizer_decode(tok, ids, n, text, needed, size);
    if (st != RMKV_OK) fail_msg("decode: %s", rmkv_last_error());
    text[*size] = 0;
    return text;
}

/* length of the valid sequence at p, or 0 with *bad = maximal invalid subpart */
static size_t seq_len(const unsigned char *p, size_t n, size_t *bad) {
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else { *bad = 1; return 0; }
    for (size_t i = 1; i < need; i++) {
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (i >= n || p[i] < l || p[i] > h) { *bad = i; return 0; }
    }
    return need;
}

char *tok_utf8_lossy(const char *s, size_t n, size_t *out_n) {
    char *out = malloc(n * 3 + 1);
    size_t o = 0, i = 0;
    while (i < n) {
        size_t bad = 0, len = seq_len((const unsigned char *)s + i, n - i, &bad);
        if (len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += bad;
        }
    }
    out[o] = 0;
    *out_n = o;
    return out;
}

int tok_is_valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t bad = 0, len = seq_len((const unsigned char *)s + i, n - i, &bad);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

const char *const *tok_corpus_files(size_t *n) {
    static char *files[64];
    static size_t count = 0;
    if (!count) {
        const char *dir = "/usr/share/common-licenses";
        DIR *d = opendir(dir);
        if (!d) fail_msg("%s is missing: install the Debian package base-files", dir);
        struct dirent *e;
        while ((e = readdir(d)) && count < 63) {
            if (e->d_name[0] == '.') continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
            files[count++] = strdup(path);
        }
        closedir(d);
        qsort(files, count, sizeof files[0], cmp_str);
        files[count] = NULL;
    }
    *n = count;
    return (const char *const *)files;
}
