#!/usr/bin/python3
"""Compares the C++ library's training (loss, gradients, AdamW) with the
PyTorch reference.

    /usr/bin/python3 tests/oracle/test_train.py --dump PATH/train_dump [--workdir DIR]
    /usr/bin/python3 tests/oracle/test_train.py --self-test

With --dump: for every config of CONFIGS, writes a model file (random
parameters, F32) and a batch file, then runs

    train_dump grads MODEL BATCH_JSON OUT.safetensors
        loss and the gradient of every parameter (no optimiser step, no
        dropout); OUT holds one F32 tensor per parameter, named like the model
        tensor, and __metadata__ {"loss": "<decimal float>"}.
    train_dump adamw MODEL BATCH_JSON TRAIN_PARAMS_JSON N_STEPS OUT.json
        N_STEPS AdamW steps on that batch; OUT.json is
        {"losses": [N floats], "grad_norms": [N floats]} (loss before each
        step's update, gradient norm before clipping).

and compares with rmkv_ref.batch_loss + autograd and rmkv_ref.adamw_reference
in float64 (files: see write_batch / write_train_params).  Tolerances:
loss and every gradient tensor max|a - b| / max(max|b|, 1e-6) < 1e-4; AdamW
losses and gradient norms within relative 1e-4 at every step.

--self-test needs no C++ program: it checks the training reference itself
(finite differences, loss mask, BPTT, memory use, AdamW semantics).

Both modes end with a line "N passed, M failed" and exit 1 if anything failed.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rmkv_ref as ref  # noqa: E402

TOL = 1e-4           # loss, gradients, AdamW losses and gradient norms
SEED = 20240917
ADAM_STEPS = 10

# Each entry: the config (keys left out take the SPEC defaults), the batch size B
# and the K = 3 segment lengths (None: [S, S - 2, 3]).  Sizes are small.
CONFIGS = [
    dict(cfg=dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=2, segment_len=8, cell="gru", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=48),
         B=2, seglens=None),
    dict(cfg=dict(vocab_size=61, d_model=24, n_layers=2, n_heads=2, n_kv_heads=2,
                  memory_slots=3, segment_len=6, cell="lstm", pos="learned", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=40, tie_embeddings=True, norm_eps=1e-6),
         B=3, seglens=None),
    dict(cfg=dict(vocab_size=80, d_model=32, n_layers=1, n_heads=4, n_kv_heads=1,
                  memory_slots=4, segment_len=7, cell="minimal", pos="sincos", norm="layernorm",
                  ffn="none"),
         B=2, seglens=[7, 5, 3]),
    dict(cfg=dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1,
                  memory_slots=1, segment_len=5, cell="gru", pos="sincos", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=24, tie_embeddings=True),
         B=3, seglens=[5, 3, 4]),
    # default ffn_hidden (D=16 -> 64), non-default rope_theta
    dict(cfg=dict(vocab_size=40, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1,
                  memory_slots=2, segment_len=4, cell="minimal", pos="rope", norm="rmsnorm",
                  ffn="swiglu", rope_theta=500.0),
         B=2, seglens=None),
    dict(cfg=dict(vocab_size=70, d_model=24, n_layers=1, n_heads=3, n_kv_heads=3,
                  memory_slots=2, segment_len=6, cell="lstm", pos="sincos", norm="layernorm",
                  ffn="none", tie_embeddings=True, norm_eps=1e-4),
         B=2, seglens=[6, 4, 3]),
    dict(cfg=dict(vocab_size=64, d_model=24, n_layers=2, n_heads=2, n_kv_heads=1,
                  memory_slots=3, segment_len=8, cell="gru", pos="learned", norm="layernorm",
                  ffn="gelu", ffn_hidden=32),
         B=2, seglens=[8, 6, 3]),
    # long segments and many memory slots: large chunks in the C++ kernels
    dict(cfg=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=16, segment_len=18, cell="lstm", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=64),
         B=2, seglens=[18, 16, 3]),
    # dropout (the library's hash masks, rmkv_ref.HashDropout): gradients only; the
    # second has chunks of >= 16 rows (the CPU backend's many-row attention: oneDNN
    # products for its head size 8)
    dict(cfg=dict(vocab_size=61, d_model=24, n_layers=2, n_heads=2, n_kv_heads=1,
                  memory_slots=3, segment_len=6, cell="gru", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=40),
         B=2, seglens=None, dropout=0.25, seed=77),
    dict(cfg=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=16, segment_len=18, cell="lstm", pos="learned", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=64),
         B=2, seglens=[18, 17, 5], dropout=0.3, seed=12345),
    # head sizes 16 and 32: on CPUs with AVX-512 the chunks of >= 16 rows take the
    # fused attention (blocks of 32 queries, the last one short; one kv head split
    # across work items in the second)
    dict(cfg=dict(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                  memory_slots=16, segment_len=40, cell="gru", pos="rope", norm="layernorm",
                  ffn="swiglu", ffn_hidden=64),
         B=2, seglens=[40, 33, 6]),
    dict(cfg=dict(vocab_size=64, d_model=64, n_layers=2, n_heads=2, n_kv_heads=1,
                  memory_slots=16, segment_len=36, cell="lstm", pos="learned", norm="rmsnorm",
                  ffn="gelu", ffn_hidden=64),
         B=2, seglens=[36, 20, 9], dropout=0.2, seed=4242),
]

# Tiny configs for the finite-difference checks of --self-test; together they
# cover every option.
TINY = [
    dict(vocab_size=11, d_model=8, n_layers=2, n_heads=2, n_kv_heads=1, memory_slots=2,
         segment_len=3, cell="gru", pos="rope", norm="layernorm", ffn="swiglu", ffn_hidden=8),
    dict(vocab_size=9, d_model=8, n_layers=1, n_heads=2, n_kv_heads=2, memory_slots=2,
         segment_len=3, cell="lstm", pos="learned", norm="rmsnorm", ffn="gelu", ffn_hidden=6,
         tie_embeddings=True),
    dict(vocab_size=10, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, memory_slots=1,
         segment_len=4, cell="minimal", pos="sincos", norm="layernorm", ffn="none"),
    dict(vocab_size=7, d_model=4, n_layers=1, n_heads=1, n_kv_heads=1, memory_slots=3,
         segment_len=3, cell="gru", pos="sincos", norm="rmsnorm", ffn="swiglu", ffn_hidden=5,
         tie_embeddings=True),
]


def check_coverage(cfgs):
    """Returns a list of the options the configs fail to cover (empty = ok)."""
    full = [ref.complete_config(c) for c in cfgs]
    missing = []
    for key, values in (("cell", ref.CELLS), ("pos", ref.POSITIONS), ("norm", ref.NORMS),
                        ("ffn", ref.FFNS), ("tie_embeddings", (True, False))):
        for v in values:
            if not any(c[key] == v for c in full):
                missing.append("%s=%s" % (key, v))
    if not any(c["n_kv_heads"] < c["n_heads"] for c in full):
        missing.append("grouped-query attention")
    return missing


def large_config_present(entries):
    return any(e["cfg"]["memory_slots"] >= 16 and e["cfg"]["segment_len"] >= 16 for e in entries)


# ---------------------------------------------------------------------------
# Models and batches
# ---------------------------------------------------------------------------

def random_model(cfg, seed):
    """Every tensor at a scale where each path of the model matters: norm
    weights 1 + 0.3 randn, biases 0.2 randn, matrices randn * 0.8 / sqrt(fan_in),
    embeddings, init_memory and pool.query randn * 0.7.  float64."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in ref.param_shapes(cfg).items():
        base = name.rsplit(".", 1)[-1]
        r = torch.randn(shape, generator=g, dtype=torch.float64)
        if "norm" in name and base == "weight":
            r = 1.0 + 0.3 * r
        elif base.startswith("bias"):
            r = 0.2 * r
        elif name.endswith("init_memory") or name.endswith("pool.query") or name.endswith("emb.weight"):
            r = 0.7 * r
        else:
            r = r * (0.8 / math.sqrt(shape[-1]))
        out[name] = r
    return out


def model_metadata(cfg, seed):
    cfg_json = json.dumps({k: cfg[k] for k in ref.CONFIG_KEYS}, sort_keys=True)
    model_id = hashlib.sha256(("rmkv-train-oracle %d %s" % (seed, cfg_json)).encode()).hexdigest()
    return {"format": "rmkv-model", "format_version": "1", "config": cfg_json, "model_id": model_id}


def write_model(path, cfg, seed):
    """Writes an F32 model file; returns its tensors as float64 (exactly the
    float32 values the C++ side reads)."""
    params = random_model(cfg, seed)
    ref.save_safetensors(path, {k: v.float() for k, v in params.items()}, model_metadata(cfg, seed),
                         dtype="F32")
    tensors, meta = ref.load_safetensors(path)
    return ref.cast_params(tensors, torch.float64)


def make_batch(cfg, B, seglens, seed):
    """tokens/targets [B, N] (int64 numpy), the K = 3 segment lengths.
    Targets are random tokens with prompt-like masks (-1): row b masks its
    first b + 1 targets, row 1 also masks a stretch crossing the first
    segment boundary, and the last target of row 0 is masked."""
    S, V = cfg["segment_len"], cfg["vocab_size"]
    lens = list(seglens) if seglens is not None else [S, max(1, S - 2), 3]
    N = sum(lens)
    rng = np.random.RandomState(seed)
    tokens = rng.randint(0, V, size=(B, N)).astype(np.int64)
    targets = rng.randint(0, V, size=(B, N)).astype(np.int64)
    for b in range(B):
        targets[b, :b + 1] = -1
    if B > 1:
        a = max(0, lens[0] - 2)
        targets[1, a:a + 3] = -1
    targets[0, N - 1] = -1
    return tokens, targets, lens


def write_batch(path, tokens, targets, lens, dropout=0.0, seed=0):
    B, N = tokens.shape
    doc = {"batch_size": int(B), "n_tokens": int(N),
           "tokens": [int(t) for t in tokens.reshape(-1)],
           "targets": [int(t) for t in targets.reshape(-1)],
           "segment_lens": [int(k) for k in lens],
           "dropout": float(dropout), "seed": int(seed)}
    with open(path, "w") as f:
        json.dump(doc, f)


def write_train_params(path, tp):
    with open(path, "w") as f:
        json.dump({k: tp[k] for k in ref.TRAIN_PARAM_KEYS}, f)


def rel_err(a, b):
    """max|a - b| / max(max|b|, 1e-6); b is the reference."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return float("inf")
    if not bool(torch.isfinite(a).all()):
        return float("inf")
    if b.numel() == 0:
        return 0.0
    denom = max(float(b.abs().max()), 1e-6)
    return float((a - b).abs().max()) / denom


def inert_tensor(name, cfg):
    """Tensors whose gradient is zero by the SPEC for every input: without
    RoPE, attn.k.bias adds q . bk to every score of a query row and the
    softmax is invariant to it.  Their float64 reference gradient is
    round-off (~1e-17), so the relative error is meaningless; they are
    checked against the scale of the whole gradient instead."""
    return cfg["pos"] != "rope" and name.endswith("attn.k.bias")


def reference_grads(params, cfg, tokens, targets, lens, dropout=0.0, seed=0):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    gen = ref.HashDropout(dropout, seed) if dropout else None
    loss = ref.batch_loss(leaves, cfg, tokens, targets, lens, dropout=dropout, generator=gen)
    names = sorted(leaves)
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return float(loss), {k: (torch.zeros_like(params[k]) if g is None else g)
                         for k, g in zip(names, grads)}


def summary(cfg, B, lens):
    c = cfg
    return ("cell=%s pos=%s norm=%s ffn=%s D=%d H=%d/%d L=%d M=%d S=%d V=%d F=%d tie=%d B=%d segs=%s"
            % (c["cell"], c["pos"], c["norm"], c["ffn"], c["d_model"], c["n_heads"],
               c["n_kv_heads"], c["n_layers"], c["memory_slots"], c["segment_len"],
               c["vocab_size"], c["ffn_hidden"], int(c["tie_embeddings"]), B,
               ",".join(map(str, lens))))


# ---------------------------------------------------------------------------
# Comparison with the C++ program
# ---------------------------------------------------------------------------

def run_prog(cmd):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "could not run train_dump: %s" % e
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        return "train_dump exited %d: %s" % (proc.returncode, msg)
    return None


def compare_grads(desc, dump, paths, params, cfg, tokens, targets, lens, dropout=0.0, seed=0):
    """Returns (ok, line, reference gradient norm)."""
    err = run_prog([dump, "grads", paths["model"], paths["batch"], paths["grads"]])
    ref_loss, ref_g = reference_grads(params, cfg, tokens, targets, lens, dropout, seed)
    ref_norm = math.sqrt(sum(float((g ** 2).sum()) for g in ref_g.values()))
    if err:
        return False, "FAIL %s grads: %s" % (desc, err), ref_norm
    try:
        got, meta = ref.load_safetensors(paths["grads"])
    except (OSError, ValueError) as e:
        return False, "FAIL %s grads: cannot read %s: %s" % (desc, paths["grads"], e), ref_norm
    problems = []
    try:
        loss = float(meta["loss"])
    except (KeyError, ValueError) as e:
        return False, "FAIL %s grads: metadata 'loss' missing or not a number (%r)" % (desc, meta), ref_norm
    want = ref.param_shapes(cfg)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        problems.append("tensors missing %s, unexpected %s" % (missing, extra))
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-6)
    if not loss_err < TOL:
        problems.append("loss %.8g vs reference %.8g" % (loss, ref_loss))
    gscale = max(float(g.abs().max()) for g in ref_g.values())
    worst_name, worst = None, -1.0
    inert = []
    for name in sorted(want):
        if name not in got:
            continue
        if tuple(got[name].shape) != tuple(want[name]):
            problems.append("%s has shape %s, want %s" % (name, tuple(got[name].shape), want[name]))
            continue
        if inert_tensor(name, cfg):
            e = float(got[name].double().abs().max()) / gscale
            inert.append(e)
            if not e < TOL:
                problems.append("%s should be ~0 (inert without rope): max %.2e of the gradient scale"
                                % (name, e))
            continue
        e = rel_err(got[name], ref_g[name])
        if e > worst:
            worst_name, worst = name, e
        if not e < TOL:
            problems.append("%s rel_err %.3e" % (name, e))
    ok = not problems
    line = "%s %s grads: loss %.6f (ref %.6f, rel %.1e), %d tensors, worst %s rel_err=%.3e (tol %.0e)" % (
        "PASS" if ok else "FAIL", desc, loss, ref_loss, loss_err, len(want), worst_name, worst, TOL)
    if inert:
        line += ", inert k.bias max %.1e of gradient scale" % max(inert)
    if problems:
        line += " -- " + "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else "")
    return ok, line, ref_norm


def train_params_for(ref_norm):
    """AdamW settings of the comparison: warmup 3, cosine to step 10, grad_clip
    at 0.6 x the first step's gradient norm, so the first steps are clipped
    and (usually) some later ones are not."""
    return dict(learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=3, total_steps=ADAM_STEPS,
                weight_decay=0.1, beta1=0.9, beta2=0.99, epsilon=1e-8,
                grad_clip=float("%.6g" % (0.6 * ref_norm)))


def compare_adamw(desc, dump, paths, params, cfg, tokens, targets, lens, ref_norm):
    tp = train_params_for(ref_norm)
    write_train_params(paths["train"], tp)
    err = run_prog([dump, "adamw", paths["model"], paths["batch"], paths["train"], str(ADAM_STEPS),
                    paths["adamw"]])
    batch = {"tokens": tokens, "targets": targets, "segment_lens": lens}
    losses, _, hist = ref.adamw_reference(params, cfg, [batch] * ADAM_STEPS, tp, return_history=True)
    if err:
        return False, "FAIL %s adamw: %s" % (desc, err)
    try:
        with open(paths["adamw"]) as f:
            out = json.load(f)
        got_l = [float(x) for x in out["losses"]]
        got_n = [float(x) for x in out["grad_norms"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return False, "FAIL %s adamw: cannot read %s: %s" % (desc, paths["adamw"], e)
    if len(got_l) != ADAM_STEPS or len(got_n) != ADAM_STEPS:
        return False, "FAIL %s adamw: %d losses and %d grad norms, want %d each" % (
            desc, len(got_l), len(got_n), ADAM_STEPS)
    el = [abs(a - b) / max(abs(b), 1e-6) for a, b in zip(got_l, losses)]
    en = [abs(a - b) / max(abs(b), 1e-6) for a, b in zip(got_n, hist["grad_norms"])]
    clipped = sum(1 for s in hist["clip_scales"] if s < 1.0)
    ok = max(el) < TOL and max(en) < TOL
    line = ("%s %s adamw %d steps (clip %g, clipped on %d steps): loss %.4f -> %.4f, "
            "max loss rel %.1e (step %d), max grad-norm rel %.1e (step %d) (tol %.0e)"
            % ("PASS" if ok else "FAIL", desc, ADAM_STEPS, tp["grad_clip"], clipped, losses[0],
               losses[-1], max(el), 1 + el.index(max(el)), max(en), 1 + en.index(max(en)), TOL))
    if not ok:
        line += "\n    got  losses %s\n    want losses %s\n    got  norms  %s\n    want norms  %s" % (
            ["%.6f" % x for x in got_l], ["%.6f" % x for x in losses],
            ["%.5f" % x for x in got_n], ["%.5f" % x for x in hist["grad_norms"]])
    return ok, line


def run_compare(args):
    problems = check_coverage([e["cfg"] for e in CONFIGS])
    if not large_config_present(CONFIGS):
        problems.append("a config with memory_slots >= 16 and segment_len >= 16")
    if problems:
        print("config list does not cover: %s" % ", ".join(problems))
        print("0 passed, 1 failed")
        return 1
    dump = os.path.abspath(args.dump)
    if not (os.path.isfile(dump) and os.access(dump, os.X_OK)):
        print("train_dump not found or not executable: %s" % dump)
        print("0 passed, %d failed" % (2 * len(CONFIGS)))
        return 1
    tmp = None
    if args.workdir:
        workdir = args.workdir
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="rmkv_train_oracle_")
        workdir = tmp
    passed = failed = 0
    t_all = time.time()
    try:
        for i, entry in enumerate(CONFIGS):
            t0 = time.time()
            paths = {k: os.path.join(workdir, "%s_%d.%s" % (k, i, ext)) for k, ext in (
                ("model", "safetensors"), ("batch", "json"), ("grads", "safetensors"),
                ("train", "json"), ("adamw", "json"))}
            for k in ("grads", "adamw"):
                if os.path.exists(paths[k]):
                    os.remove(paths[k])
            results = []
            try:
                cfg = ref.complete_config(entry["cfg"])
                params = write_model(paths["model"], cfg, SEED + i)
                tokens, targets, lens = make_batch(cfg, entry["B"], entry["seglens"], SEED + 100 + i)
                dropout, seed = entry.get("dropout", 0.0), entry.get("seed", 0)
                write_batch(paths["batch"], tokens, targets, lens, dropout, seed)
                desc = "config %d: %s" % (i, summary(cfg, entry["B"], lens))
                if dropout:
                    desc += " dropout=%g" % dropout
                ok, line, ref_norm = compare_grads(desc, dump, paths, params, cfg, tokens, targets, lens,
                                                   dropout, seed)
                results.append((ok, line))
                if not dropout:  # the AdamW reference is deterministic: no dropout
                    results.append(compare_adamw(desc, dump, paths, params, cfg, tokens, targets, lens, ref_norm))
            except Exception as e:  # a bug in the reference or unexpected data
                results.append((False, "FAIL config %d: exception %s: %s" % (i, type(e).__name__, e)))
            for ok, line in results:
                print(line, flush=True)
                passed += ok
                failed += not ok
            print("  config %d took %.2f s" % (i, time.time() - t0), flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print("total %.1f s" % (time.time() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Self-test of the training reference (no C++ program)
# ---------------------------------------------------------------------------

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


def tiny_batch(cfg, seed, B=2):
    """K = 3 segments of unequal lengths, a few masked targets."""
    S = cfg["segment_len"]
    lens = [S, max(1, S - 1), 2]
    tokens, targets, _ = make_batch(cfg, B, lens, seed)
    return tokens, targets, lens


def self_test_gradcheck(st):
    """batch_loss against finite differences (torch.autograd.gradcheck,
    float64) with every parameter tensor as an input.  fast_mode checks a
    random projection of the Jacobian per input tensor; the smallest config
    is also checked element by element."""
    for i, c in enumerate(TINY):
        cfg = ref.complete_config(c)
        params = random_model(cfg, 500 + i)
        tokens, targets, lens = tiny_batch(cfg, 600 + i)
        names = sorted(params)

        def f(*ts):
            return ref.batch_loss(dict(zip(names, ts)), cfg, tokens, targets, lens)
        inputs = tuple(params[k].clone().requires_grad_(True) for k in names)
        fast = i < len(TINY) - 1
        t0 = time.time()
        ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5,
                                      fast_mode=fast, raise_exception=False)
        st.check(bool(ok), "gradcheck (%s) of batch_loss, all %d tensors, tiny %s/%s/%s/%s tie=%d "
                 "GQA=%d K=3 segs=%s (%.1f s)"
                 % ("fast mode" if fast else "every element", len(names), cfg["cell"], cfg["pos"],
                    cfg["norm"], cfg["ffn"], int(cfg["tie_embeddings"]),
                    int(cfg["n_kv_heads"] < cfg["n_heads"]), lens, time.time() - t0))


def self_test_loss_definition(st):
    """batch_loss against an independent formulation: stream_forward with a
    flush at every segment end, per row, and torch's cross_entropy with
    ignore_index=-1 over the whole batch."""
    for i, entry in enumerate(CONFIGS[:4]):
        cfg = ref.complete_config(entry["cfg"])
        params = random_model(cfg, 700 + i)
        tokens, targets, lens = make_batch(cfg, entry["B"], entry["seglens"], 800 + i)
        ends = list(np.cumsum(lens) - 1)
        with torch.no_grad():
            loss = ref.batch_loss(params, cfg, tokens, targets, lens)
            logits = torch.stack([ref.stream_forward(params, cfg, row.tolist(), flush_after=ends)
                                  for row in tokens])
            want = torch.nn.functional.cross_entropy(
                logits.reshape(-1, cfg["vocab_size"]), torch.as_tensor(targets.reshape(-1)),
                ignore_index=-1, reduction="mean")
        e = abs(float(loss) - float(want)) / abs(float(want))
        st.check(e < 1e-12, "config %d: batch_loss equals stream_forward + torch cross_entropy "
                 "(ignore_index=-1, mean over valid tokens of the batch) (rel %.1e)" % (i, e))
    # the normalisation matters: a mean of per-sequence means is a different loss
    cfg = ref.complete_config(CONFIGS[1]["cfg"])
    params = random_model(cfg, 720)
    tokens, targets, lens = make_batch(cfg, 3, None, 820)
    with torch.no_grad():
        logits = ref.batch_logits(params, cfg, tokens, lens)
        tok_mean = float(ref.masked_cross_entropy(logits, targets)[0])
        seq_mean = sum(float(ref.masked_cross_entropy(logits[b:b + 1], targets[b:b + 1])[0])
                       for b in range(3)) / 3
    e = abs(tok_mean - seq_mean) / tok_mean
    st.check(e > 10 * TOL, "token-weighted mean differs from a mean of per-sequence means (rel %.1e), "
             "so the gradient comparison checks the normalisation" % e)
    # segment_lens=None: segments of segment_len, the last one shorter
    cfg = ref.complete_config(CONFIGS[0]["cfg"])
    S = cfg["segment_len"]
    st.check(ref.resolve_segment_lens(None, 2 * S + 3, S) == [S, S, 3]
             and ref.resolve_segment_lens(None, 2 * S, S) == [S, S],
             "segment_lens=None gives [S, S, rest]")
    params = random_model(cfg, 710)
    tokens, targets, _ = make_batch(cfg, 2, [S, S, 3], 810)
    with torch.no_grad():
        a = ref.batch_loss(params, cfg, tokens, targets, None)
        b = ref.batch_loss(params, cfg, tokens, targets, [S, S, 3])
    st.check(float(a) == float(b), "segment_lens=None equals the explicit [S, S, 3]")
    bad = 0
    for lens in ([S + 1, S + 2], [S, S, 2], [0, 2 * S + 3]):
        try:
            ref.batch_loss(params, cfg, tokens, targets, lens)
        except ValueError:
            bad += 1
    st.check(bad == 3, "segment lengths longer than S, not summing to N, or 0 are refused")


def self_test_mask(st):
    cfg = ref.complete_config(CONFIGS[1]["cfg"])
    params = random_model(cfg, 900)
    tokens, targets, lens = make_batch(cfg, 3, None, 901)
    N = tokens.shape[1]
    assert targets[0, N - 1] == -1
    with torch.no_grad():
        base = float(ref.batch_loss(params, cfg, tokens, targets, lens))
        # the last token of row 0 only feeds its own (masked) prediction and the
        # final memory update, which no segment reads
        t2 = tokens.copy()
        t2[0, N - 1] = (t2[0, N - 1] + 5) % cfg["vocab_size"]
        same = float(ref.batch_loss(params, cfg, t2, targets, lens))
        st.check(same == base, "changing the input token whose prediction is masked (-1) changes "
                 "nothing (%.3e)" % abs(same - base))
        # masking one more target removes exactly its term from the mean
        j = N - 2
        assert targets[0, j] != -1
        n_valid = int((targets != -1).sum())
        logits = ref.batch_logits(params, cfg, tokens, lens)
        ce_j = float(torch.logsumexp(logits[0, j], 0) - logits[0, j, targets[0, j]])
        tg2 = targets.copy()
        tg2[0, j] = -1
        masked = float(ref.batch_loss(params, cfg, tokens, tg2, lens))
        e = abs(masked * (n_valid - 1) - (base * n_valid - ce_j)) / abs(base * n_valid)
        st.check(e < 1e-12, "masking a target removes exactly its term: loss' (n-1) = loss n - ce_j (rel %.1e)" % e)
        # a fully masked batch has loss 0
        z = ref.batch_loss(params, cfg, tokens, np.full_like(targets, -1), lens)
        st.check(float(z) == 0.0, "all targets masked: loss 0")
        # a target of -2 or >= V is refused
        bad = 0
        for v in (-2, cfg["vocab_size"]):
            tg3 = targets.copy()
            tg3[1, 3] = v
            try:
                ref.batch_loss(params, cfg, tokens, tg3, lens)
            except ValueError:
                bad += 1
        st.check(bad == 2, "targets outside {-1} u [0, V) are refused")


def self_test_bptt(st):
    """Only the last of K = 3 segments has targets: the gradient reaches every
    layer's init_memory (used by segment 1 only) through two memory updates,
    and equals finite differences."""
    for i in (0, 1, 2, 7):
        cfg = ref.complete_config(CONFIGS[i]["cfg"])
        params = random_model(cfg, 1000 + i)
        tokens, targets, lens = make_batch(cfg, 2, CONFIGS[i]["seglens"], 1100 + i)
        targets[:, :lens[0] + lens[1]] = -1
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        ref.batch_loss(leaves, cfg, tokens, targets, lens).backward()
        mems = ["layers.%d.init_memory" % l for l in range(cfg["n_layers"])]
        sizes = ["%.1e" % float(leaves[k].grad.abs().max()) for k in mems]
        ok = all(float(leaves[k].grad.abs().max()) > 1e-6 for k in mems)
        # every tensor is reached (k.bias is inert without rope)
        zero = [k for k, v in leaves.items() if float(v.grad.abs().max()) == 0.0
                and not inert_tensor(k, cfg) and k != "pos_emb.weight" and k != "tok_emb.weight"]
        st.check(ok and not zero, "config %d (%s): targets in segment 3 only: init_memory gradients "
                 "of all layers non-zero (max %s)%s" % (i, cfg["cell"], ", ".join(sizes),
                                                        (", zero: %s" % zero) if zero else ""))
        if i == 0:
            mem = params[mems[0]].clone().requires_grad_(True)

            def f(m):
                p = dict(params)
                p[mems[0]] = m
                return ref.batch_loss(p, cfg, tokens, targets, lens)
            ok = torch.autograd.gradcheck(f, (mem,), eps=1e-6, atol=1e-8, rtol=1e-5,
                                          raise_exception=False)
            st.check(bool(ok), "config 0: gradcheck of layers.0.init_memory through 2 memory updates "
                     "(targets in segment 3 only)")


def self_test_memory_use(st):
    for i in (0, 2, 5):
        cfg = ref.complete_config(CONFIGS[i]["cfg"])
        params = random_model(cfg, 1200 + i)
        tokens, targets, lens = make_batch(cfg, CONFIGS[i]["B"], CONFIGS[i]["seglens"], 1300 + i)
        with torch.no_grad():
            carried = float(ref.batch_loss(params, cfg, tokens, targets, lens))
            # K separate single-segment sequences, combined token-weighted
            total, count, p0 = 0.0, 0, 0
            for k in lens:
                tg = targets[:, p0:p0 + k]
                n = int((tg != -1).sum())
                if n:
                    # a separate sequence starts at position 0 (matters for sincos)
                    total += n * float(ref.batch_loss(params, cfg, tokens[:, p0:p0 + k], tg, [k]))
                count += n
                p0 += k
            separate = total / count
            # the carry_memory=False diagnostic keeps sincos positions p0 + t
            nomem_logits = ref.batch_logits(params, cfg, tokens, lens, carry_memory=False)
            nomem = float(ref.masked_cross_entropy(nomem_logits, targets)[0])
            first = ref.batch_logits(params, cfg, tokens, lens)[:, :lens[0]]
        e = abs(carried - separate) / abs(separate)
        same_first = float((nomem_logits[:, :lens[0]] - first).abs().max())
        ok = e > TOL and same_first == 0.0
        if cfg["pos"] != "sincos":
            ok = ok and abs(nomem - separate) <= 1e-12 * abs(separate)
        st.check(ok, "config %d (%s): K=%d segments with memory vs K separate sequences: losses "
                 "%.6f vs %.6f (rel diff %.1e > %.0e), first segment identical"
                 % (i, cfg["cell"], len(lens), carried, separate, e, TOL))


def self_test_schedule(st):
    tp = dict(learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=3, total_steps=10,
              weight_decay=0.1, beta1=0.9, beta2=0.99, epsilon=1e-8, grad_clip=1.0)
    lr = [ref.learning_rate_at(tp, s) for s in range(1, 13)]
    ok = (abs(lr[0] - 1e-2 / 3) < 1e-15 and abs(lr[1] - 2e-2 / 3) < 1e-15 and lr[2] == 1e-2
          and all(lr[s] < lr[s - 1] for s in range(3, 10))
          and abs(lr[9] - 1e-3) < 1e-15 and lr[10] == lr[9] == lr[11])
    tp2 = dict(tp, warmup_steps=2, total_steps=10)
    ok = ok and abs(ref.learning_rate_at(tp2, 6) - 0.5 * (1e-2 + 1e-3)) < 1e-15   # half-way
    tp3 = dict(tp, warmup_steps=0, total_steps=0)
    ok = ok and all(ref.learning_rate_at(tp3, s) == 1e-2 for s in (1, 5, 100))
    tp4 = dict(tp, warmup_steps=4, total_steps=0)
    ok = ok and ref.learning_rate_at(tp4, 2) == 5e-3 and ref.learning_rate_at(tp4, 50) == 1e-2
    tp5 = dict(tp, warmup_steps=0, total_steps=4)
    ok = ok and abs(ref.learning_rate_at(tp5, 2) - 0.5 * (1e-2 + 1e-3)) < 1e-15
    st.check(ok, "learning-rate schedule: warmup 1/3, 2/3, 1 x lr; cosine down to min_lr at "
             "total_steps and after; half-way = mean; constant without total_steps (%s)"
             % ", ".join("%.5f" % x for x in lr[:10]))
    dec, seen = set(), set()
    for e in CONFIGS:
        for k in ref.param_shapes(ref.complete_config(e["cfg"])):
            short = k.split(".", 2)[2] if k.startswith("layers.") else k
            seen.add(short)
            if ref.weight_decay_applies(k):
                dec.add(short)
    dec = sorted(dec)
    want = sorted(["attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "cell.weight_ih",
                   "cell.weight_hh", "cell.weight", "ffn.gate.weight", "ffn.up.weight",
                   "ffn.down.weight", "head.weight"])
    st.check(dec == want, "weight decay on exactly %s; not on %s" % (", ".join(dec), ", ".join(sorted(seen - set(dec)))))


def self_test_adamw(st):
    cfg = ref.complete_config(CONFIGS[0]["cfg"])
    params = random_model(cfg, 1400)
    tokens, targets, lens = make_batch(cfg, 2, None, 1401)
    batch = {"tokens": tokens, "targets": targets, "segment_lens": lens}
    tp = dict(learning_rate=0.0, min_learning_rate=0.0, warmup_steps=2, total_steps=5,
              weight_decay=0.1, beta1=0.9, beta2=0.99, epsilon=1e-8, grad_clip=0.5)
    losses, out = ref.adamw_reference(params, cfg, [batch] * 3, tp)
    ok = all(torch.equal(out[k], params[k]) for k in params) and losses[0] == losses[1] == losses[2]
    st.check(ok, "AdamW with learning rate 0 (and weight decay 0.1) leaves every parameter unchanged")

    # against torch.optim.AdamW: two param groups, lr set per step, clipping by hand
    tp = dict(learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=2, total_steps=5,
              weight_decay=0.1, beta1=0.9, beta2=0.95, epsilon=1e-8, grad_clip=0.0)
    losses, out, hist = ref.adamw_reference(params, cfg, [batch] * 5, tp, return_history=True)
    tp["grad_clip"] = 0.7 * hist["grad_norms"][0]
    losses, out, hist = ref.adamw_reference(params, cfg, [batch] * 5, tp, return_history=True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    dec = [v for k, v in sorted(leaves.items()) if ref.weight_decay_applies(k)]
    nodec = [v for k, v in sorted(leaves.items()) if not ref.weight_decay_applies(k)]
    opt = torch.optim.AdamW([{"params": dec, "weight_decay": tp["weight_decay"]},
                             {"params": nodec, "weight_decay": 0.0}],
                            lr=1.0, betas=(tp["beta1"], tp["beta2"]), eps=tp["epsilon"])
    tl = []
    for s in range(1, 6):
        opt.zero_grad()
        loss = ref.batch_loss(leaves, cfg, tokens, targets, lens)
        loss.backward()
        tl.append(float(loss))
        norm = math.sqrt(sum(float((v.grad ** 2).sum()) for v in leaves.values()))
        scale = tp["grad_clip"] / max(norm, tp["grad_clip"])
        for v in leaves.values():
            v.grad.mul_(scale)
        for grp in opt.param_groups:
            grp["lr"] = ref.learning_rate_at(tp, s)
        opt.step()
    e = max(rel_err(out[k], leaves[k].detach()) for k in params)
    el = max(abs(a - b) / abs(b) for a, b in zip(losses, tl))
    clipped = sum(1 for s in hist["clip_scales"] if s < 1)
    st.check(e < 1e-10 and el < 1e-12 and 0 < clipped < 5,
             "AdamW reference equals torch.optim.AdamW (decay/no-decay groups, per-step lr, "
             "clipping on %d of 5 steps): params rel %.1e, losses rel %.1e" % (clipped, e, el))

    # the tolerance of the C++ comparison is reachable in float32
    for i in (0, 7):
        cfg = ref.complete_config(CONFIGS[i]["cfg"])
        params = random_model(cfg, SEED + i)
        params = {k: v.float().double() for k, v in params.items()}
        tokens, targets, lens = make_batch(cfg, CONFIGS[i]["B"], CONFIGS[i]["seglens"], SEED + 100 + i)
        batch = {"tokens": tokens, "targets": targets, "segment_lens": lens}
        _, g = reference_grads(params, cfg, tokens, targets, lens)
        tp = train_params_for(math.sqrt(sum(float((x ** 2).sum()) for x in g.values())))
        l64, _, h64 = ref.adamw_reference(params, cfg, [batch] * ADAM_STEPS, tp, return_history=True)
        l32, _, h32 = ref.adamw_reference(params, cfg, [batch] * ADAM_STEPS, tp, dtype=torch.float32,
                                          return_history=True)
        el = max(abs(a - b) / abs(b) for a, b in zip(l32, l64))
        en = max(abs(a - b) / abs(b) for a, b in zip(h32["grad_norms"], h64["grad_norms"]))
        st.check(el < TOL / 10 and en < TOL / 10,
                 "config %d: float32 AdamW reference within %.0e of float64 over %d steps "
                 "(losses %.1e, grad norms %.1e)" % (i, TOL / 10, ADAM_STEPS, el, en))

    # the comparison detects the usual mistakes: every variant moves some loss or
    # gradient norm of the 10-step run by more than 10 x the tolerance
    cfg = ref.complete_config(CONFIGS[0]["cfg"])
    params = {k: v.float().double() for k, v in random_model(cfg, SEED).items()}
    tokens, targets, lens = make_batch(cfg, CONFIGS[0]["B"], CONFIGS[0]["seglens"], SEED + 100)
    batch = {"tokens": tokens, "targets": targets, "segment_lens": lens}
    _, g = reference_grads(params, cfg, tokens, targets, lens)
    tp = train_params_for(math.sqrt(sum(float((x ** 2).sum()) for x in g.values())))
    l0, _, h0 = ref.adamw_reference(params, cfg, [batch] * ADAM_STEPS, tp, return_history=True)
    variants = (("no weight decay", dict(tp, weight_decay=0.0), None),
                ("decay on every tensor", tp, lambda n: True),
                ("decay also on norms/biases/embeddings", tp,
                 lambda n: ref.weight_decay_applies(n) or n.endswith("bias") or "norm" in n or "emb" in n),
                ("no decay on head.weight", tp, lambda n: ref.weight_decay_applies(n) and n != "head.weight"),
                ("no clipping", dict(tp, grad_clip=0.0), None),
                ("no warmup", dict(tp, warmup_steps=0), None),
                ("no cosine decay", dict(tp, total_steps=0), None),
                ("epsilon 1e-5", dict(tp, epsilon=1e-5), None))
    weak = []
    diffs = []
    for what, tp2, dec in variants:
        l1, _, h1 = ref.adamw_reference(params, cfg, [batch] * ADAM_STEPS, tp2, return_history=True,
                                        decays=dec or ref.weight_decay_applies)
        d = max([abs(a - b) / abs(b) for a, b in zip(l1, l0)]
                + [abs(a - b) / abs(b) for a, b in zip(h1["grad_norms"], h0["grad_norms"])])
        diffs.append("%s %.0e" % (what, d))
        if not d > 10 * TOL:
            weak.append(what)
    st.check(not weak, "config 0: the AdamW comparison detects: %s%s"
             % (", ".join(diffs), (" -- too weak: " + ", ".join(weak)) if weak else ""))

    # state tuning: only init_memory trains
    cfg = ref.complete_config(CONFIGS[1]["cfg"])
    params = random_model(cfg, 1500)
    tokens, targets, lens = make_batch(cfg, 2, None, 1501)
    mems = ["layers.%d.init_memory" % l for l in range(cfg["n_layers"])]
    tp = dict(learning_rate=1e-2, min_learning_rate=1e-3, warmup_steps=0, total_steps=3,
              weight_decay=0.1, beta1=0.9, beta2=0.99, epsilon=1e-8, grad_clip=1.0)
    losses, out = ref.adamw_reference(params, cfg, [(tokens, targets, lens)] * 3, tp, trainable=mems)
    ok = (all(torch.equal(out[k], params[k]) for k in params if k not in mems)
          and all(not torch.equal(out[k], params[k]) for k in mems) and losses[2] < losses[0])
    st.check(ok, "state tuning (trainable = init_memory): only init_memory changes, loss %.4f -> %.4f"
             % (losses[0], losses[2]))


def self_test_dropout(st):
    cfg = ref.complete_config(CONFIGS[0]["cfg"])
    params = random_model(cfg, 1600)
    tokens, targets, lens = make_batch(cfg, 2, None, 1601)
    with torch.no_grad():
        a = float(ref.batch_loss(params, cfg, tokens, targets, lens))
        b = float(ref.batch_loss(params, cfg, tokens, targets, lens, dropout=0.0))
        c1 = float(ref.batch_loss(params, cfg, tokens, targets, lens, dropout=0.2,
                                  generator=torch.Generator().manual_seed(1)))
        c2 = float(ref.batch_loss(params, cfg, tokens, targets, lens, dropout=0.2,
                                  generator=torch.Generator().manual_seed(1)))
    st.check(a == b and c1 == c2 and c1 != a,
             "dropout: 0 is exact, 0.2 changes the loss (%.4f vs %.4f) and is reproducible per seed" % (c1, a))


def self_test_files(st, tmpdir):
    cfg = ref.complete_config(CONFIGS[1]["cfg"])
    path = os.path.join(tmpdir, "m.safetensors")
    params = write_model(path, cfg, 7)
    tensors, meta = ref.load_safetensors(path)
    ok = True
    try:
        back = ref.config_from_metadata(meta)
        ref.check_params(tensors, back)
        ok = (back == cfg and meta["format"] == "rmkv-model" and len(meta["model_id"]) == 64
              and all(c in "0123456789abcdef" for c in meta["model_id"])
              and set(json.loads(meta["config"])) == set(ref.CONFIG_KEYS))
    except (ValueError, KeyError):
        ok = False
    st.check(ok, "model file: metadata format/format_version/config (every SPEC key)/model_id, "
             "tensors of SPEC section 3")
    tokens, targets, lens = make_batch(cfg, 3, None, 8)
    bp = os.path.join(tmpdir, "b.json")
    write_batch(bp, tokens, targets, lens)
    doc = json.load(open(bp))
    ok = (doc["batch_size"] == 3 and doc["n_tokens"] == tokens.shape[1]
          and np.array_equal(np.array(doc["tokens"]).reshape(3, -1), tokens)
          and np.array_equal(np.array(doc["targets"]).reshape(3, -1), targets)
          and sum(doc["segment_lens"]) == doc["n_tokens"] and len(doc["segment_lens"]) == 3)
    st.check(ok, "batch JSON round trip (row-major tokens/targets, K=3 segment lengths)")


def run_self_test():
    st = SelfTest()
    t0 = time.time()
    missing = check_coverage([e["cfg"] for e in CONFIGS])
    st.check(not missing and large_config_present(CONFIGS),
             "compare configs cover every option and a large one (M>=16, S>=16)%s"
             % ((": missing " + ", ".join(missing)) if missing else ""))
    missing = check_coverage(TINY)
    st.check(not missing, "gradcheck configs cover every option%s"
             % ((": missing " + ", ".join(missing)) if missing else ""))
    tmpdir = tempfile.mkdtemp(prefix="rmkv_train_selftest_")
    try:
        self_test_files(st, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    self_test_loss_definition(st)
    self_test_mask(st)
    self_test_bptt(st)
    self_test_memory_use(st)
    self_test_gradcheck(st)
    self_test_schedule(st)
    self_test_adamw(st)
    self_test_dropout(st)
    print("self-test took %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (st.passed, st.failed))
    return 1 if st.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="path of the train_dump program")
    ap.add_argument("--workdir", help="directory for the model, batch and output files (kept)")
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
