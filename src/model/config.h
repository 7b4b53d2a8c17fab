// The model configuration of SPEC section 2, parsed from and written to JSON.
#pragma once

#include <cstdint>
#include <string>

namespace rmkv {

enum class Cell { gru, lstm, minimal };
enum class Pos { rope, learned, sincos };
enum class Norm { layernorm, rmsnorm };
enum class Ffn { swiglu, gelu, none };

struct Config {
    int64_t vocab_size = 0;
    int64_t d_model = 256;
    int64_t n_layers = 4;
    int64_t n_heads = 4;
    int64_t n_kv_heads = 0;  // 0 in JSON input means "n_heads"; always resolved after parsing
    int64_t memory_slots = 16;
    int64_t segment_len = 128;
    Cell cell = Cell::gru;
    Pos pos = Pos::rope;
    Norm norm = Norm::layernorm;
    Ffn ffn = Ffn::swiglu;
    int64_t ffn_hidden = 0;  // 0 in JSON input means the default; always resolved
    bool tie_embeddings = false;
    double norm_eps = 1e-5;
    double rope_theta = 10000.0;

    int64_t head_dim() const { return d_model / n_heads; }
    int64_t d_kv() const { return n_kv_heads * head_dim(); }
    int64_t cell_gates() const { return cell == Cell::lstm ? 4 : 3; }

    // Parses a JSON object; omitted keys take their defaults; default_vocab is used
    // when vocab_size is omitted (0 = required). Throws INVALID_ARGUMENT naming the
    // key and the value (or FORMAT when `from_file` says it came from a file).
    static Config from_json(const std::string &text, int64_t default_vocab, bool from_file);
    std::string to_json() const;  // every key, canonical order
};

const char *to_string(Cell c);
const char *to_string(Pos p);
const char *to_string(Norm n);
const char *to_string(Ffn f);

}  // namespace rmkv
