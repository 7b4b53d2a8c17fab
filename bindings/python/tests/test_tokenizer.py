import json
import unicodedata

import pytest

import rmkv
from conftest import TEXTS


def test_version_and_library():
    assert rmkv.version().count(".") == 2
    assert "librmkv" in rmkv.library_path()


def test_encode_decode_round_trip(tokenizer):
    for text in TEXTS[:3] + ["", "x", "\u00e9\u00e9 \U0001F600"]:
        ids = tokenizer.encode(text)
        assert all(isinstance(i, int) for i in ids)
        assert tokenizer.decode(ids) == unicodedata.normalize("NFD", text)   # the default normaliser
    assert tokenizer.encode(TEXTS[0].encode()) == tokenizer.encode(TEXTS[0])
    assert tokenizer.decode_bytes(tokenizer.encode("caf\u00e9")) == "cafe\u0301".encode()


def test_encode_long_text_needs_a_second_call(tokenizer):
    text = "\U0001F600" * 1000   # 4 bytes a character; several ids a character once merges run out
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text


def test_encode_batch_equals_encode(tokenizer):
    texts = TEXTS[:3] + ["", "the the the"]
    assert tokenizer.encode_batch(texts, n_threads=2) == [tokenizer.encode(t) for t in texts]
    assert tokenizer.encode_batch([]) == []


def test_vocabulary(tokenizer):
    assert len(tokenizer) == tokenizer.vocab_size
    assert 256 < tokenizer.vocab_size <= 320
    end = tokenizer.token_id("<end>")
    assert end is not None and tokenizer.token_string(end) == "<end>"
    assert tokenizer.token_id("no such token here") is None
    with pytest.raises(rmkv.InvalidArgumentError, match=str(tokenizer.vocab_size + 5)):
        tokenizer.token_string(tokenizer.vocab_size + 5)


def test_decode_bad_id_raises_with_the_message(tokenizer):
    with pytest.raises(rmkv.InvalidArgumentError) as e:
        tokenizer.decode([1, 2, 1 << 20])
    assert e.value.status == rmkv.ERR_INVALID_ARGUMENT
    assert e.value.message and str(1 << 20) in e.value.message


def test_json_and_file_round_trip(tokenizer, tmp_path):
    text = tokenizer.to_json()
    assert json.loads(text)["model"]["type"] == "BPE"
    with rmkv.Tokenizer.from_json(text) as t2:
        assert t2.encode(TEXTS[1]) == tokenizer.encode(TEXTS[1])
    path = tmp_path / "tok.json"
    tokenizer.save(path)
    with rmkv.Tokenizer.load(str(path)) as t3:
        assert t3.to_json() == text
    with pytest.raises(rmkv.FormatError):
        rmkv.Tokenizer.from_json("{not json")
    with pytest.raises(rmkv.IoError, match="missing.json"):
        rmkv.Tokenizer.load(tmp_path / "missing.json")


def test_train_from_files_and_options(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("".join(TEXTS), encoding="utf-8")
    stages = []
    with rmkv.Tokenizer.train([f], 300, special_tokens=["<s>", "</s>"], normalizer="", n_threads=1,
                              progress=lambda stage, done, total: stages.append(stage)) as t:
        assert t.token_id("<s>") == 0 and t.token_id("</s>") == 1
        assert t.token_id("<end>") is None
        assert t.decode(t.encode(TEXTS[2])) == TEXTS[2]          # no normaliser
    assert "merges" in stages
    with rmkv.Tokenizer.train(str(f), 280, normalizer="Lowercase", byte_alphabet=False) as t:
        assert t.decode(t.encode("THE CAT")) == "the cat"


def test_train_cancelled_by_progress(tmp_path):
    with pytest.raises(rmkv.CancelledError):
        rmkv.Tokenizer.train_from_texts(TEXTS, 400, progress=lambda *a: True)


def test_train_missing_file(tmp_path):
    with pytest.raises(rmkv.IoError, match="nope.txt"):
        rmkv.Tokenizer.train([tmp_path / "nope.txt"], 300)


def test_streaming_decode_equals_decode(tokenizer):
    text = TEXTS[2] + TEXTS[0]
    ids = tokenizer.encode(text)
    with tokenizer.stream() as s:
        pieces = [s.feed(i) for i in ids]
        pieces.append(s.flush())
        assert "".join(pieces) == tokenizer.decode(ids) == unicodedata.normalize("NFD", text)
        for p in pieces:            # never half a character: every piece is valid text on its own
            assert "\ufffd" not in p
        with pytest.raises(rmkv.InvalidArgumentError):
            s.feed(-1)
        assert s.flush() == ""


def test_closed_tokenizer_raises(tokenizer):
    t = rmkv.Tokenizer.from_json(tokenizer.to_json())
    t.close()
    t.close()
    assert t.closed
    with pytest.raises(ValueError, match="closed"):
        t.encode("x")
