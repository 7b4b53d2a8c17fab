// Formatters: one JSONL example (an input and an output string) to the token ids
// of its prompt and of its response, through two templates.
//
// A template is text with the placeholders {input} and {output} (the values of
// the source's input_field and output_field) and special tokens written by name
// (<start>, <end>, any "<...>" the tokenizer knows as one token). The runs of
// text between special tokens are encoded as a whole after substitution; a
// special token becomes its id directly, so a "<end>" typed inside a field value
// is text, never the special token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct rmkv_tokenizer;

namespace rmkv::data {

struct Templates {
    std::string prompt, response;
};
Templates default_templates();  // "user: {input}\n\nassistant:" and " {output}"
Templates chat_templates();     // "{input}<start>" and "{output}<end>"

class Formatter {
public:
    // Throws RMKV_ERR_INVALID_ARGUMENT on an unknown {placeholder}.
    Formatter(const std::string &prompt_template, const std::string &response_template, const rmkv_tokenizer &tok);

    void format(std::string_view input, std::string_view output, std::vector<int32_t> &prompt,
                std::vector<int32_t> &response) const;

private:
    struct Part {
        enum Kind { literal, input, output, special } kind;
        std::string text;
        int32_t id = -1;
    };
    static std::vector<Part> parse(const std::string &tmpl, const rmkv_tokenizer &tok, const char *name);
    void render(const std::vector<Part> &parts, std::string_view input, std::string_view output,
                std::vector<int32_t> &out) const;

    const rmkv_tokenizer &tok_;
    std::vector<Part> prompt_, response_;
};

}  // namespace rmkv::data
