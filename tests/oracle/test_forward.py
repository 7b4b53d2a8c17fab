#!/usr/bin/python3
"""Compares the C++ library's forward pass with the PyTorch reference.

    /usr/bin/python3 tests/oracle/test_forward.py --dump PATH/oracle_dump [--workdir DIR] [--quick]
    /usr/bin/python3 tests/oracle/test_forward.py --self-test

With --dump: for every config of CONFIGS, runs

    oracle_dump CONFIG_JSON SEED MODEL_OUT TOKENS_FILE LOGITS_OUT [--bf16] [--flush-after i,j,...]

loads the model file it wrote (so a BF16 model is compared with its BF16
weights), runs rmkv_ref.stream_forward in float64 and requires
max|a - b| / max(max|b|, 1e-6) < 1e-4 with a = C++ logits, b = reference.

--self-test needs no C++ program: it checks the reference itself (causality,
sensitivity to every parameter, safetensors round trips, cells against
torch.nn, attention against a naive loop, flush semantics, autograd).

Both modes end with a line "N passed, M failed" and exit 1 if anything failed.
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rmkv_ref as ref  # noqa: E402

TOL = 1e-4
SEED = 20240611

# Each entry: the config passed to oracle_dump (keys left out take the SPEC
# defaults, which config 0 relies on entirely), whether the model is saved as
# BF16, and the flush points (0-based token indices).  Sizes are small.
CONFIGS = [
    # all option defaults: gru, rope, layernorm, swiglu, default ffn_hidden (D=48 -> 128), GQA
    dict(cfg=dict(vocab_size=97, d_model=48, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=2, segment_len=7),
         bf16=False, flush=[]),
    dict(cfg=dict(vocab_size=61, d_model=24, n_layers=3, n_heads=2, n_kv_heads=2,
                  memory_slots=3, segment_len=5, cell="lstm", pos="learned", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=40, tie_embeddings=True, norm_eps=1e-6),
         bf16=False, flush=[2, 9]),
    dict(cfg=dict(vocab_size=150, d_model=32, n_layers=1, n_heads=4, n_kv_heads=1,
                  memory_slots=4, segment_len=9, cell="minimal", pos="sincos",
                  norm="layernorm", ffn="none", tie_embeddings=False),
         bf16=False, flush=[3]),
    dict(cfg=dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1,
                  memory_slots=1, segment_len=6, cell="gru", pos="sincos", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=24, tie_embeddings=True),
         bf16=True, flush=[]),
    dict(cfg=dict(vocab_size=120, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4,
                  memory_slots=2, segment_len=8, cell="lstm", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=48, rope_theta=500.0),
         bf16=True, flush=[0, 4, 15]),
    # default ffn_hidden with D=40 (8D/3 = 106.7 -> 128)
    dict(cfg=dict(vocab_size=200, d_model=40, n_layers=1, n_heads=5, n_kv_heads=5,
                  memory_slots=3, segment_len=5, cell="minimal", pos="learned", norm="rmsnorm",
                  ffn="swiglu", tie_embeddings=True, norm_eps=1e-3),
         bf16=False, flush=[7]),
    # flush at 5 is the end of a full segment (S=6): an empty flush, changes nothing
    dict(cfg=dict(vocab_size=80, d_model=24, n_layers=3, n_heads=6, n_kv_heads=2,
                  memory_slots=2, segment_len=6, cell="gru", pos="rope", norm="rmsnorm",
                  ffn="none", rope_theta=100.0),
         bf16=False, flush=[5, 8]),
    # default ffn_hidden with D=16 (8D/3 = 42.7 -> 64)
    dict(cfg=dict(vocab_size=70, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                  memory_slots=1, segment_len=9, cell="lstm", pos="sincos", norm="layernorm",
                  ffn="gelu", tie_embeddings=True, norm_eps=1e-4),
         bf16=True, flush=[]),
    dict(cfg=dict(vocab_size=90, d_model=24, n_layers=2, n_heads=3, n_kv_heads=1,
                  memory_slots=2, segment_len=7, cell="minimal", pos="rope", norm="layernorm",
                  ffn="gelu", ffn_hidden=56, rope_theta=1000.0),
         bf16=True, flush=[1, 10]),
    # long segments: prefill chunks of 16+ tokens take the many-row attention of the
    # CPU backend: oneDNN products for head size 8, the fused kernel (AVX-512) for 16
    dict(cfg=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=20, segment_len=24, cell="lstm", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=64),
         bf16=False, flush=[30]),
    dict(cfg=dict(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=20, segment_len=40, cell="gru", pos="rope", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=64),
         bf16=False, flush=[45]),
    # segments of 64 tokens: the CPU backend pools a whole segment through oneDNN
    # products (lengths in multiples of 64), a flushed part of one through its row
    # kernel
    dict(cfg=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2,
                  memory_slots=8, segment_len=64, cell="gru", pos="rope", norm="rmsnorm",
                  ffn="swiglu", ffn_hidden=48),
         bf16=False, flush=[150]),
]


def check_coverage(entries):
    """Returns a list of the options the configs fail to cover (empty = ok)."""
    full = [ref.complete_config(e["cfg"]) for e in entries]
    missing = []
    for key, values in (("cell", ref.CELLS), ("pos", ref.POSITIONS),
                        ("norm", ref.NORMS), ("ffn", ref.FFNS), ("tie_embeddings", (True, False))):
        for v in values:
            if not any(c[key] == v for c in full):
                missing.append("%s=%s" % (key, v))
    if not any(c["n_kv_heads"] < c["n_heads"] for c in full):
        missing.append("grouped-query attention")
    if not any("ffn_hidden" in e["cfg"] and e["cfg"]["ffn"] != "none" for e in entries if "ffn" in e["cfg"]):
        missing.append("non-default ffn_hidden")
    if not any("norm_eps" in e["cfg"] for e in entries):
        missing.append("non-default norm_eps")
    if not any("rope_theta" in e["cfg"] and ref.complete_config(e["cfg"])["pos"] == "rope" for e in entries):
        missing.append("non-default rope_theta with rope")
    if not any(e["bf16"] for e in entries):
        missing.append("bf16")
    if not any(e["flush"] for e in entries):
        missing.append("flush points")
    return missing


def stream_length(entry, index, quick):
    """2.5 to 4 segments of tokens (exactly 2.5 with --quick), at least one
    token past the last flush point."""
    S = entry["cfg"]["segment_len"]
    rng = random.Random(SEED + 17 * index)
    if quick:
        n = int(math.ceil(2.5 * S))
    else:
        n = rng.randint(int(math.ceil(2.5 * S)), 4 * S)
    if entry["flush"]:
        n = max(n, max(entry["flush"]) + 2)
    return n


def make_tokens(entry, index, n):
    rng = np.random.RandomState(SEED + index)
    return rng.randint(0, entry["cfg"]["vocab_size"], size=n).astype("<i4")


def rel_err(a, b):
    """max|a - b| / max(max|b|, 1e-6); b is the reference."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return float("inf")
    if not bool(torch.isfinite(a).all()):
        return float("inf")
    denom = max(float(b.abs().max()) if b.numel() else 0.0, 1e-6)
    return float((a - b).abs().max()) / denom if b.numel() else 0.0


def summary(cfg, bf16, n, flush):
    c = cfg
    return ("cell=%s pos=%s norm=%s ffn=%s D=%d H=%d/%d L=%d M=%d S=%d V=%d F=%d tie=%d "
            "eps=%g theta=%g bf16=%d N=%d flush=%s"
            % (c["cell"], c["pos"], c["norm"], c["ffn"], c["d_model"], c["n_heads"],
               c["n_kv_heads"], c["n_layers"], c["memory_slots"], c["segment_len"],
               c["vocab_size"], c["ffn_hidden"], int(c["tie_embeddings"]), c["norm_eps"],
               c["rope_theta"], int(bf16), n, ",".join(map(str, flush)) or "-"))


# ---------------------------------------------------------------------------
# Comparison with the C++ program
# ---------------------------------------------------------------------------

def config_value_matches(key, ours, theirs):
    """Config in the file vs the config asked for.  Floats may have gone
    through float32; keys that do not influence the model are not compared
    (ffn_hidden without an ffn, rope_theta without rope)."""
    if key == "ffn_hidden" and ours["ffn"] == "none" and theirs["ffn"] == "none":
        return True
    if key == "rope_theta" and ours["pos"] != "rope" and theirs["pos"] != "rope":
        return True
    a, b = ours[key], theirs[key]
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), abs(float(b)))
    return a == b


def run_one(dump, workdir, index, entry, quick):
    """Returns (ok, line)."""
    ours = ref.complete_config(entry["cfg"])
    n = stream_length(entry, index, quick)
    tokens = make_tokens(entry, index, n)
    flush = [i for i in entry["flush"] if i < n]
    desc = "config %d: %s" % (index, summary(ours, entry["bf16"], n, flush))
    model_path = os.path.join(workdir, "model_%d.safetensors" % index)
    tok_path = os.path.join(workdir, "tokens_%d.bin" % index)
    log_path = os.path.join(workdir, "logits_%d.bin" % index)
    for p in (model_path, log_path):
        if os.path.exists(p):
            os.remove(p)
    tokens.tofile(tok_path)
    cmd = [dump, json.dumps(entry["cfg"]), str(SEED + index), model_path, tok_path, log_path]
    if entry["bf16"]:
        cmd.append("--bf16")
    if flush:
        cmd += ["--flush-after", ",".join(map(str, flush))]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "FAIL %s: could not run oracle_dump: %s" % (desc, e)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        return False, "FAIL %s: oracle_dump exited %d: %s" % (desc, proc.returncode, msg)

    try:
        tensors, meta, dtypes = ref.load_safetensors(model_path, return_dtypes=True)
    except (OSError, ValueError) as e:
        return False, "FAIL %s: cannot read model file: %s" % (desc, e)
    if meta.get("format") != "rmkv-model":
        return False, "FAIL %s: metadata format is %r, want 'rmkv-model'" % (desc, meta.get("format"))
    try:
        cfg = ref.config_from_metadata(meta)
    except ValueError as e:
        return False, "FAIL %s: bad config in model file: %s" % (desc, e)
    diff = ["%s: asked %r, file %r" % (k, ours[k], cfg[k]) for k in ref.CONFIG_KEYS
            if not config_value_matches(k, ours, cfg)]
    if diff:
        return False, "FAIL %s: config in model file differs: %s" % (desc, "; ".join(diff))
    try:
        ref.check_params(tensors, cfg)
    except ValueError as e:
        return False, "FAIL %s: %s" % (desc, e)
    kinds = sorted(set(dtypes.values()))
    if entry["bf16"] and "BF16" not in kinds:
        return False, "FAIL %s: --bf16 given but the file holds dtypes %s" % (desc, kinds)

    # Two models: the file as the library initialised it, then the same file with
    # every tensor randomised (biases, norm weights and memory included) so that no
    # code path hides behind a zero or a one; oracle_dump "@load"s the second.
    lines, all_ok = [], True
    for variant in ("init", "random"):
        if variant == "random":
            tensors = randomise(tensors, index)
            ref.save_safetensors(model_path, {k: v.float() for k, v in tensors.items()}, meta,
                                 dtype="BF16" if entry["bf16"] else "F32")
            tensors, meta, dtypes = ref.load_safetensors(model_path, return_dtypes=True)
            os.remove(log_path)
            cmd2 = [dump, "@load", "0", model_path, tok_path, log_path] + cmd[6:]
            proc = subprocess.run(cmd2, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            if proc.returncode != 0:
                msg = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
                return False, "FAIL %s: oracle_dump @load exited %d: %s" % (desc, proc.returncode, msg)
        ok, line = compare(desc + " [%s weights]" % variant, tensors, cfg, tokens, flush, n, log_path, kinds)
        all_ok = all_ok and ok
        lines.append(line)
    return all_ok, "\n".join(lines)


def randomise(tensors, index):
    """Every tensor drawn afresh at a scale where each path of the model matters."""
    g = torch.Generator().manual_seed(1000 + index)
    out = {}
    for k, v in tensors.items():
        base = k.rsplit(".", 1)[-1]
        if "norm" in k and base == "weight":
            r = 1.0 + 0.3 * torch.randn(v.shape, generator=g, dtype=torch.float64)
        elif base.startswith("bias"):
            r = 0.2 * torch.randn(v.shape, generator=g, dtype=torch.float64)
        else:
            fan_in = v.shape[-1] if v.dim() > 1 else 1
            r = torch.randn(v.shape, generator=g, dtype=torch.float64) * (0.8 / max(fan_in, 1) ** 0.5)
            if k.endswith("init_memory") or k.endswith("pool.query") or k.endswith("emb.weight"):
                r = torch.randn(v.shape, generator=g, dtype=torch.float64) * 0.7
        out[k] = r
    return out


def compare(desc, tensors, cfg, tokens, flush, n, log_path, kinds):
    V = cfg["vocab_size"]
    want_bytes = n * V * 4
    try:
        size = os.path.getsize(log_path)
    except OSError as e:
        return False, "FAIL %s: no logits file: %s" % (desc, e)
    if size != want_bytes:
        return False, "FAIL %s: logits file has %d bytes, want %d (N=%d x V=%d float32)" % (
            desc, size, want_bytes, n, V)
    got = torch.from_numpy(np.fromfile(log_path, dtype="<f4").astype(np.float64).reshape(n, V))

    params = ref.cast_params(tensors, torch.float64)
    with torch.no_grad():
        want = ref.stream_forward(params, cfg, tokens.tolist(), flush_after=flush)
        # diagnostic: how much the logits depend on the memory carried across segments
        nomem = ref.stream_forward(params, cfg, tokens.tolist(), flush_after=flush, carry_memory=False)
    err = rel_err(got, want)
    mem_effect = rel_err(nomem, want)
    ok = err < TOL
    note = ""
    if mem_effect < 10 * TOL:
        note = " WARNING: memory update barely changes the logits (%.1e): weak check of the cell" % mem_effect
    # diagnostic: tensors the file holds as constants (e.g. zero biases, unit norm
    # weights) do not test the code that uses them
    const = sorted(set(k.split(".", 2)[-1] if k.startswith("layers.") else k
                       for k, v in tensors.items()
                       if v.numel() > 1 and float(v.max()) == float(v.min())))
    if const:
        note += " constant-in-file(not exercised): %s" % ",".join(const)
    line = "%s %s dtypes=%s rel_err=%.3e (tol %.0e) memory-effect=%.2e%s" % (
        "PASS" if ok else "FAIL", desc, "/".join(kinds), err, TOL, mem_effect, note)
    if not ok and got.shape == want.shape:
        d = (got - want).abs()
        row = int(d.max(dim=1).values.argmax())
        line += " [worst token %d of %d]" % (row, n)
    return ok, line


def run_compare(args):
    missing = check_coverage(CONFIGS)
    if missing:
        print("config list does not cover: %s" % ", ".join(missing))
        print("0 passed, 1 failed")
        return 1
    dump = os.path.abspath(args.dump)
    if not (os.path.isfile(dump) and os.access(dump, os.X_OK)):
        print("oracle_dump not found or not executable: %s" % dump)
        print("0 passed, %d failed" % len(CONFIGS))
        return 1
    tmp = None
    if args.workdir:
        workdir = args.workdir
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="rmkv_oracle_")
        workdir = tmp
    passed = failed = 0
    try:
        for i, entry in enumerate(CONFIGS):
            try:
                ok, line = run_one(dump, workdir, i, entry, args.quick)
            except Exception as e:  # a bug in the reference or unexpected data
                ok, line = False, "FAIL config %d: exception %s: %s" % (i, type(e).__name__, e)
            print(line, flush=True)
            passed += ok
            failed += not ok
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Self-test of the reference (no C++ program)
# ---------------------------------------------------------------------------

def naive_attention(cfg, params, prefix, C, M, T):
    """Row-by-row, head-by-head attention with RoPE as a complex rotation:
    an independent formulation of SPEC section 4 steps 2-4."""
    D, H, Hkv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    hd, half = D // H, D // H // 2
    Cn = C.detach().numpy()
    W = {k: params[prefix + "attn.%s.weight" % k].detach().numpy() for k in "qkvo"}
    B = {k: params[prefix + "attn.%s.bias" % k].detach().numpy() for k in "qkvo"}
    Q = Cn @ W["q"].T + B["q"]
    K = Cn @ W["k"].T + B["k"]
    Vv = Cn @ W["v"].T + B["v"]
    out = np.zeros((M + T, D))
    for h in range(H):
        g = h // (H // Hkv)
        q = Q[:, h * hd:(h + 1) * hd].copy()
        k = K[:, g * hd:(g + 1) * hd].copy()
        v = Vv[:, g * hd:(g + 1) * hd]
        if cfg["pos"] == "rope":
            for arr in (q, k):
                for t in range(T):
                    z = arr[M + t, :half] + 1j * arr[M + t, half:]
                    z = z * np.exp(1j * t * cfg["rope_theta"] ** (-2.0 * np.arange(half) / hd))
                    arr[M + t, :half], arr[M + t, half:] = z.real, z.imag
        for i in range(M + T):
            cols = list(range(M + T)) if i < M else list(range(M)) + list(range(M, i + 1))
            sc = np.array([q[i] @ k[j] for j in cols]) / math.sqrt(hd)
            p = np.exp(sc - sc.max())
            p /= p.sum()
            out[i, h * hd:(h + 1) * hd] = sum(p[n] * v[j] for n, j in enumerate(cols))
    return out @ W["o"].T + B["o"]


class SelfTest:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        print("%s %s" % ("PASS" if ok else "FAIL", what), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1


def self_test_safetensors(st, tmpdir):
    g = torch.Generator().manual_seed(1)
    ts = {"a": torch.randn(3, 5, generator=g), "b": torch.randn(7, generator=g) * 100,
          "c": torch.tensor([1.0, -2.5, 3.0e-3, 65504.0])}
    meta = {"format": "rmkv-model", "config": json.dumps({"vocab_size": 3})}
    for dt in ("F32", "F16", "BF16"):
        p = os.path.join(tmpdir, "rt_%s.safetensors" % dt)
        ref.save_safetensors(p, ts, meta, dtype=dt)
        back, m2, dts = ref.load_safetensors(p, return_dtypes=True)
        if dt == "F32":
            exp = ts
        elif dt == "F16":
            exp = {k: v.to(torch.float16).to(torch.float32) for k, v in ts.items()}
        else:
            exp = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in ts.items()}
        ok = (m2 == meta and set(back) == set(ts) and all(dts[k] == dt for k in back)
              and all(torch.equal(back[k], exp[k]) for k in ts))
        st.check(ok, "safetensors round trip %s (exact, torch's own %s rounding)" % (dt, dt))
    # corrupted files must be refused
    p = os.path.join(tmpdir, "rt_F32.safetensors")
    blob = bytearray(open(p, "rb").read())
    bad1 = os.path.join(tmpdir, "bad1.safetensors")
    with open(bad1, "wb") as f:
        f.write(bytes(blob[:-8]))  # truncated data: last tensor's offsets out of range
    bad2 = os.path.join(tmpdir, "bad2.safetensors")
    with open(bad2, "wb") as f:
        f.write((10 ** 9).to_bytes(8, "little") + bytes(blob[8:]))  # header length > file
    for path, what in ((bad1, "truncated data"), (bad2, "header length beyond file")):
        try:
            ref.load_safetensors(path)
            st.check(False, "safetensors reader refuses %s" % what)
        except ValueError:
            st.check(True, "safetensors reader refuses %s" % what)


def self_test_components(st):
    torch.manual_seed(3)
    D = 12
    base = dict(vocab_size=5, d_model=D, n_layers=1, n_heads=2, memory_slots=3, segment_len=4)
    # cells against torch.nn
    for cell, mod in (("gru", torch.nn.GRUCell(D, D).double()), ("lstm", torch.nn.LSTMCell(D, D).double())):
        cfg = ref.complete_config(dict(base, cell=cell))
        params = {"x.cell.weight_ih": mod.weight_ih.detach(), "x.cell.weight_hh": mod.weight_hh.detach(),
                  "x.cell.bias_ih": mod.bias_ih.detach(), "x.cell.bias_hh": mod.bias_hh.detach()}
        s = torch.randn(3, D, dtype=torch.float64)
        h = torch.randn(3, D, dtype=torch.float64)
        c = torch.randn(3, D, dtype=torch.float64)
        with torch.no_grad():
            if cell == "gru":
                m, _ = ref.cell_step(cfg, params, "x.", s, h)
                e = rel_err(m, mod(s, h))
            else:
                m, c2 = ref.cell_step(cfg, params, "x.", s, h, c)
                hh, cc = mod(s, (h, c))
                e = max(rel_err(m, hh), rel_err(c2, cc))
        st.check(e < 1e-12, "%s cell equals torch.nn.%sCell (rel %.1e)" % (cell, cell.upper(), e))
    # layernorm against torch
    cfg = ref.complete_config(dict(base, norm_eps=1e-3))
    x = torch.randn(6, D, dtype=torch.float64) * 3 + 1
    w = torch.randn(D, dtype=torch.float64)
    b = torch.randn(D, dtype=torch.float64)
    e = rel_err(ref.norm(cfg, {"n.weight": w, "n.bias": b}, "n", x),
                torch.nn.functional.layer_norm(x, (D,), w, b, 1e-3))
    st.check(e < 1e-12, "layernorm equals torch layer_norm (rel %.1e)" % e)
    # gelu against torch (erf form), silu against torch
    e = max(rel_err(ref.gelu_erf(x), torch.nn.functional.gelu(x)),
            rel_err(ref.silu(x), torch.nn.functional.silu(x)))
    st.check(e < 1e-12, "gelu (erf) and silu equal torch's (rel %.1e)" % e)
    # sincos PE values
    pe = ref.sincos_pe([0, 7], 8, torch.float64)
    exp = torch.tensor([[math.sin(7 / 10000 ** (2 * i / 8)) if j == 0 else math.cos(7 / 10000 ** (2 * i / 8))
                         for i in range(4) for j in (0, 1)]], dtype=torch.float64)
    ok = torch.allclose(pe[1:], exp, atol=1e-15) and torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4, dtype=torch.float64))
    st.check(ok, "sincos PE(p, 2i)=sin, PE(p, 2i+1)=cos")
    # attention against the naive loop, for rope / no rope and GQA
    for pos, H, Hkv in (("rope", 4, 2), ("learned", 4, 1), ("rope", 2, 2)):
        cfg = ref.complete_config(dict(base, d_model=16, n_heads=H, n_kv_heads=Hkv, pos=pos,
                                       rope_theta=50.0))
        params = ref.random_params(cfg, seed=5)
        M, T = 3, 4
        C = torch.randn(M + T, 16, dtype=torch.float64)
        with torch.no_grad():
            e = rel_err(ref.attention(cfg, params, "layers.0.", C, M, T),
                        torch.from_numpy(naive_attention(cfg, params, "layers.0.", C, M, T)))
        st.check(e < 1e-12, "attention equals naive loop (pos=%s H=%d kv=%d, rel %.1e)" % (pos, H, Hkv, e))


def self_test_model(st, index, entry):
    cfg = ref.complete_config(entry["cfg"])
    n = stream_length(entry, index, False)
    tokens = make_tokens(entry, index, n).tolist()
    flush = [i for i in entry["flush"] if i < n]
    params = ref.random_params(cfg, seed=100 + index)
    name = "config %d (%s/%s/%s/%s)" % (index, cfg["cell"], cfg["pos"], cfg["norm"], cfg["ffn"])
    with torch.no_grad():
        base = ref.stream_forward(params, cfg, tokens, flush_after=flush)
        ok = tuple(base.shape) == (n, cfg["vocab_size"]) and bool(torch.isfinite(base).all())
        st.check(ok, "%s: logits shape %s and finite" % (name, tuple(base.shape)))

        # (a) causality: changing tokens j.. leaves logits 0..j-1 unchanged, and changes logits j
        rng = random.Random(SEED + index)
        S = cfg["segment_len"]
        js = sorted(set([1, S - 1, S, S + 1, n // 2, n - 1] + [i + 1 for i in flush if i + 1 < n]))
        bad = []
        for j in js:
            t2 = list(tokens)
            for k in range(j, n):
                t2[k] = (t2[k] + 1 + rng.randrange(cfg["vocab_size"] - 1)) % cfg["vocab_size"]
            other = ref.stream_forward(params, cfg, t2, flush_after=flush)
            same = float((other[:j] - base[:j]).abs().max()) if j > 0 else 0.0
            changed = rel_err(other[j:], base[j:])
            if same != 0.0 or changed < TOL:
                bad.append("j=%d earlier-diff=%.1e later-rel=%.1e" % (j, same, changed))
        st.check(not bad, "%s: causality at positions %s %s" % (name, js, "; ".join(bad)))

        # the memory must matter, segments after the first must see it
        nomem = ref.stream_forward(params, cfg, tokens, flush_after=flush, carry_memory=False)
        first_end = ref.segment_bounds(n, S, flush)[0][1]
        e0 = float((nomem[:first_end] - base[:first_end]).abs().max())
        e1 = rel_err(nomem[first_end:], base[first_end:])
        st.check(e0 == 0.0 and e1 > TOL,
                 "%s: memory update reaches later segments only (first seg diff %.1e, later rel %.1e)"
                 % (name, e0, e1))

        # (b) perturbing one row of any parameter changes the logits beyond the tolerance
        #     (a row, not an element: with many memory slots one element of a slot's
        #     pooling query moves the logits too little to say anything)
        weak = []
        for pname in sorted(params):
            p2 = dict(params)
            t = params[pname].clone()
            flat = t.view(-1)
            if pname == "tok_emb.weight":
                idx = tokens[0] * cfg["d_model"]
            else:
                idx = 0
            row = t.shape[-1] if t.dim() > 1 else 1
            # alternating signs: a constant shift of a row would vanish in the norms
            flat[idx:idx + row] += 0.5 * (1 - 2 * (torch.arange(row, dtype=flat.dtype) % 2))
            p2[pname] = t
            e = rel_err(ref.stream_forward(p2, cfg, tokens, flush_after=flush), base)
            if pname.endswith("attn.k.bias") and cfg["pos"] != "rope":
                # without RoPE the key bias adds q.bk to every score of a query row:
                # softmax is invariant to it, so it must have NO effect
                if not e < 1e-12:
                    weak.append("%s should be inert without rope (%.1e)" % (pname, e))
            elif not e > TOL:
                weak.append("%s (%.1e)" % (pname, e))
        st.check(not weak, "%s: each of %d tensors matters when one element is perturbed (k.bias inert without rope)%s"
                 % (name, len(params), (": weak " + ", ".join(weak)) if weak else ""))

        # flush semantics: an empty flush (right after a full segment) changes nothing,
        # and flushing after the very last token does not change any logit
        full_ends = [e - 1 for (b, e, _) in ref.segment_bounds(n, S, flush) if e - b == S]
        a = ref.stream_forward(params, cfg, tokens, flush_after=sorted(set(flush + full_ends + [n - 1])))
        st.check(torch.equal(a, base), "%s: empty flushes and a final flush change nothing" % name)

        # segment-by-segment state vs stream: segment_forward of one token at a time is not the
        # session semantics, but a segment computed in one call equals its prefix computations
        b0, e0_, _ = ref.segment_bounds(n, S, flush)[0]
        st0 = ref.init_state(ref.cast_params(params, torch.float64), cfg)
        full, _ = ref.segment_forward(ref.cast_params(params, torch.float64), cfg, tokens[b0:e0_], st0, 0)
        rows = [ref.segment_forward(ref.cast_params(params, torch.float64), cfg, tokens[b0:k + 1], st0, 0)[0][-1]
                for k in range(b0, e0_)]
        e = rel_err(torch.stack(rows), full)
        st.check(e < 1e-12, "%s: token-by-token prefixes equal the whole segment (rel %.1e)" % (name, e))

        # float32 run of the same reference agrees with float64 (the C++ runs in float32)
        e = rel_err(ref.stream_forward(params, cfg, tokens, flush_after=flush, dtype=torch.float32), base)
        st.check(e < TOL / 10, "%s: float32 reference within %.0e of float64 (rel %.1e)" % (name, TOL / 10, e))


def self_test_autograd(st):
    cfg = ref.complete_config(dict(vocab_size=11, d_model=8, n_layers=2, n_heads=2, n_kv_heads=1,
                                   memory_slots=2, segment_len=3, cell="lstm", ffn="swiglu",
                                   ffn_hidden=8, pos="rope"))
    params = {k: v.clone().requires_grad_(True) for k, v in ref.random_params(cfg, seed=9).items()}
    tokens = [1, 5, 2, 9, 3, 3, 7, 0]
    logits = ref.stream_forward(params, cfg, tokens, flush_after=[4])
    (logits ** 2).sum().backward()
    bad = [k for k, v in params.items() if v.grad is None or not bool(torch.isfinite(v.grad).all())
           or float(v.grad.abs().max()) == 0.0]
    st.check(not bad, "autograd: every parameter gets a finite non-zero gradient%s"
             % ((": not " + ", ".join(bad)) if bad else ""))
    mem = params["layers.0.init_memory"].detach().clone().requires_grad_(True)

    def f(m):
        p = dict(params)
        p["layers.0.init_memory"] = m
        return ref.stream_forward(p, cfg, tokens, flush_after=[4])
    ok = torch.autograd.gradcheck(f, (mem,), eps=1e-6, atol=1e-6, raise_exception=False)
    st.check(bool(ok), "autograd: gradcheck through two memory updates (init_memory)")


def run_self_test():
    st = SelfTest()
    missing = check_coverage(CONFIGS)
    st.check(not missing, "config list covers every option%s" % ((": missing " + ", ".join(missing)) if missing else ""))
    tmpdir = tempfile.mkdtemp(prefix="rmkv_selftest_")
    try:
        self_test_safetensors(st, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    self_test_components(st)
    for i, entry in enumerate(CONFIGS):
        self_test_model(st, i, entry)
    self_test_autograd(st)
    print("%d passed, %d failed" % (st.passed, st.failed))
    return 1 if st.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="path of the oracle_dump program")
    ap.add_argument("--workdir", help="directory for the model, token and logits files (kept)")
    ap.add_argument("--quick", action="store_true", help="shorter token streams")
    ap.add_argument("--self-test", action="store_true", help="check the reference only, no C++")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.self_test:
        return run_self_test()
    if not args.dump:
        ap.error("--dump PATH is required (or --self-test)")
    return run_compare(args)


if __name__ == "__main__":
    sys.exit(main())
