// Tokenizer benchmark (the rmkv side of bench/tokenizer/run_bench.sh):
//   rmkv-bench-tokenizer train CORPUS OUT.json [--hf-defaults]
//       trains to 30000 ids; --hf-defaults: no special tokens and only the bytes
//       seen, as the Hugging Face BpeTrainer that Tokenizer.train(files) uses
//   rmkv-bench-tokenizer encode TOKENIZER.json TEXT THREADS
//       encodes the text as documents of 100 lines, 256 documents per
//       rmkv_tokenizer_encode_batch call, as hf_tool.js bench-encode does
// Each prints one JSON line with the seconds and the peak resident memory.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rmkv.h"

namespace {

long peak_rss_kb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int fail(const char *what) {
    std::fprintf(stderr, "rmkv-bench-tokenizer: %s: %s\n", what, rmkv_last_error());
    return 1;
}

int train(int argc, char **argv) {
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    static const char *none = nullptr;
    if (argc > 4 && !std::strcmp(argv[4], "--hf-defaults")) {
        p.special_tokens = &none;
        p.n_special_tokens = 0;
        p.byte_alphabet = 0;
    }
    const char *files[] = {argv[2]};
    rmkv_tokenizer *tok = nullptr;
    double t0 = now();
    if (rmkv_tokenizer_train(files, 1, &p, &tok) != RMKV_OK) return fail("train");
    double s = now() - t0;
    if (rmkv_tokenizer_save(tok, argv[3]) != RMKV_OK) return fail("save");
    std::printf("{\"train_seconds\":%.3f,\"vocab_size\":%zu,\"peak_rss_kb\":%ld}\n", s, rmkv_tokenizer_vocab_size(tok),
                peak_rss_kb());
    rmkv_tokenizer_free(tok);
    return 0;
}

int encode(char **argv) {
    rmkv_tokenizer *tok = nullptr;
    if (rmkv_tokenizer_load(argv[2], &tok) != RMKV_OK) return fail(argv[2]);
    FILE *f = std::fopen(argv[3], "rb");
    if (!f) {
        std::perror(argv[3]);
        return 1;
    }
    std::string text;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    int threads = std::atoi(argv[4]);
    // documents of 100 lines
    std::vector<const char *> docs;
    std::vector<size_t> sizes;
    size_t start = 0, lines = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && ++lines == 100) {
            docs.push_back(text.data() + start);
            sizes.push_back(i + 1 - start);
            start = i + 1;
            lines = 0;
        }
    }
    if (start < text.size()) {
        docs.push_back(text.data() + start);
        sizes.push_back(text.size() - start);
    }
    std::vector<int32_t> ids(text.size() + 1024);
    std::vector<size_t> offsets(257);
    size_t total = 0;
    double t0 = now();
    for (size_t i = 0; i < docs.size(); i += 256) {
        size_t m = std::min<size_t>(256, docs.size() - i), got = 0;
        if (rmkv_tokenizer_encode_batch(tok, docs.data() + i, sizes.data() + i, m, threads, ids.data(), ids.size(),
                                        offsets.data(), &got) != RMKV_OK)
            return fail("encode");
        total += got;
    }
    double s = now() - t0;
    std::printf("{\"threads\":%d,\"seconds\":%.3f,\"mb_per_s\":%.2f,\"tokens\":%zu,\"peak_rss_kb\":%ld}\n", threads, s,
                text.size() / 1e6 / s, total, peak_rss_kb());
    rmkv_tokenizer_free(tok);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc >= 4 && !std::strcmp(argv[1], "train")) return train(argc, argv);
    if (argc == 5 && !std::strcmp(argv[1], "encode")) return encode(argv);
    std::fprintf(stderr,
                 "usage: rmkv-bench-tokenizer train CORPUS OUT.json [--hf-defaults]\n"
                 "       rmkv-bench-tokenizer encode TOKENIZER.json TEXT THREADS\n");
    return 2;
}
