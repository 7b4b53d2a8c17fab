// An outside C++ project on the installed librmkv through the header-only wrapper
// rmkv.hpp: trains a tiny tokenizer, creates a model, streams a greedy continuation
// token by token, saves the character's memory to bytes and restores it into a new
// session that continues identically; a corrupt model file throws rmkv::Error with
// the library's message.
#include <rmkv.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

int main() try {
    const std::vector<std::string_view> texts = {"The knight guards the gate of the old castle.\n",
                                                 "The innkeeper remembers every traveller by name.\n"};
    rmkv_tokenizer_train_params tp = rmkv_tokenizer_train_default_params();
    tp.vocab_size = 300;
    rmkv::Tokenizer tok = rmkv::Tokenizer::train_from_texts(texts, tp);
    rmkv::Model model = rmkv::Model::create(
        R"({"d_model":32,"n_layers":2,"n_heads":2,"memory_slots":4,"segment_len":16})", &tok, 42);
    model.save("cpp-example.safetensors");
    model = rmkv::Model::load("cpp-example.safetensors");

    rmkv::Session npc(model);
    std::vector<int32_t> prompt = model.tokenizer().encode("The innkeeper");
    const int32_t last = prompt.back();
    prompt.pop_back();
    npc.step(prompt);
    npc.flush();
    const std::vector<uint8_t> saved = npc.save_state();   // bytes for the game's save file
    std::vector<float> logits = npc.step(std::vector<int32_t>{last});

    rmkv::TokenStream out = model.tokenizer().stream();
    std::string text;
    std::vector<int32_t> generated;
    for (int i = 0; i < 12; ++i) {
        int32_t t = npc.argmax();
        generated.push_back(t);
        text += out.feed(t);
#if defined(RMKV_HPP_SPAN)
        npc.step(std::span<const int32_t>(&t, 1), std::span<float>(logits));
#else
        npc.step(t, logits.data());
#endif
    }
    text += out.flush();

    rmkv::Session restored(model);
    restored.load_state(saved);
    restored.step(last);
    std::vector<int32_t> again;
    for (int i = 0; i < 12; ++i) {
        int32_t t = restored.argmax();
        again.push_back(t);
        restored.step(t);
    }
    bool same = again == generated && text == model.tokenizer().decode(generated);
    std::printf("rmkv %s (C++%ld): %zu-byte state, continuation \"%s\" restored %s\n",
                std::string(rmkv::version()).c_str(), static_cast<long>(__cplusplus / 100 % 100), saved.size(),
                text.c_str(), same ? "identically" : "DIFFERENTLY");

    std::ofstream("cpp-corrupt.safetensors") << "not a model";
    try {
        rmkv::Model::load("cpp-corrupt.safetensors");
        std::printf("a corrupt file loaded\n");
        return 1;
    } catch (const rmkv::Error &e) {
        std::printf("corrupt file refused: %s\n", e.what());
        if (e.status() != RMKV_ERR_FORMAT || e.message().empty()) return 1;
    }
    std::remove("cpp-example.safetensors");
    std::remove("cpp-corrupt.safetensors");
    return same ? 0 : 1;
} catch (const rmkv::Error &e) {
    std::fprintf(stderr, "rmkv: %s\n", e.what());
    return 1;
}
