import numpy as np
import pytest

import rmkv
from conftest import CONFIG

TEXT = ("The old lighthouse keeper wrote in his log every night. The sea was calm, the lamp was bright, "
        "and the ships passed safely.\n") * 20
PROMPT = "The old lighthouse keeper"


@pytest.fixture(scope="module")
def trained():
    tok = rmkv.Tokenizer.train_from_texts([TEXT], vocab_size=300)
    m = rmkv.Model.create(CONFIG, tok, seed=3)
    ids = np.array(tok.encode(TEXT), dtype=np.int32)
    with m.trainer(learning_rate=1e-2, warmup_steps=0, precision="fp32") as t:
        for step in range(60):
            starts = [(step * 97 + r * 211) % (len(ids) - 33) for r in range(4)]
            rows = np.stack([ids[a:a + 33] for a in starts])
            t.step(rows[:, :-1], rows[:, 1:])
    yield m
    m.close()
    tok.close()


def manual_greedy(m, prompt, n):
    tok = m.tokenizer
    with m.session() as s, tok.stream() as ts:
        s.step(tok.encode(prompt))
        ids, text = [], ""
        for _ in range(n):
            t = s.sample(0.0)
            ids.append(t)
            text += ts.feed(t)
            s.step(t)
        return ids, text + ts.flush()


def test_generate_streams_the_greedy_text(trained):
    ids, expected = manual_greedy(trained, PROMPT, 30)
    with trained.session() as s:
        g = s.generate(PROMPT, max_tokens=30, temperature=0.0)
        pieces = list(g)
        assert "".join(pieces) == expected and len(pieces) > 1
        assert g.result == {"stop_reason": "limit", "n_tokens": 30, "stop_index": -1,
                            "text_size": len(expected.encode())}
        assert s.position == len(trained.tokenizer.encode(PROMPT)) + 30
    with trained.session() as s:                       # token ids as the prompt, then continuing
        assert s.generate_text(trained.tokenizer.encode(PROMPT), max_tokens=10, temperature=0.0) == \
            trained.tokenizer.decode(ids[:10])
        assert s.generate_text(None, max_tokens=20, temperature=0.0) == trained.tokenizer.decode(ids[10:30])


def test_stop_tokens_and_strings(trained):
    ids, text = manual_greedy(trained, PROMPT, 30)
    stop = ids[5]
    with trained.session() as s:
        g = s.generate(PROMPT, max_tokens=30, temperature=0.0, stop_tokens=[12345 % 7 + 1000, stop])
        out = "".join(g)
        assert g.result["stop_reason"] == "token" and g.result["stop_index"] == 1
        assert out == trained.tokenizer.decode(ids[:ids.index(stop)])
    sub = text[10:16]
    with trained.session() as s:
        g = s.generate(PROMPT, max_tokens=30, temperature=0.0, stop_strings=["zzzz", sub])
        out = "".join(g)
        assert g.result["stop_reason"] == "string" and g.result["stop_index"] == 1
        assert out == text[:text.index(sub)]


def test_closing_the_iterator_cancels(trained):
    with trained.session() as s:
        g = s.generate(PROMPT, max_tokens=1_000_000, temperature=1.0, seed=1)
        first = next(g)
        assert isinstance(first, str)
        g.close()
        assert g.result["stop_reason"] == "cancelled" and g.result["n_tokens"] < 1_000_000
        assert s.position == len(trained.tokenizer.encode(PROMPT)) + g.result["n_tokens"]
        s.step(1)                                      # the session is free again
        for i, _ in enumerate(s.generate(None, max_tokens=1_000_000, temperature=1.0)):
            if i == 2:
                break                                  # dropping the iterator cancels too
        assert s.position < 1_000_000


def test_chat_turn(trained):
    with trained.session() as s:
        g = s.generate("Hello keeper", chat=True, max_tokens=8, temperature=0.0)
        "".join(g)
        assert g.result["stop_reason"] in ("limit", "token")
        assert s.segment_fill == 0                     # the turn is folded into the memory


def test_generation_errors(trained, tokenizer):
    with trained.session() as s:
        with pytest.raises(rmkv.InvalidArgumentError, match=str(trained.vocab_size + 3)):
            list(s.generate([1, trained.vocab_size + 3], max_tokens=4))
        assert s.position == 0
        with pytest.raises(rmkv.InvalidArgumentError):
            list(s.generate(None, max_tokens=4))      # nothing stepped yet
        with pytest.raises(TypeError, match="temprature"):
            s.generate(PROMPT, temprature=0.0)
        with pytest.raises(rmkv.InvalidArgumentError):
            list(s.generate(PROMPT, max_tokens=4, top_p=2.0))
    with rmkv.Model.create(dict(CONFIG, vocab_size=50), seed=1) as m, m.session() as s:
        with pytest.raises(ValueError, match="tokenizer"):
            s.generate([1, 2])
        s.step([1, 2])
        assert s.generate_text(None, tokenizer=tokenizer, max_tokens=3) is not None
    tok = rmkv.Tokenizer.train_from_texts([TEXT], vocab_size=280, special_tokens=[])
    with rmkv.Model.create(CONFIG, tok, seed=1) as m, m.session() as s:
        with pytest.raises(rmkv.InvalidArgumentError, match="<start>|<end>"):
            list(s.generate("hi", chat=True, max_tokens=3))
    tok.close()


def test_logit_bias_bans_and_probs(trained):
    with trained.session() as s:
        logits = s.step(trained.tokenizer.encode(PROMPT)).copy()
        best = int(np.argmax(logits))
        assert s.sample(0.0) == best
        assert s.sample(0.0, banned_tokens=[best]) != best
        assert s.sample(0.0, logit_bias={7: 1e4}) == 7
        assert s.sample(0.0, logit_bias={best: float("-inf")}) != best
        p = rmkv.sampler_probs(logits, temperature=0.0)
        assert p[best] == 1.0 and p.sum() == 1.0
        p = rmkv.sampler_probs(logits, temperature=1.0, top_p=1.0)
        np.testing.assert_allclose(p, np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum(),
                                   rtol=1e-4, atol=1e-7)
        p = rmkv.sampler_probs(logits, [best] * 5, temperature=1.0, top_k=3, banned_tokens=[best])
        assert p[best] == 0 and (p > 0).sum() <= 3
        with pytest.raises(rmkv.InvalidArgumentError):
            rmkv.sampler_probs(logits, temperature=-1.0)
