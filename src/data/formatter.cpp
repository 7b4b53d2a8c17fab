#include "data/formatter.h"

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace rmkv::data {

Templates default_templates() { return {"user: {input}\n\nassistant:", " {output}"}; }
Templates chat_templates() { return {"{input}<start>", "{output}<end>"}; }

namespace {
bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
}  // namespace

std::vector<Formatter::Part> Formatter::parse(const std::string &t, const rmkv_tokenizer &tok, const char *name) {
    std::vector<Part> parts;
    auto add_text = [&](std::string_view s) {
        if (s.empty()) return;
        if (parts.empty() || parts.back().kind != Part::literal) parts.push_back({Part::literal, {}, -1});
        parts.back().text += s;
    };
    size_t i = 0;
    while (i < t.size()) {
        if (t[i] == '{') {
            size_t j = i + 1;
            while (j < t.size() && is_name_char(t[j])) ++j;
            if (j < t.size() && t[j] == '}' && j > i + 1) {
                std::string key = t.substr(i + 1, j - i - 1);
                if (key == "input") parts.push_back({Part::input, {}, -1});
                else if (key == "output") parts.push_back({Part::output, {}, -1});
                else fail(RMKV_ERR_INVALID_ARGUMENT, name, " \"", t, "\": unknown placeholder {", key, "} (known: {input}, {output})");
                i = j + 1;
                continue;
            }
        } else if (t[i] == '<') {
            size_t j = t.find('>', i + 1);
            if (j != std::string::npos && j > i + 1) {
                int32_t id = tok.token_id(std::string_view(t).substr(i, j - i + 1));
                if (id >= 0) {
                    parts.push_back({Part::special, {}, id});
                    i = j + 1;
                    continue;
                }
            }
        }
        add_text(std::string_view(t).substr(i, 1));
        ++i;
    }
    return parts;
}

Formatter::Formatter(const std::string &prompt_template, const std::string &response_template, const rmkv_tokenizer &tok)
    : tok_(tok), prompt_(parse(prompt_template, tok, "prompt_template")),
      response_(parse(response_template, tok, "response_template")) {}

void Formatter::render(const std::vector<Part> &parts, std::string_view input, std::string_view output,
                       std::vector<int32_t> &out) const {
    std::string run;  // text since the last special token, encoded as a whole
    auto flush = [&] {
        if (run.empty()) return;
        std::vector<int32_t> ids = tok_.encode(run);
        out.insert(out.end(), ids.begin(), ids.end());
        run.clear();
    };
    for (const Part &p : parts) {
        switch (p.kind) {
        case Part::literal: run += p.text; break;
        case Part::input: run += input; break;
        case Part::output: run += output; break;
        case Part::special:
            flush();
            out.push_back(p.id);
            break;
        }
    }
    flush();
}

void Formatter::format(std::string_view input, std::string_view output, std::vector<int32_t> &prompt,
                       std::vector<int32_t> &response) const {
    prompt.clear();
    response.clear();
    render(prompt_, input, output, prompt);
    render(response_, input, output, response);
}

}  // namespace rmkv::data
