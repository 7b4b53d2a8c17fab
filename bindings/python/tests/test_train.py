import json

import numpy as np
import pytest

import rmkv
from conftest import CONFIG, TEXTS


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\n\n".join(TEXTS * 4), encoding="utf-8")
    return f


def data_config(corpus, **kw):
    return dict({"sources": [{"path": str(corpus), "kind": "text", "separator": "\n\n"}],
                 "batch_size": 2, "n_tokens": 16, "validation_count": 2, "seed": 3, "queue_size": 0}, **kw)


def test_data_batches_state_and_validation(corpus, tokenizer):
    with rmkv.Data(data_config(corpus), tokenizer) as d:
        assert (d.batch_size, d.n_tokens) == (2, 16)
        tokens, targets, info = d.next()
        assert tokens.shape == targets.shape == (2, 16) and tokens.dtype == np.int32
        np.testing.assert_array_equal(tokens[:, 1:], targets[:, :-1])
        assert info["n_sequences"] == 2 and info["batch_index"] == 0
        state = d.save_state()
        assert json.loads(state)
        after = [d.next()[0].copy() for _ in range(3)]
        d.load_state(state)
        for a in after:
            np.testing.assert_array_equal(d.next()[0], a)
        val = list(d.validation_batches())
        assert val and all(v[2]["n_sequences"] > 0 for v in val)
        assert len(list(d.validation_batches())) == len(val)
        assert d.summary["sources"][0]["kind"] == "text"
        it = iter(d)
        b1, b2 = next(it), next(it)
        assert b1[2]["batch_index"] + 1 == b2[2]["batch_index"]
        with pytest.raises(rmkv.FormatError):
            d.load_state(b"{}")


def test_data_errors(corpus, tokenizer, tmp_path):
    with pytest.raises(rmkv.IoError, match="missing"):
        rmkv.Data({"sources": [{"path": str(tmp_path / "missing")}]}, tokenizer)
    with pytest.raises(rmkv.InvalidArgumentError, match="bacth_size"):
        rmkv.Data(dict(data_config(corpus), bacth_size=2), tokenizer)


def test_trainer_learns_checkpoints_and_evaluates(corpus, tokenizer, tmp_path):
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as model, rmkv.Data(data_config(corpus), tokenizer) as d, \
            model.trainer(learning_rate=3e-3, warmup_steps=0, precision="fp32") as t:
        tokens, targets, _ = d.next()
        id0 = model.id
        ev0 = t.evaluate(tokens, targets)
        assert ev0["n_targets"] == 32
        losses = [t.step(tokens, targets)["loss"] for _ in range(20)]
        assert losses[-1] < losses[0] * 0.8
        assert t.step_count == 20 and model.id != id0
        ev = t.evaluate(tokens, targets, segment_lens=[8, 8])
        assert ev["loss"] < ev0["loss"] and ev["n_targets_later"] == 16
        loss = t.compute_gradients(tokens.tolist(), targets.tolist())
        assert loss == pytest.approx(ev["loss"], rel=1e-4)
        ck = tmp_path / "ck.safetensors"
        t.save_checkpoint(ck, {"epoch": 1, "note": "x"})
        assert rmkv.checkpoint_user_json(ck) == {"epoch": 1, "note": "x"}
        next_loss = t.step(tokens, targets)["loss"]
        t.load_checkpoint(ck)
        assert t.step_count == 20
        assert t.step(tokens, targets)["loss"] == next_loss
        with rmkv.Model.load(ck) as m2:
            assert m2.config == model.config
        with pytest.raises(rmkv.InvalidArgumentError):
            t.gradient("no.such.tensor")
        with pytest.raises(ValueError):
            t.step([[1, 2, 3]], [[1, 2]])
        with pytest.raises(rmkv.InvalidArgumentError):
            t.step([[1, 2, 3, 4]], [[2, 3, 4, 5]], segment_lens=[3])
        with pytest.raises(rmkv.IoError):
            t.load_checkpoint(tmp_path / "none")


def test_gradient_of_a_named_tensor(tokenizer, tmp_path):
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as model, model.trainer() as t:
        p = tmp_path / "m.safetensors"
        model.save(p)
        raw = p.read_bytes()
        header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
        name = next(k for k in header if k != "__metadata__")
        t.compute_gradients([[1, 2, 3, 4, 5]], [[2, 3, 4, 5, 6]])
        g = t.gradient(name)
        assert g.dtype == np.float32 and g.size == int(np.prod(header[name]["shape"]))
        assert np.isfinite(g).all()


def test_trainer_params_checked(model):
    with pytest.raises(TypeError, match="learning_rat"):
        model.trainer(learning_rat=1.0)
    with pytest.raises(ValueError):
        model.trainer(precision="fp8")
    with pytest.raises(rmkv.InvalidArgumentError):
        model.trainer(learning_rate=-1.0)


def test_state_tuning_trains_only_the_memories(tokenizer, tmp_path):
    path = tmp_path / "m.safetensors"
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as m:
        m.save(path)
    before = path.read_bytes()
    persona = tokenizer.encode("I am the innkeeper of the Golden Goose and I remember every traveller.")[:33]
    rows = np.array([persona], dtype=np.int32)
    with rmkv.Model.load(path) as model:
        model_id = model.id
        with model.session() as fresh:
            fresh_logits = fresh.step(persona[0]).copy()
        with model.state_tuner(learning_rate=1e-1, warmup_steps=0, precision="fp32") as tuner:
            assert isinstance(tuner, rmkv.Trainer)
            first = tuner.evaluate(rows[:, :-1], rows[:, 1:])["loss"]
            for _ in range(30):
                tuner.step(rows[:, :-1], rows[:, 1:])
            last = tuner.evaluate(rows[:, :-1], rows[:, 1:])["loss"]
            assert last < first - 1e-3, (first, last)    # a random model: the memories move the loss a little
            assert tuner.step_count == 30
            assert model.id == model_id
            with pytest.raises(rmkv.InvalidArgumentError):
                tuner.save_checkpoint(tmp_path / "ck")
            with tuner.tuned_session() as s:
                assert s.position == 0
                tuned_logits = s.step(persona[0]).copy()
                assert not np.array_equal(tuned_logits, fresh_logits)
            with tuner.tuned_session(n_threads=1, precision="fp32") as s:   # the session options pass through
                np.testing.assert_allclose(s.step(persona[0]), tuned_logits, rtol=1e-5, atol=1e-6)
            with pytest.raises(ValueError):
                tuner.tuned_session(precision="half")
            with model.session() as s:
                s.step([1, 2, 3])
                tuner.apply(s)
                assert s.position == 0
                s.save_state_file(tmp_path / "innkeeper.state")
            with rmkv.Model.create(CONFIG, tokenizer, seed=8) as other, other.session() as o:
                with pytest.raises(rmkv.MismatchError):
                    tuner.apply(o)
        with model.session() as s:
            s.load_state_file(tmp_path / "innkeeper.state")
            np.testing.assert_array_equal(s.step(persona[0]), tuned_logits)
        with model.trainer() as whole, model.session() as s:
            assert not hasattr(whole, "apply")     # the C call refuses a whole-model trainer:
            with pytest.raises(rmkv.InvalidArgumentError):
                rmkv.StateTuner.apply(whole, s)
    assert path.read_bytes() == before
