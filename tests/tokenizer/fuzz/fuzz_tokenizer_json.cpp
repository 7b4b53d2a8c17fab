// libFuzzer target: the tokenizer.json reader. Any input either loads or fails
// with rmkv::Error; a loaded tokenizer writes JSON that loads back to the same
// JSON, and encodes its own JSON text without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    std::unique_ptr<rmkv_tokenizer> tok;
    try {
        tok = rmkv_tokenizer::from_json(text);
    } catch (const rmkv::Error &) {
        return 0;
    }
    std::string json = tok->to_json();
    auto again = rmkv_tokenizer::from_json(json);
    if (again->to_json() != json) std::abort();
    auto ids = tok->encode(text.substr(0, 4096));
    (void)tok->decode(ids.data(), ids.size());
    return 0;
}
