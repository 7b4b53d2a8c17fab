// libFuzzer target: the configuration readers. The first byte picks the model
// config (SPEC section 2: Config::from_json, also as read from a file) or the
// data pipeline config (parse_data_config, resolved against a tokenizer); the
// rest is the JSON. Any input parses or fails with rmkv::Error of the promised
// status; a parsed model config is a fixed point of to_json / from_json.
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "data/data_config.h"
#include "fuzz_common.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/trainer.h"

namespace {
rmkv_tokenizer &tokenizer() {
    static std::unique_ptr<rmkv_tokenizer> tok = [] {
        rmkv::tok::TrainOptions o;
        o.vocab_size = 300;
        o.special_tokens = {"<pad>", "<unk>", "<start>", "<end>"};
        o.texts.emplace_back("user: hello\n\nassistant: hi there <end>");
        return rmkv_tokenizer::train(o);
    }();
    return *tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char *>(data) + 1, size - 1);
    switch (data[0] % 3) {
    case 0:
    case 1: {
        bool from_file = data[0] % 3 == 1;
        rmkv::Config c;
        try {
            c = rmkv::Config::from_json(text, from_file ? 0 : 100, from_file);
        } catch (const rmkv::Error &e) {
            FUZZ_CHECK(e.status() == (from_file ? RMKV_ERR_FORMAT : RMKV_ERR_INVALID_ARGUMENT), "status %d", e.status());
            FUZZ_CHECK(std::string(e.what()).size() > 5, "no message");
            return 0;
        }
        std::string json = c.to_json();
        rmkv::Config again = rmkv::Config::from_json(json, 0, true);
        FUZZ_CHECK(again.to_json() == json, "to_json/from_json is not a fixed point: %s", json.c_str());
        return 0;
    }
    default:
        try {
            rmkv::data::DataConfig d = rmkv::data::parse_data_config(text, tokenizer());
            FUZZ_CHECK(!d.sources.empty() && d.batch_size > 0 && d.n_tokens > 0, "accepted an empty pipeline");
        } catch (const rmkv::Error &e) {
            FUZZ_CHECK(e.status() == RMKV_ERR_INVALID_ARGUMENT, "status %d", e.status());
            FUZZ_CHECK(std::string(e.what()).size() > 5, "no message");
        }
        return 0;
    }
}
