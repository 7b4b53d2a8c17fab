# The tokenizer (issue 3): paths relative to src/.
set(RMKV_TOKENIZER_SOURCES
  tokenizer/unicode.cpp
  tokenizer/pretokenizer.cpp
  tokenizer/bpe.cpp
  tokenizer/added_tokens.cpp
  tokenizer/tokenizer.cpp
  tokenizer/json_io.cpp
  tokenizer/trainer.cpp
  tokenizer/word_counter.cpp
  tokenizer/token_stream.cpp
)
