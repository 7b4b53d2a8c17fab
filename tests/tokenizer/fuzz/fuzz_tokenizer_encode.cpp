// libFuzzer target: the encoder and decoders. The first input byte picks a
// tokenizer; the rest is the text (any bytes). Checks: y = decode(encode(x)) is
// valid UTF-8, equals lossy(x) without a normaliser, and with one
// decode(encode(y)) is y normalised again; the streaming decoder gives y.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/token_stream.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/trainer.h"
#include "tokenizer/unicode.h"

namespace {

std::vector<std::unique_ptr<rmkv_tokenizer>> &tokenizers() {
    static std::vector<std::unique_ptr<rmkv_tokenizer>> all = [] {
        std::vector<std::unique_ptr<rmkv_tokenizer>> v;
        const char *texts[] = {"The quick brown fox didn't jump over 1234 lazy dogs.\n  Indented  line\t\ttabs",
                               "Crème brûlée, Ελληνικά, 中文, 😀👍🏽, x = f(a[i]) + 42;", "aaaa bbbb aaaa abab <end>"};
        struct Setup {
            const char *norm;
            bool digits, prefix;
        } setups[] = {{"", false, false}, {"NFD", true, false}, {"NFKC,Lowercase", false, true}};
        for (const auto &s : setups) {
            rmkv::tok::TrainOptions o;
            o.vocab_size = 400;
            o.special_tokens = {"<pad>", "<unk>", "<start>", "<end>"};
            o.normalizer = s.norm;
            o.individual_digits = s.digits;
            o.add_prefix_space = s.prefix;
            for (const char *t : texts) o.texts.emplace_back(t);
            v.push_back(rmkv_tokenizer::train(o));
        }
        return v;
    }();
    return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    auto &all = tokenizers();
    size_t which = data[0] % all.size();
    const rmkv_tokenizer &tok = *all[which];
    std::string_view text(reinterpret_cast<const char *>(data) + 1, size - 1);
    auto ids = tok.encode(text);
    std::string back = tok.decode(ids.data(), ids.size());
    if (!rmkv::tok::is_valid_utf8(back)) std::abort();
    if (which == 0 && back != rmkv::tok::utf8_lossy(text)) std::abort();
    // Normalisation can turn text into a special token's string ("<End>" becomes
    // "<end>" under Lowercase); the second encode then matches that token, and
    // splits the text there, as Hugging Face does. The fixed point holds when it
    // did not happen: as many special tokens in the text as among the ids.
    size_t special_ids = 0, special_texts = 0;
    for (const char *sp : {"<pad>", "<unk>", "<start>", "<end>"}) {
        int32_t id = tok.token_id(sp);
        for (int32_t i : ids) special_ids += i == id;
        for (size_t at = back.find(sp); at != std::string::npos; at = back.find(sp, at + 1)) ++special_texts;
    }
    // A sequence of normalisers need not be idempotent (NFKC then Lowercase: "İ"
    // before U+059A becomes "i" U+0307 U+059A, whose marks NFKC puts in the other
    // order), so the second encode reads `back` normalised again, as Hugging Face's
    // does: its decoding is that text.
    std::string again = back;
    tok.impl().apply_normalizers(again);
    auto ids2 = tok.encode(back);
    if (special_ids == special_texts && tok.decode(ids2.data(), ids2.size()) != again) std::abort();
    rmkv_token_stream stream(tok);
    std::string streamed;
    for (int32_t id : ids) {
        size_t held = 0;
        std::string piece = stream.peek_feed(id, held);
        if (!rmkv::tok::is_valid_utf8(piece)) std::abort();
        stream.commit_feed(id, held);
        streamed += piece;
    }
    streamed += stream.peek_flush();
    if (streamed != back) std::abort();
    return 0;
}
