// rmkv tokenizer train | encode | decode | info — on the public C ABI only.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "rmkv.h"

namespace {

int report(const char *what) {
    std::fprintf(stderr, "rmkv tokenizer: %s: %s\n", what, rmkv_last_error());
    return 1;
}

int usage() {
    std::fprintf(stderr,
                 "usage:\n"
                 "  rmkv tokenizer train -o OUT.json [options] FILE...\n"
                 "      --vocab-size N       (30000)     --min-frequency N (0)\n"
                 "      --special a,b,...    special tokens (default <pad>,<unk>,<start>,<end>,<think>,</think>);\n"
                 "                           --special '' for none\n"
                 "      --normalizer LIST    NFD (default), NFC, NFKD, NFKC, Lowercase, comma-separated; '' for none\n"
                 "      --no-digits          do not split digits individually\n"
                 "      --prefix-space       ByteLevel add_prefix_space\n"
                 "      --seen-bytes-only    only bytes seen in the corpus get a token (HF's default trainer)\n"
                 "      --threads N          (0 = all cores)   --quiet\n"
                 "  rmkv tokenizer encode TOKENIZER.json [--file F | TEXT...] [--tokens]\n"
                 "      ids on one line (stdin when neither --file nor TEXT); --tokens prints the token strings\n"
                 "  rmkv tokenizer decode TOKENIZER.json [ID...] [--stream]\n"
                 "      text of the ids (stdin when none); --stream goes through the streaming decoder\n"
                 "  rmkv tokenizer info TOKENIZER.json\n");
    return 2;
}

bool read_stream(FILE *f, std::string &out) {
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    return !std::ferror(f);
}

bool read_path(const char *path, std::string &out) {
    FILE *f = std::fopen(path, "rb");
    if (!f) return false;
    bool ok = read_stream(f, out);
    std::fclose(f);
    return ok;
}

int on_progress(const char *stage, uint64_t done, uint64_t total, void *) {
    static std::string last;
    if (last != stage && !last.empty()) std::fputc('\n', stderr);
    last = stage;
    std::fprintf(stderr, "\r%-12s %llu / %llu", stage, static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total));
    return 0;
}

std::vector<std::string> split_commas(const std::string &s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size() && !s.empty()) {
        size_t c = s.find(',', start);
        std::string part = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
        if (!part.empty()) out.push_back(part);
        if (c == std::string::npos) break;
        start = c + 1;
    }
    return out;
}

int train(int argc, char **argv) {
    rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
    const char *out = nullptr;
    std::vector<std::string> specials;
    bool custom_specials = false, quiet = false;
    std::string normalizer;
    std::vector<const char *> files;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "rmkv tokenizer train: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "-o" || a == "--out") out = value();
        else if (a == "--vocab-size") p.vocab_size = std::strtoull(value(), nullptr, 10);
        else if (a == "--min-frequency") p.min_frequency = std::strtoull(value(), nullptr, 10);
        else if (a == "--special") custom_specials = true, specials = split_commas(value());
        else if (a == "--normalizer") normalizer = value(), p.normalizer = normalizer.c_str();
        else if (a == "--no-digits") p.individual_digits = 0;
        else if (a == "--prefix-space") p.add_prefix_space = 1;
        else if (a == "--seen-bytes-only") p.byte_alphabet = 0;
        else if (a == "--threads") p.n_threads = std::atoi(value());
        else if (a == "--quiet") quiet = true;
        else if (!a.empty() && a[0] == '-') return usage();
        else files.push_back(argv[i]);
    }
    if (!out || files.empty()) return usage();
    std::vector<const char *> special_ptrs;
    for (const auto &s : specials) special_ptrs.push_back(s.c_str());
    static const char *none = nullptr;
    if (custom_specials) {
        p.special_tokens = special_ptrs.empty() ? &none : special_ptrs.data();
        p.n_special_tokens = special_ptrs.size();
    }
    if (!quiet) p.progress = on_progress;
    auto t0 = std::chrono::steady_clock::now();
    rmkv_tokenizer *tok = nullptr;
    if (rmkv_tokenizer_train(files.data(), files.size(), &p, &tok) != RMKV_OK) {
        if (!quiet) std::fputc('\n', stderr);
        return report("train");
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!quiet) std::fputc('\n', stderr);
    rmkv_status st = rmkv_tokenizer_save(tok, out);
    size_t vocab = rmkv_tokenizer_vocab_size(tok);
    rmkv_tokenizer_free(tok);
    if (st != RMKV_OK) return report(out);
    std::fprintf(stderr, "rmkv tokenizer: %zu ids trained in %.2f s, written to %s\n", vocab, s, out);
    return 0;
}

rmkv_tokenizer *load(const char *path) {
    rmkv_tokenizer *tok = nullptr;
    if (rmkv_tokenizer_load(path, &tok) != RMKV_OK) {
        report(path);
        return nullptr;
    }
    return tok;
}

int encode(int argc, char **argv) {
    if (argc < 2) return usage();
    rmkv_tokenizer *tok = load(argv[1]);
    if (!tok) return 1;
    std::string text;
    bool tokens = false, have_text = false;
    const char *file = nullptr;
    for (int i = 2; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--tokens")) tokens = true;
        else if (!std::strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else {
            if (have_text) text += ' ';
            text += argv[i];
            have_text = true;
        }
    }
    if (file) {
        if (!read_path(file, text)) {
            std::perror(file);
            rmkv_tokenizer_free(tok);
            return 1;
        }
    } else if (!have_text) {
        read_stream(stdin, text);
    }
    size_t n = 0;
    rmkv_status st = rmkv_tokenizer_encode(tok, text.data(), text.size(), nullptr, 0, &n);
    std::vector<int32_t> ids(n);
    if (st == RMKV_ERR_BUFFER_TOO_SMALL) st = rmkv_tokenizer_encode(tok, text.data(), text.size(), ids.data(), n, &n);
    if (st != RMKV_OK) {
        rmkv_tokenizer_free(tok);
        return report("encode");
    }
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        if (i) std::fputc(' ', stdout);
        if (tokens) {
            size_t need = 0;
            rmkv_tokenizer_token_string(tok, ids[i], nullptr, 0, &need);
            s.assign(need, '\0');
            rmkv_tokenizer_token_string(tok, ids[i], s.data(), need, &need);
            std::fputs(s.c_str(), stdout);
        } else {
            std::printf("%d", ids[i]);
        }
    }
    std::fputc('\n', stdout);
    rmkv_tokenizer_free(tok);
    return 0;
}

int decode(int argc, char **argv) {
    if (argc < 2) return usage();
    rmkv_tokenizer *tok = load(argv[1]);
    if (!tok) return 1;
    bool stream = false;
    std::vector<int32_t> ids;
    std::string numbers;
    for (int i = 2; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--stream")) stream = true;
        else numbers += std::string(argv[i]) + ' ';
    }
    if (numbers.empty()) read_stream(stdin, numbers);
    for (const char *p = numbers.c_str(); *p;) {
        char *end;
        long v = std::strtol(p, &end, 10);
        if (end == p) {
            if (*p == ' ' || *p == '\n' || *p == '\t' || *p == ',' || *p == '\r') {
                ++p;
                continue;
            }
            std::fprintf(stderr, "rmkv tokenizer decode: not an id: \"%.20s\"\n", p);
            rmkv_tokenizer_free(tok);
            return 1;
        }
        ids.push_back(static_cast<int32_t>(v));
        p = end;
    }
    int rc = 0;
    if (stream) {
        rmkv_token_stream *s = nullptr;
        if (rmkv_token_stream_new(tok, &s) != RMKV_OK) {
            rmkv_tokenizer_free(tok);
            return report("stream");
        }
        std::vector<char> buf(1 << 16);
        for (int32_t id : ids) {
            size_t n = 0;
            if (rmkv_token_stream_feed(s, id, buf.data(), buf.size(), &n) != RMKV_OK) {
                rc = report("decode");
                break;
            }
            std::fwrite(buf.data(), 1, n, stdout);
            std::fflush(stdout);
        }
        size_t n = 0;
        if (!rc && rmkv_token_stream_flush(s, buf.data(), buf.size(), &n) == RMKV_OK) std::fwrite(buf.data(), 1, n, stdout);
        rmkv_token_stream_free(s);
    } else {
        size_t n = 0;
        rmkv_status st = rmkv_tokenizer_decode(tok, ids.data(), ids.size(), nullptr, 0, &n);
        std::string text(n, '\0');
        if (st == RMKV_ERR_BUFFER_TOO_SMALL) st = rmkv_tokenizer_decode(tok, ids.data(), ids.size(), text.data(), n, &n);
        if (st != RMKV_OK)
            rc = report("decode");
        else
            std::fwrite(text.data(), 1, n, stdout);
    }
    rmkv_tokenizer_free(tok);
    return rc;
}

int info(int argc, char **argv) {
    if (argc < 2) return usage();
    rmkv_tokenizer *tok = load(argv[1]);
    if (!tok) return 1;
    std::printf("ids: %zu\n", rmkv_tokenizer_vocab_size(tok));
    static const char *known[] = {"<pad>", "<unk>", "<start>", "<end>", "<think>", "</think>",
                                  "<s>",   "</s>",  "<|endoftext|>"};
    for (const char *t : known) {
        int32_t id = rmkv_tokenizer_token_id(tok, t);
        if (id >= 0) std::printf("%-14s %d\n", t, id);
    }
    size_t need = 0;
    rmkv_tokenizer_to_json(tok, nullptr, 0, &need);
    std::printf("tokenizer.json: %zu bytes\n", need ? need - 1 : 0);
    rmkv_tokenizer_free(tok);
    return 0;
}

}  // namespace

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *sub = argv[1];
    if (!std::strcmp(sub, "train")) return train(argc - 1, argv + 1);
    if (!std::strcmp(sub, "encode")) return encode(argc - 1, argv + 1);
    if (!std::strcmp(sub, "decode")) return decode(argc - 1, argv + 1);
    if (!std::strcmp(sub, "info")) return info(argc - 1, argv + 1);
    return usage();
}
