set(RMKV_TOKENIZER_SOURCES tokenizer/tokenizer.cpp)
