#!/usr/bin/env python3
"""PyTorch baseline for the rmkv training benchmark.

Trains the RMKV model of shared/SPEC.md (sections 2-4 and 6) on random token
batches and reports the training throughput, so that the C++ library's training
speed can be compared with a plain, well-optimised PyTorch implementation.
Written from the SPEC only (eager mode on the CPU with PyTorch 1.13; on an
NVIDIA GPU, --device cuda, eager or --compile with PyTorch 2).

    /usr/bin/python3 bench/train_pytorch.py --config '{"vocab_size":16384,...}' \
        --batch 4 --segments 2 --steps 3 --warmup 1 --threads 2 [--seed 0] \
        [--dtype float32|bfloat16] [--fp32-gemm onednn|native] \
        [--device cpu|cuda|cuda:N] [--compile [blocks|loss]]
    /usr/bin/python3 bench/train_pytorch.py --self-check     # exits 0 or 1

Prints one line of JSON on stdout:
    {"tokens_per_s", "step_s", "losses", "threads", "dtype", "fp32_gemm",
     "device", "compile", "torch"}

Implementation notes
- Everything is batched over the B sequences ([B, T, D]); the only Python loops
  are over the K segments (the recurrence) and the layers.
- Q, K and V are one fused nn.Linear (q | k | v rows); the swiglu gate and up
  projections are one fused nn.Linear (gate | up rows). Attention is
  baddbmm(mask, Q, K^T, alpha=1/sqrt(hd)) -> softmax -> bmm, batched over the
  batch and the heads; grouped-query attention folds the query heads of a group
  into the row dimension, so K/V are never repeated.
- The memory update of the last segment of a sample feeds no loss, so it is not
  computed, and in that segment the memory rows are not used as queries either
  (their outputs O_m only feed the memory update).
- --fp32-gemm onednn (default): in float32 the nn.Linear layers run their
  matrix products through oneDNN (torch._C._nn.mkldnn_linear, which has an
  autograd formula). The torch 1.13 here is the Debian build, whose float32
  GEMM goes to the reference (netlib) BLAS at a few GFLOP/s; a PyTorch user
  would normally have MKL. --fp32-gemm native keeps F.linear (netlib).
  Batched products (attention, pooling) have no oneDNN float32 entry point in
  torch 1.13 and always use the build's BLAS. bfloat16 autocast already
  routes every matrix product to oneDNN.
- On a GPU (--device cuda): bfloat16 autocast on CUDA, attention through
  F.scaled_dot_product_attention with the additive mask (PyTorch >= 2.0, its
  fused kernels), AdamW with fused=True, a CUDA synchronisation before the
  timers. float32 matrix products stay in float32 (no TF32), as in rmkv's
  fp32 mode.
- --compile (PyTorch >= 2.2; --compile loss: 2.0): torch.compile of each block's forward, the
  repeated unit, as large PyTorch training setups do: one graph for the blocks
  that update the memory and one for the last segment's, shared by every layer
  (identical modules share compiled code), forward and backward fused by
  Inductor. --compile loss compiles the whole loss instead, with the loops over
  segments and layers unrolled into one graph; for the base config that takes
  minutes to compile. The masks and RoPE tables are made by an eager forward
  before compiling, so the compiled graphs only read them.
"""
import argparse
import importlib
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------
# configuration (SPEC section 2)

_DEFAULTS = {
    "n_kv_heads": None, "cell": "gru", "pos": "rope", "norm": "layernorm",
    "ffn": "swiglu", "ffn_hidden": None, "tie_embeddings": False,
    "norm_eps": 1e-5, "rope_theta": 10000.0,
}
_REQUIRED = ("vocab_size", "d_model", "n_layers", "n_heads", "memory_slots", "segment_len")


def make_config(d):
    unknown = set(d) - set(_DEFAULTS) - set(_REQUIRED)
    if unknown:
        raise ValueError("unknown config keys: %s" % sorted(unknown))
    cfg = dict(_DEFAULTS)
    cfg.update(d)
    for k in _REQUIRED:
        if k not in cfg:
            raise ValueError("config lacks %r" % k)
    D, H = cfg["d_model"], cfg["n_heads"]
    if cfg["n_kv_heads"] is None:
        cfg["n_kv_heads"] = H
    if cfg["ffn_hidden"] is None:
        cfg["ffn_hidden"] = max(64, int(round(8 * D / 3 / 64)) * 64)
    if D % H or (D // H) % 2:
        raise ValueError("d_model must be a multiple of n_heads with an even head_dim")
    if H % cfg["n_kv_heads"]:
        raise ValueError("n_kv_heads must divide n_heads")
    for k in ("vocab_size", "n_layers", "memory_slots", "segment_len"):
        if cfg[k] < 1:
            raise ValueError("%s must be >= 1" % k)
    for k, allowed in (("cell", ("gru", "lstm", "minimal")),
                       ("pos", ("rope", "learned", "sincos")),
                       ("norm", ("layernorm", "rmsnorm")),
                       ("ffn", ("swiglu", "gelu", "none"))):
        if cfg[k] not in allowed:
            raise ValueError("%s must be one of %s" % (k, allowed))
    return cfg


# --------------------------------------------------------------------------
# matrix products

_FP32_GEMM = "onednn"


def linear(x, weight, bias=None):
    """y = x W^T + b. In float32 outside autocast, optionally through oneDNN."""
    if (_FP32_GEMM == "onednn" and x.is_cpu and x.dtype == torch.float32
            and not torch.is_autocast_cpu_enabled()):
        shp = x.shape
        x2 = x.reshape(-1, shp[-1])
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        y = torch._C._nn.mkldnn_linear(x2.to_mkldnn(), weight, bias).to_dense()
        return y.view(*shp[:-1], weight.shape[0])
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    def forward(self, x):
        return linear(x, self.weight, self.bias)


# --------------------------------------------------------------------------
# model (SPEC sections 3 and 4)

class Norm(nn.Module):
    def __init__(self, kind, dim, eps):
        super().__init__()
        self.kind, self.dim, self.eps = kind, dim, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if kind == "layernorm" else None

    def forward(self, x):
        if self.kind == "layernorm":
            return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Cell(nn.Module):
    """The memory cell: hidden h = O_m, input s (both [N, D])."""

    def __init__(self, kind, D):
        super().__init__()
        self.kind, self.D = kind, D
        if kind == "minimal":
            self.weight = nn.Parameter(torch.empty(2 * D, 2 * D))
            self.bias = nn.Parameter(torch.zeros(2 * D))
        else:
            G = 3 if kind == "gru" else 4
            self.weight_ih = nn.Parameter(torch.empty(G * D, D))
            self.weight_hh = nn.Parameter(torch.empty(G * D, D))
            self.bias_ih = nn.Parameter(torch.empty(G * D))
            self.bias_hh = nn.Parameter(torch.empty(G * D))

    def forward(self, s, h, c):
        D = self.D
        if self.kind == "minimal":
            a, b = linear(torch.cat([h, s], -1), self.weight, self.bias).chunk(2, -1)
            g = torch.sigmoid(a)
            return h * g + (1 - g) * F.silu(b), None
        gi = linear(s, self.weight_ih, self.bias_ih)
        gh = linear(h, self.weight_hh, self.bias_hh)
        if self.kind == "gru":          # gate order r, z, n
            i_rz, i_n = gi.split([2 * D, D], -1)
            h_rz, h_n = gh.split([2 * D, D], -1)
            r, z = torch.sigmoid(i_rz + h_rz).chunk(2, -1)
            n = torch.tanh(i_n + r * h_n)
            return n + z * (h - n), None    # (1 - z) n + z h
        i, f, g, o = (gi + gh).chunk(4, -1)  # lstm, gate order i, f, g, o
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c2 = f * c + i * g
        return o * torch.tanh(c2), c2


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, H, Hkv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
        M, F_ = cfg["memory_slots"], cfg["ffn_hidden"]
        self.D, self.H, self.Hkv, self.hd, self.M = D, H, Hkv, D // H, M
        self.Dkv = Hkv * self.hd
        self.cfg = cfg
        self.init_memory = nn.Parameter(torch.empty(M, D))
        self.norm1 = Norm(cfg["norm"], D, cfg["norm_eps"])
        self.attn = nn.Module()
        self.attn.qkv = Linear(D, D + 2 * self.Dkv)      # fused q | k | v
        self.attn.o = Linear(D, D)
        self.pool = nn.Module()
        self.pool.query = nn.Parameter(torch.empty(M, D))
        self.cell = Cell(cfg["cell"], D)
        self.ffn_kind = cfg["ffn"]
        if self.ffn_kind != "none":
            self.norm2 = Norm(cfg["norm"], D, cfg["norm_eps"])
            self.ffn = nn.Module()
            if self.ffn_kind == "swiglu":
                self.ffn.gate_up = Linear(D, 2 * F_, bias=False)  # fused gate | up
            else:
                self.ffn.up = Linear(D, F_, bias=False)
            self.ffn.down = Linear(F_, D, bias=False)
            self.F = F_

    def forward(self, X, m, c, ctx, update):
        """X [B,T,D] token stream, m [B,M,D] memory (c: LSTM cell state).
        Returns (X_next, m_next, c_next); m_next/c_next are None unless update."""
        B, T, D = X.shape
        M, H, Hkv, hd, Dkv = self.M, self.H, self.Hkv, self.hd, self.Dkv
        g = H // Hkv
        N = M + T
        C = self.norm1(torch.cat([m.to(X.dtype), X], 1))          # memory rows first
        qkv = self.attn.qkv(C)                                     # [B, N, D + 2 Dkv]
        # split (not slicing) so that autograd concatenates the pieces' gradients
        if ctx.rope:
            cos, sin = ctx.rope_tables(T, qkv.dtype)               # [N, 1, hd]
            qk, v = qkv.split([D + Dkv, Dkv], -1)
            qk = qk.view(B, N, H + Hkv, hd)
            x1, x2 = qk.split(hd // 2, -1)
            qk = qk * cos + torch.cat([x2, x1], -1) * sin           # rotate-half
            q, k = qk.split([H, Hkv], 2)
        else:
            q, k, v = qkv.split([D, Dkv, Dkv], -1)
            q, k = q.view(B, N, H, hd), k.view(B, N, Hkv, hd)
        v = v.view(B, N, Hkv, hd)
        if not update:
            q = q.split([M, T], 1)[1]         # O_m is only needed for the memory update
        Nq = q.shape[1]
        # query head h = kv * g + j uses kv head kv = h // g: fold j into the rows
        q = q.reshape(B, Nq, Hkv, g, hd).permute(0, 2, 3, 1, 4).reshape(B * Hkv, g * Nq, hd)
        k = k.permute(0, 2, 3, 1).reshape(B * Hkv, hd, N)
        v = v.permute(0, 2, 1, 3).reshape(B * Hkv, N, hd)
        if ctx.sdpa:
            # fused attention (default scale 1/sqrt(hd)); k back to [B*Hkv, N, hd]
            a = F.scaled_dot_product_attention(q, k.transpose(1, 2), v, attn_mask=ctx.mask(T, g, update, q.dtype))
        else:
            scores = torch.baddbmm(ctx.mask(T, g, update, q.dtype), q, k, alpha=1.0 / math.sqrt(hd))
            a = torch.bmm(torch.softmax(scores, -1), v)
        a = a.view(B, Hkv, g, Nq, hd).permute(0, 3, 1, 2, 4).reshape(B, Nq, D)
        O = self.attn.o(a)
        if update:
            O_m, O_x = O.split([M, T], 1)
        else:
            O_x = O
        X1 = X + O_x
        if self.ffn_kind == "swiglu":
            gate, up = self.ffn.gate_up(self.norm2(X1)).chunk(2, -1)
            X2 = X1 + self.ffn.down(F.silu(gate) * up)
        elif self.ffn_kind == "gelu":
            X2 = X1 + self.ffn.down(F.gelu(self.ffn.up(self.norm2(X1))))
        else:
            X2 = X1
        if not update:
            return X2, None, None
        # memory update for the next segment: attention pooling, then the cell
        w = torch.softmax(linear(O_x, self.pool.query) * (1.0 / math.sqrt(D)), 1)  # [B,T,M]
        s = torch.bmm(w.transpose(1, 2), O_x)                                       # [B,M,D]
        m2, c2 = self.cell(s.reshape(B * M, D), O_m.reshape(B * M, D),
                           None if c is None else c.reshape(B * M, D))
        return X2, m2.view(B, M, D), (None if c2 is None else c2.view(B, M, D))


class Context:
    """Cached masks and RoPE tables, per segment length."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.rope = cfg["pos"] == "rope"
        self._masks, self._rope = {}, {}
        self.device = torch.device("cpu")
        self.sdpa = False   # F.scaled_dot_product_attention (set on a GPU)

    def mask(self, T, g, update, dtype):
        key = (T, g, update, dtype)
        if key not in self._masks:
            M = self.cfg["memory_slots"]
            N = M + T
            allowed = torch.ones(N, N, dtype=torch.bool)
            allowed[M:, M:] = torch.ones(T, T, dtype=torch.bool).tril()   # token t: mem + 0..t
            if not update:
                allowed = allowed[M:]
            mk = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
            self._masks[key] = mk.repeat(g, 1).to(device=self.device, dtype=dtype)  # rows: j * Nq + row
        return self._masks[key]

    def rope_tables(self, T, dtype):
        key = (T, dtype)
        if key not in self._rope:
            M, hd = self.cfg["memory_slots"], self.cfg["d_model"] // self.cfg["n_heads"]
            half = hd // 2
            inv = self.cfg["rope_theta"] ** (-2.0 * torch.arange(half, dtype=torch.float64) / hd)
            ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]       # [T, half]
            cos = torch.cat([torch.ones(M, half, dtype=torch.float64), ang.cos()], 0)
            sin = torch.cat([torch.zeros(M, half, dtype=torch.float64), ang.sin()], 0)
            cos = torch.cat([cos, cos], -1)
            sin = torch.cat([-sin, sin], -1)          # rotate-half sign folded in
            self._rope[key] = (cos[:, None].to(device=self.device, dtype=dtype),
                               sin[:, None].to(device=self.device, dtype=dtype))
        return self._rope[key]


def sincos_table(n, D):
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i2 = torch.arange(0, D, 2, dtype=torch.float64)
    ang = p / (10000.0 ** (i2 / D))
    pe = torch.zeros(n, D, dtype=torch.float64)
    pe[:, 0::2] = ang.sin()
    pe[:, 1::2] = ang.cos()[:, :D // 2]
    return pe.float()


class RMKV(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, D, S = cfg["vocab_size"], cfg["d_model"], cfg["segment_len"]
        self.tok_emb = nn.Embedding(V, D)
        if cfg["pos"] == "learned":
            self.pos_emb = nn.Embedding(S, D)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layers"])])
        self.norm_f = Norm(cfg["norm"], D, cfg["norm_eps"])
        if not cfg["tie_embeddings"]:
            self.head = Linear(D, V, bias=False)
        self.ctx = Context(cfg)
        self._pe = None
        self.reset_parameters()

    def reset_parameters(self):
        L, D = self.cfg["n_layers"], self.cfg["d_model"]
        std, out_std = 0.02, 0.02 / math.sqrt(2 * L)
        for name, p in self.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm_f.weight":
                nn.init.ones_(p)
            elif ".cell.weight_" in name or ".cell.bias_" in name:
                bound = 1.0 / math.sqrt(D)             # PyTorch's RNN-cell default
                nn.init.uniform_(p, -bound, bound)
            elif p.dim() == 1:
                nn.init.zeros_(p)
            elif name.endswith("attn.o.weight") or name.endswith("ffn.down.weight"):
                nn.init.normal_(p, 0.0, out_std)
            else:
                nn.init.normal_(p, 0.0, std)

    def head_weight(self):
        return self.tok_emb.weight if self.cfg["tie_embeddings"] else self.head.weight

    def hidden(self, tokens):
        """tokens [B, n] -> final hidden states [B, n, D] (before norm_f).
        The stream is cut into segments of segment_len (the last may be
        shorter); memory flows through them and gradients flow back through it."""
        cfg = self.cfg
        B, n = tokens.shape
        S, M, D = cfg["segment_len"], cfg["memory_slots"], cfg["d_model"]
        X_all = self.tok_emb(tokens)
        if cfg["pos"] == "sincos":
            if self._pe is None or self._pe.shape[0] < n:
                self._pe = sincos_table(max(n, 2 * S), D).to(X_all.device)
            X_all = X_all + self._pe[:n]              # absolute position p0 + t
        mem = [layer.init_memory.unsqueeze(0).expand(B, M, D) for layer in self.layers]
        cst = [X_all.new_zeros(B, M, D) if cfg["cell"] == "lstm" else None for _ in self.layers]
        outs = []
        starts = list(range(0, n, S))
        for si, p0 in enumerate(starts):
            X = X_all[:, p0:p0 + S]
            T = X.shape[1]
            if cfg["pos"] == "learned":
                X = X + self.pos_emb.weight[:T]      # position inside the segment
            update = si + 1 < len(starts)             # the last segment's update feeds nothing
            for l, layer in enumerate(self.layers):
                X, m2, c2 = layer(X, mem[l], cst[l], self.ctx, update)
                if update:
                    mem[l], cst[l] = m2, c2
            outs.append(X)
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0]

    def logits(self, tokens):
        return linear(self.norm_f(self.hidden(tokens)), self.head_weight())

    def loss(self, tokens, targets):
        lg = self.logits(tokens)
        return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-1)


def make_optimizer(model, lr=3e-4, weight_decay=0.1, fused=False):
    """AdamW; weight decay on the matrices only (SPEC 6: not on norms, biases,
    embeddings, init_memory, pool.query)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = (p.dim() < 2 or name.startswith("tok_emb") or name.startswith("pos_emb")
                or name.endswith("init_memory") or name.endswith("pool.query"))
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if fused:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)


# --------------------------------------------------------------------------
# benchmark

def bench(args):
    cfg = make_config(json.loads(args.config))
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    if gpu and not torch.cuda.is_available():
        sys.exit("train_pytorch.py: --device %s but torch.cuda.is_available() is False" % args.device)
    if args.compile and not hasattr(torch, "compile"):
        sys.exit("train_pytorch.py: --compile needs PyTorch >= 2.0 (this is %s)" % torch.__version__)
    if args.compile == "blocks" and not hasattr(nn.Module, "compile"):
        sys.exit("train_pytorch.py: --compile blocks needs PyTorch >= 2.2 (this is %s); try --compile loss" % torch.__version__)
    torch.manual_seed(args.seed)
    model = RMKV(cfg).to(dev)
    model.ctx.device = dev
    model.ctx.sdpa = gpu and hasattr(F, "scaled_dot_product_attention")
    model.train()
    opt = make_optimizer(model, fused=gpu)
    params = [p for p in model.parameters()]
    S, K, B = cfg["segment_len"], args.segments, args.batch
    gen = torch.Generator().manual_seed(args.seed + 1)
    stream = torch.randint(0, cfg["vocab_size"], (B, K * S + 1), generator=gen)
    tokens, targets = stream[:, :-1].contiguous().to(dev), stream[:, 1:].contiguous().to(dev)
    bf16 = args.dtype == "bfloat16"
    loss_fn = model.loss
    if args.compile:
        with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            model.loss(tokens, targets)      # fills the mask and RoPE caches eagerly
        if args.compile == "loss":
            loss_fn = torch.compile(model.loss)
        else:
            dynamo = importlib.import_module("torch._dynamo")
            dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
            for layer in model.layers:
                layer.compile()              # nn.Module.compile (PyTorch >= 2.2)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()   # waits for the step (as rmkv's step does)

    for _ in range(args.warmup):
        step()
    if gpu:
        torch.cuda.synchronize(dev)
    losses = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    if gpu:
        torch.cuda.synchronize(dev)
    dt = (time.perf_counter() - t0) / max(args.steps, 1)
    print(json.dumps({"tokens_per_s": B * K * S / dt, "step_s": dt, "losses": losses,
                      "threads": args.threads, "dtype": args.dtype,
                      "fp32_gemm": _FP32_GEMM if not gpu else "cublas",
                      "device": str(dev), "compile": args.compile or False, "torch": torch.__version__}))
    sys.stdout.flush()


# --------------------------------------------------------------------------
# self-check: causality, memory flow, BPTT, and a literal reference of SPEC 4

def reference_logits(model, tokens):
    """Straightforward float64 transcription of SPEC section 4 for one sequence
    (tokens [n]); loops over segments, layers, heads and rows."""
    cfg = model.cfg
    dd = torch.float64
    V, D, H, Hkv = cfg["vocab_size"], cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    M, S, hd = cfg["memory_slots"], cfg["segment_len"], cfg["d_model"] // cfg["n_heads"]
    Dkv = Hkv * hd
    eps = cfg["norm_eps"]

    def P(t):
        return t.detach().to(dd)

    def norm(x, mod):
        if cfg["norm"] == "layernorm":
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu) ** 2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + eps) * P(mod.weight) + P(mod.bias)
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * P(mod.weight)

    def sig(x):
        return 1.0 / (1.0 + torch.exp(-x))

    emb = P(model.tok_emb.weight)
    head = P(model.head_weight())
    mem = [P(layer.init_memory) for layer in model.layers]
    cst = [torch.zeros(M, D, dtype=dd) for _ in model.layers]
    out = []
    n = tokens.shape[0]
    for p0 in range(0, n, S):
        seg = tokens[p0:p0 + S]
        T = seg.shape[0]
        X = emb[seg].clone()
        if cfg["pos"] == "learned":
            X = X + P(model.pos_emb.weight)[:T]
        elif cfg["pos"] == "sincos":
            for t in range(T):
                for i in range(D // 2):
                    a = (p0 + t) / 10000.0 ** (2 * i / D)
                    X[t, 2 * i] += math.sin(a)
                    X[t, 2 * i + 1] += math.cos(a)
        new_mem, new_cst = [], []
        for l, layer in enumerate(model.layers):
            m = mem[l]
            N = M + T
            C = norm(torch.cat([m, X], 0), layer.norm1)
            W, b = P(layer.attn.qkv.weight), P(layer.attn.qkv.bias)
            Q = C @ W[:D].T + b[:D]
            Kt = C @ W[D:D + Dkv].T + b[D:D + Dkv]
            Vt = C @ W[D + Dkv:].T + b[D + Dkv:]
            Q, Kt, Vt = Q.view(N, H, hd).clone(), Kt.view(N, Hkv, hd).clone(), Vt.view(N, Hkv, hd)
            if cfg["pos"] == "rope":
                for Z in (Q, Kt):
                    for t in range(T):
                        for i in range(hd // 2):
                            a = t * cfg["rope_theta"] ** (-2.0 * i / hd)
                            x1 = Z[M + t, :, i].clone()
                            x2 = Z[M + t, :, i + hd // 2].clone()
                            Z[M + t, :, i] = x1 * math.cos(a) - x2 * math.sin(a)
                            Z[M + t, :, i + hd // 2] = x2 * math.cos(a) + x1 * math.sin(a)
            A = torch.zeros(N, D, dtype=dd)
            for h in range(H):
                kvh = h // (H // Hkv)
                for r in range(N):
                    cols = list(range(N)) if r < M else list(range(M)) + list(range(M, r + 1))
                    sc = Kt[cols, kvh] @ Q[r, h] / math.sqrt(hd)
                    pr = torch.softmax(sc, 0)
                    A[r, h * hd:(h + 1) * hd] = pr @ Vt[cols, kvh]
            O = A @ P(layer.attn.o.weight).T + P(layer.attn.o.bias)
            Om, Ox = O[:M], O[M:]
            X1 = X + Ox
            if cfg["ffn"] == "swiglu":
                Fh = layer.F
                Wg = P(layer.ffn.gate_up.weight)
                u = norm(X1, layer.norm2)
                gate, up = u @ Wg[:Fh].T, u @ Wg[Fh:].T
                X2 = X1 + (gate * sig(gate) * up) @ P(layer.ffn.down.weight).T
            elif cfg["ffn"] == "gelu":
                u = norm(X1, layer.norm2) @ P(layer.ffn.up.weight).T
                gl = 0.5 * u * (1.0 + torch.erf(u / math.sqrt(2.0)))
                X2 = X1 + gl @ P(layer.ffn.down.weight).T
            else:
                X2 = X1
            # memory update
            pq = P(layer.pool.query)
            s = torch.softmax(pq @ Ox.T / math.sqrt(D), 1) @ Ox
            h_ = Om
            cell = layer.cell
            if cfg["cell"] == "minimal":
                ab = torch.cat([h_, s], 1) @ P(cell.weight).T + P(cell.bias)
                a_, b_ = ab[:, :D], ab[:, D:]
                m2 = h_ * sig(a_) + (1 - sig(a_)) * b_ * sig(b_)
                c2 = None
            else:
                Wi, Wh = P(cell.weight_ih), P(cell.weight_hh)
                bi, bh = P(cell.bias_ih), P(cell.bias_hh)

                def gate(j):
                    return (s @ Wi[j * D:(j + 1) * D].T + bi[j * D:(j + 1) * D],
                            h_ @ Wh[j * D:(j + 1) * D].T + bh[j * D:(j + 1) * D])
                if cfg["cell"] == "gru":
                    (ir, hr), (iz, hz), (inn, hn) = gate(0), gate(1), gate(2)
                    r, z = sig(ir + hr), sig(iz + hz)
                    nn_ = torch.tanh(inn + r * hn)
                    m2, c2 = (1 - z) * nn_ + z * h_, None
                else:
                    gi, gf, gg, go = [sum(gate(j)) for j in range(4)]
                    c2 = sig(gf) * cst[l] + sig(gi) * torch.tanh(gg)
                    m2 = sig(go) * torch.tanh(c2)
            new_mem.append(m2)
            new_cst.append(c2)
            X = X2
        mem, cst = new_mem, new_cst
        out.append(norm(X, model.norm_f) @ head.T)
    return torch.cat(out, 0)


def self_check():
    base = {"vocab_size": 40, "d_model": 32, "n_layers": 2, "n_heads": 4,
            "memory_slots": 3, "segment_len": 6}
    variants = [
        {"cell": "gru", "pos": "rope", "norm": "layernorm", "ffn": "swiglu", "n_kv_heads": 2},
        {"cell": "lstm", "pos": "learned", "norm": "rmsnorm", "ffn": "gelu", "tie_embeddings": True},
        {"cell": "minimal", "pos": "sincos", "norm": "layernorm", "ffn": "none", "n_kv_heads": 1},
        {"cell": "lstm", "pos": "rope", "norm": "rmsnorm", "ffn": "none", "n_kv_heads": 4},
        {"cell": "gru", "pos": "sincos", "norm": "rmsnorm", "ffn": "swiglu", "tie_embeddings": True},
    ]
    ok = True

    def report(cond, what):
        nonlocal ok
        print(("  ok    " if cond else "  FAIL  ") + what, file=sys.stderr)
        ok = ok and bool(cond)

    torch.manual_seed(0)
    for var in variants:
        cfg = make_config(dict(base, **var))
        print("config %s" % json.dumps(var), file=sys.stderr)
        model = RMKV(cfg)
        # larger init so that every path (memory, cell) visibly matters
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, 0.3)
                elif not name.endswith("weight"):
                    p.normal_(0.0, 0.1)
        S = cfg["segment_len"]
        B, n = 2, 3 * S + 2        # three full segments and a short tail
        V = cfg["vocab_size"]
        tokens = torch.randint(0, V, (B, n))
        with torch.no_grad():
            base_lg = model.logits(tokens)
            ref = reference_logits(model, tokens[1])
        err = (base_lg[1].double() - ref).abs().max().item()
        report(err < 2e-4, "matches the literal SPEC-4 reference (max abs diff %.2e)" % err)
        # causality: logits at positions <= p must not depend on tokens > p
        for p in (0, 2, S - 1, S, S + 3, 2 * S - 1, 2 * S + 1, 3 * S):
            t2 = tokens.clone()
            t2[:, p + 1:] = (t2[:, p + 1:] + torch.randint(1, V, t2[:, p + 1:].shape)) % V
            with torch.no_grad():
                lg2 = model.logits(t2)
            d_past = (lg2[:, :p + 1] - base_lg[:, :p + 1]).abs().max().item()
            d_next = (lg2[:, p + 1] - base_lg[:, p + 1]).abs().max().item()
            report(d_past <= 1e-5 and d_next > 1e-4,
                   "change tokens > %2d: logits <= %2d moved %.1e, logit %2d moved %.1e"
                   % (p, p, d_past, p + 1, d_next))
        # memory carries information across segments: change only segment 0
        t2 = tokens.clone()
        t2[:, :S] = (t2[:, :S] + 1) % V
        with torch.no_grad():
            lg2 = model.logits(t2)
        d = (lg2[:, 2 * S:] - base_lg[:, 2 * S:]).abs().max().item()
        report(d > 1e-4, "segment-0 tokens change segment-2 logits through memory (%.1e)" % d)
        # BPTT: the loss of the last segment alone reaches the pooling/cell
        # parameters (used only by memory updates of earlier segments)
        targets = torch.randint(0, V, (B, n))
        targets[:, :3 * S] = -1
        model.zero_grad(set_to_none=True)
        model.loss(tokens, targets).backward()
        gq = model.layers[0].pool.query.grad
        gm = model.layers[0].init_memory.grad
        report(gq is not None and gq.abs().max().item() > 0 and gm.abs().max().item() > 0,
               "last-segment loss reaches pool.query and init_memory of layer 0 (BPTT)")
        # ignore_index: targets of -1 do not count
        with torch.no_grad():
            l1 = model.loss(tokens, targets).item()
            lg = model.logits(tokens)[:, 3 * S:]
            l2 = F.cross_entropy(lg.reshape(-1, V), targets[:, 3 * S:].reshape(-1)).item()
        report(abs(l1 - l2) < 1e-5, "loss is the mean over targets != -1")
        # the fused attention of the GPU runs (PyTorch >= 2.0) gives the same logits
        if hasattr(F, "scaled_dot_product_attention"):
            model.ctx.sdpa = True
            with torch.no_grad():
                ls = model.logits(tokens)
            model.ctx.sdpa = False
            d = (ls - base_lg).abs().max().item()
            report(d < 1e-4, "scaled_dot_product_attention path: logits moved %.1e" % d)
        # the same causality under bfloat16 autocast (the benchmark's other mode)
        with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            lb = model.logits(tokens).float()
            for p in (S - 1, 2 * S + 1):
                t2 = tokens.clone()
                t2[:, p + 1:] = (t2[:, p + 1:] + 1) % V
                lb2 = model.logits(t2).float()
                d_past = (lb2[:, :p + 1] - lb[:, :p + 1]).abs().max().item()
                d_next = (lb2[:, p + 1] - lb[:, p + 1]).abs().max().item()
                report(bool(torch.isfinite(lb).all()) and d_past <= 1e-5 and d_next > 1e-4,
                       "bfloat16: change tokens > %2d: logits <= %2d moved %.1e, logit %2d moved %.1e"
                       % (p, p, d_past, p + 1, d_next))
    print("self-check: %s" % ("OK" if ok else "FAILED"), file=sys.stderr)
    return 0 if ok else 1


def main():
    global _FP32_GEMM
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="JSON of SPEC section 2 keys")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--fp32-gemm", choices=("onednn", "native"), default="onednn",
                    help="float32 nn.Linear products: oneDNN (default) or the build's BLAS")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--compile", nargs="?", const="blocks", choices=("blocks", "loss"),
                    help="torch.compile each block (default) or the whole loss (PyTorch >= 2.0)")
    ap.add_argument("--self-check", action="store_true",
                    help="verify causality/memory/reference on tiny configs; exit 0/1")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _FP32_GEMM = args.fp32_gemm
    if _FP32_GEMM == "onednn" and not torch.backends.mkldnn.is_available():
        _FP32_GEMM = "native"
    if args.self_check:
        sys.exit(self_check())
    if not args.config:
        ap.error("--config is required")
    bench(args)


if __name__ == "__main__":
    main()
