# The training data pipeline (paths relative to src/); include(data/sources.cmake).
set(RMKV_DATA_SOURCES
  data/data_config.cpp
  data/walk.cpp
  data/corpus.cpp
  data/formatter.cpp
  data/sequence_stream.cpp
  data/text_stream.cpp
  data/example_stream.cpp
  data/source.cpp
  data/prefetcher.cpp
  data/pipeline.cpp
  api/api_data.cpp
)
