import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import rmkv  # noqa: E402

TEXTS = ["The cat sat on the mat. The dog ran after the cat.\n",
         "Once upon a time there was a little game character who remembered everything.\n",
         "Numbers 12345 and 67890, caf\u00e9 na\u00efve \u00fcber \u4e16\u754c \U0001F600.\n"] * 8

CONFIG = {"d_model": 32, "n_layers": 2, "n_heads": 2, "memory_slots": 4, "segment_len": 8}


@pytest.fixture(scope="session")
def tokenizer():
    with rmkv.Tokenizer.train_from_texts(TEXTS, vocab_size=320) as t:
        yield t


@pytest.fixture
def model(tokenizer):
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as m:
        yield m


@pytest.fixture
def model_file(tmp_path, tokenizer):
    path = tmp_path / "model.safetensors"
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as m:
        m.save(path)
    return path
