// libFuzzer target: the data files (JSONL examples and text documents) read by
// the data pipeline. The first byte picks the source kind and options (format,
// separator, on_error); the rest is the file. The pipeline either refuses the
// file (FORMAT naming file and line, or INVALID_ARGUMENT for a source without
// items) or makes batches whose tokens are in the vocabulary and whose targets
// are tokens or -1; its saved position loads back.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"

namespace {
rmkv_tokenizer *tokenizer() {
    static rmkv_tokenizer *tok = [] {
        const char *texts[1] = {"user: hello\n\nassistant: hi there, how are you? 123 {\"input\": \"x\"}"};
        const char *special[4] = {"<pad>", "<unk>", "<start>", "<end>"};
        rmkv_tokenizer_train_params p = rmkv_tokenizer_train_default_params();
        p.vocab_size = 300;
        p.special_tokens = special;
        p.n_special_tokens = 4;
        rmkv_tokenizer *t = nullptr;
        if (rmkv_tokenizer_train_from_texts(texts, nullptr, 1, &p, &t) != RMKV_OK) std::abort();
        return t;
    }();
    return tok;
}
MemFile g_file;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t opt = data[0];
    const std::string &path = g_file.set(data + 1, size - 1);
    std::string source = "{\"path\":\"" + path + "\"";
    if (opt & 1) {
        source += ",\"kind\":\"jsonl\"";
        if (opt & 2) source += ",\"format\":\"chat\"";
        if (opt & 4) source += ",\"input_field\":\"prompt\",\"output_field\":\"response\"";
    } else {
        source += ",\"kind\":\"text\"";
        if (opt & 2) source += ",\"separator\":\"\\n\\n\"";
    }
    source += "}";
    std::string cfg = "{\"sources\":[" + source + "],\"batch_size\":2,\"n_tokens\":16,\"queue_size\":0,\"chunk_bytes\":256";
    if (opt & 8) cfg += ",\"on_error\":\"skip\"";
    if (opt & 16) cfg += ",\"validation_count\":1";
    if (opt & 32) cfg += ",\"eod_token\":\"<end>\"";
    if (opt & 64) cfg += ",\"walk\":\"sequential\"";
    cfg += "}";
    rmkv_data *d = nullptr;
    rmkv_status st = rmkv_data_new(cfg.c_str(), tokenizer(), &d);
    if (st != RMKV_OK) {
        FUZZ_CHECK(st == RMKV_ERR_FORMAT || st == RMKV_ERR_INVALID_ARGUMENT, "data_new: %s", rmkv_status_string(st));
        expect_message(st);
        return 0;
    }
    const int32_t V = static_cast<int32_t>(rmkv_tokenizer_vocab_size(tokenizer()));
    std::vector<int32_t> toks(32), tgts(32);
    for (int b = 0; b < 3; ++b) {
        rmkv_status sn = rmkv_data_next(d, toks.data(), tgts.data(), toks.size(), nullptr);
        if (sn != RMKV_OK) {
            FUZZ_CHECK(sn == RMKV_ERR_FORMAT, "data_next: %s", rmkv_status_string(sn));
            break;
        }
        for (size_t i = 0; i < toks.size(); ++i) {
            FUZZ_CHECK(toks[i] >= 0 && toks[i] < V, "token %d", toks[i]);
            FUZZ_CHECK(tgts[i] >= -1 && tgts[i] < V, "target %d", tgts[i]);
        }
    }
    size_t n = 0;
    rmkv_data_state_save(d, nullptr, 0, &n);
    std::vector<uint8_t> state(n);
    FUZZ_CHECK(rmkv_data_state_save(d, state.data(), n, &n) == RMKV_OK, "state_save");
    FUZZ_CHECK(rmkv_data_state_load(d, state.data(), n) == RMKV_OK, "state_load of its own state");
    rmkv_data_free(d);
    return 0;
}
