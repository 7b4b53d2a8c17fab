import os
import subprocess
import sys

import numpy as np
import pytest

import rmkv
from conftest import CONFIG, TEXTS


def test_create_config_and_identity(model, tokenizer):
    cfg = model.config
    assert cfg["d_model"] == 32 and cfg["segment_len"] == 8 and cfg["vocab_size"] == tokenizer.vocab_size
    assert model.vocab_size == tokenizer.vocab_size
    assert model.n_params > 0
    assert len(model.id) == 64
    assert model.tokenizer.encode("cat") == tokenizer.encode("cat")
    with rmkv.Model.create(CONFIG, tokenizer, seed=7) as same, rmkv.Model.create(CONFIG, tokenizer, seed=8) as other:
        assert same.id == model.id and other.id != model.id
    with rmkv.Model.create(dict(CONFIG, vocab_size=50), seed=1) as m:
        assert m.tokenizer is None and m.vocab_size == 50


def test_bad_config_names_the_key():
    with pytest.raises(rmkv.InvalidArgumentError, match="d_modle"):
        rmkv.Model.create({"d_modle": 32, "vocab_size": 10})
    with pytest.raises(rmkv.InvalidArgumentError, match="n_heads"):
        rmkv.Model.create({"d_model": 30, "n_heads": 4, "vocab_size": 10})


def test_save_load_and_from_bytes(model, tmp_path):
    p = tmp_path / "m.safetensors"
    model.save(p)
    with rmkv.Model.load(p) as a, rmkv.Model.load(p, use_mmap=False) as b, \
            rmkv.Model.from_bytes(p.read_bytes()) as c:
        assert a.id == b.id == c.id == model.id
        toks = model.tokenizer.encode(TEXTS[0])
        outs = []
        for m in (model, a, b, c):
            with m.session() as s:
                outs.append(s.step(toks).copy())
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
    model.save(tmp_path / "m16.safetensors", dtype="bf16")
    assert os.path.getsize(tmp_path / "m16.safetensors") < os.path.getsize(p)
    with rmkv.Model.load(tmp_path / "m16.safetensors") as m16:
        assert m16.config == model.config
    with pytest.raises(ValueError):
        model.save(tmp_path / "x", dtype="f8")


def test_session_params(model, tmp_path):
    """n_threads and precision reach rmkv_session_params: FP32 sessions of a BF16 model agree
    with those of its F32 copy; a bad value is refused."""
    model.save(tmp_path / "m16.safetensors", dtype="bf16")
    with rmkv.Model.load(tmp_path / "m16.safetensors") as m16:
        m16.save(tmp_path / "m32.safetensors")
        with rmkv.Model.load(tmp_path / "m32.safetensors") as m32, \
                m16.session(n_threads=1, precision="fp32") as a, m32.session(precision="fp32") as b:
            toks = model.tokenizer.encode(TEXTS[0] * 4)
            np.testing.assert_allclose(a.step(toks), b.step(toks), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="precision"):
            m16.session(precision="half")
        with pytest.raises(rmkv.InvalidArgumentError, match="n_threads"):
            m16.session(n_threads=-1)


def test_corrupt_model_file_raises_with_the_message(model, tmp_path):
    p = tmp_path / "m.safetensors"
    model.save(p)
    data = bytearray(p.read_bytes())
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(data[: len(data) // 2]))     # truncated
    with pytest.raises(rmkv.FormatError) as e:
        rmkv.Model.load(bad)
    assert "corrupt.safetensors" in str(e.value) or "truncat" in str(e.value).lower() or e.value.message
    assert e.value.message == str(e.value).split(": ", 1)[1]
    data[0:8] = (10 ** 12).to_bytes(8, "little")        # header length beyond the file
    bad.write_bytes(bytes(data))
    with pytest.raises(rmkv.FormatError, match=r"\S"):
        rmkv.Model.load(bad)
    with pytest.raises(rmkv.FormatError):
        rmkv.Model.from_bytes(b"\0" * 7)
    with pytest.raises(rmkv.IoError, match="does-not-exist"):
        rmkv.Model.load(tmp_path / "does-not-exist.safetensors")


def test_step_forms_agree(model):
    toks = model.tokenizer.encode(TEXTS[1])[:20]
    with model.session() as a, model.session() as b, model.session() as c, model.session() as d:
        for t in toks[:-1]:
            assert a.step(t, logits=False) is None
        la = a.step(toks[-1])
        assert isinstance(la, np.ndarray) and la.dtype == np.float32 and la.shape == (model.vocab_size,)
        lb = b.step(np.array(toks, dtype=np.int64))
        np.testing.assert_allclose(la, lb, rtol=0, atol=1e-5)    # one at a time vs one call: other kernels
        all_rows = c.step_all(toks)
        assert all_rows.shape == (len(toks), model.vocab_size)
        np.testing.assert_allclose(all_rows[-1], lb, rtol=0, atol=1e-5)
        out = np.zeros(model.vocab_size, dtype=np.float32)
        r = d.step(tuple(toks), out=out)
        assert r is out
        np.testing.assert_array_equal(out, lb)
        assert a.position == len(toks) and a.segment_fill == len(toks) % 8
        with pytest.raises(ValueError):
            d.step(1, out=np.zeros(3, dtype=np.float32))
        e = d.clone()
        np.testing.assert_array_equal(d.step(np.int64(5)), e.step(5))    # numpy integer scalars
        with pytest.raises(rmkv.InvalidArgumentError):
            e.step(1 << 40)
        e.close()


def test_step_returns_the_session_buffer(model):
    with model.session() as s:
        l1 = s.step(1)
        first = l1.copy()
        l2 = s.step(2)
        assert l1 is l2 and s.logits is l1                # one buffer, filled by the C call
        assert not np.array_equal(first, l2)


def test_step_errors_leave_the_session_unchanged(model):
    with model.session() as s:
        s.step([1, 2, 3])
        before = s.save_state()
        with pytest.raises(rmkv.InvalidArgumentError, match=str(model.vocab_size)):
            s.step([4, model.vocab_size])
        with pytest.raises(rmkv.InvalidArgumentError):
            s.step([])
        assert s.save_state() == before and s.position == 3


def test_flush_reset_clone(model):
    toks = model.tokenizer.encode(TEXTS[0])
    with model.session() as s:
        s.step(toks[:5])
        assert s.segment_fill == 5
        s.flush()
        assert s.segment_fill == 0 and s.position == 5
        import copy
        with copy.copy(s) as c2:
            assert c2.model is model and c2.position == s.position
        with s.clone() as c:
            np.testing.assert_array_equal(s.step(toks[5]).copy(), c.step(toks[5]))
            c.step(toks[6:9])
            assert c.position == 9 and s.position == 6
        s.reset()
        assert s.position == 0
        with pytest.raises(rmkv.InvalidArgumentError):
            s.sample(0)


def test_step_together(model):
    toks = model.tokenizer.encode(TEXTS[0])
    with model.session() as a, model.session() as b, model.session() as a1, model.session() as b1:
        a.step(toks[:3])
        a1.step(toks[:3])
        for t in toks[3:12]:
            rows = rmkv.step_together([a, b], [t, toks[0]])
            assert rows.shape == (2, model.vocab_size)
            np.testing.assert_allclose(rows[0], a1.step(t), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(rows[1], b1.step(toks[0]), rtol=1e-4, atol=1e-4)
        assert rmkv.step_together([a], [toks[1]], logits=False) is None
        assert a.position == 13 and b.position == 9
        with pytest.raises(rmkv.InvalidArgumentError, match="twice"):
            rmkv.step_together([a, a], [1, 2])
        with pytest.raises(rmkv.InvalidArgumentError):
            rmkv.step_together([a, b], [1])
        assert a.position == 13


def test_state_bytes_and_files(model, tmp_path):
    toks = model.tokenizer.encode(TEXTS[1])
    with model.session() as a, model.session() as b:
        a.step(toks[:11])
        data = a.save_state()
        assert isinstance(data, bytes) and len(data) == a.state_size and bytes(a) == data
        b.load_state(bytearray(data))
        np.testing.assert_array_equal(a.step(toks[11]).copy(), b.step(toks[11]))
        a.save_state_file(tmp_path / "s.state")
        with model.session() as c:
            c.load_state_file(tmp_path / "s.state")
            assert c.position == a.position
        with pytest.raises(rmkv.FormatError):
            b.load_state(data[:len(data) // 2])
        with pytest.raises(rmkv.IoError):
            b.load_state_file(tmp_path / "none.state")
    with rmkv.Model.create(dict(CONFIG, memory_slots=2), model.tokenizer, seed=7) as other, other.session() as o:
        with pytest.raises(rmkv.MismatchError) as e:
            o.load_state(data)
        assert e.value.message


def test_sample_greedy_is_argmax(model):
    with model.session() as s:
        l = s.step(model.tokenizer.encode("The cat"))
        assert s.sample(0.0) == int(np.argmax(l))
        a = [s.clone() for _ in range(2)]
        draws = [[x.sample(1.0, top_p=1.0, seed=5) for _ in range(3)] for x in a]
        assert draws[0] == draws[1]
        for x in a:
            x.close()
        with pytest.raises(rmkv.InvalidArgumentError):
            s.sample(-1.0)


CHILD = r"""
import sys, rmkv
m = rmkv.Model.load(sys.argv[1])
s = m.session()
toks = [int(x) for x in sys.argv[3].split(",")]
if sys.argv[2] == "save":
    s.step(toks)
    open(sys.argv[4], "wb").write(s.save_state())
else:
    s.load_state(open(sys.argv[4], "rb").read())
    sys.stdout.write(s.step(toks).tobytes().hex())
"""


def test_state_round_trip_across_processes(model_file, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with rmkv.Model.load(model_file) as m, m.session() as s:
        toks = m.tokenizer.encode(TEXTS[0] + TEXTS[1])
        first, rest = toks[:13], toks[13:20]
        s.step(first)
        expected = s.step(rest).copy()
    st = tmp_path / "game.sav"
    run = lambda *a: subprocess.run([sys.executable, "-c", CHILD, str(model_file), *a], env=env,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout
    run("save", ",".join(map(str, first)), str(st))
    got = np.frombuffer(bytes.fromhex(run("load", ",".join(map(str, rest)), str(st))), dtype=np.float32)
    np.testing.assert_array_equal(got, expected)


def test_closing_the_model_closes_its_sessions(tokenizer):
    m = rmkv.Model.create(CONFIG, tokenizer, seed=1)
    s = m.session()
    t = m.tokenizer
    ts = t.stream()
    tr = m.trainer()
    m.close()
    assert s.closed and t.closed and m.closed and ts.closed and tr.closed
    with pytest.raises(ValueError, match="closed"):
        s.step(1)
    s.close()


def test_session_keeps_its_model_alive(tokenizer):
    s = rmkv.Model.create(CONFIG, tokenizer, seed=1).session()
    import gc
    gc.collect()
    assert s.step([1, 2]).shape == (tokenizer.vocab_size,)
    s.close()


def test_log_callback(model_file):
    lines = []
    rmkv.set_log_callback(lambda level, line: lines.append((level, line)), 0)
    try:
        rmkv.Model.load(model_file).close()
    finally:
        rmkv.set_log_callback(None)
    assert any(level == 1 and "parameters" in line for level, line in lines), lines
    n = len(lines)
    rmkv.Model.load(model_file).close()
    assert len(lines) == n
