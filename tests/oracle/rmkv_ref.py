"""Independent PyTorch reference ("oracle") of the RMKV model.

Written from SPEC.md (sections 2 to 7) only; it does not follow or
share code with the C++ library.  Everything is plain PyTorch on explicit
matrices (no fused kernels), so it can be read against the SPEC line by line,
and it is differentiable: pass parameters with requires_grad=True and call
backward() on anything computed from the logits.

Conventions
- params: dict name -> torch.Tensor, names and shapes of SPEC section 3.
  Linear layers follow nn.Linear: weight [out, in], y = x W^T + b.
- cfg: dict with every key of SPEC section 2 (use complete_config or
  config_from_metadata to fill the defaults).
- state: {"memory": [m_0, ..., m_{L-1}] each [M, D],
          "cell":   [c_0, ...] each [M, D] for cell == "lstm", else None}.

Training (SPEC section 6, used by test_train.py): batch_logits / batch_loss
(K segments per sequence, memory carried, BPTT, loss mask -1),
learning_rate_at (warmup + cosine schedule), weight_decay_applies and
adamw_reference (global-norm clipping + AdamW), each documenting the exact
contract the C++ trainer must match.
"""

import json
import math
import struct

import numpy as np
import torch

# ---------------------------------------------------------------------------
# Configuration (SPEC section 2)
# ---------------------------------------------------------------------------

CONFIG_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads",
               "memory_slots", "segment_len", "cell", "pos", "norm", "ffn",
               "ffn_hidden", "tie_embeddings", "norm_eps", "rope_theta")

CELLS = ("gru", "lstm", "minimal")
POSITIONS = ("rope", "learned", "sincos")
NORMS = ("layernorm", "rmsnorm")
FFNS = ("swiglu", "gelu", "none")


def default_ffn_hidden(d_model):
    """SPEC: "round(8D/3) to a multiple of 64".

    The SPEC does not say whether the multiple is the nearest one or the next
    one up; this reference rounds 8D/3 to an integer and then UP to the next
    multiple of 64 (the usual LLaMA-style convention, never 0).  For
    D in {16, 24, 40, 48} both readings agree.
    """
    f = int(round(8.0 * d_model / 3.0))
    return ((f + 63) // 64) * 64


def complete_config(cfg):
    """Returns a copy of cfg with every key of SPEC section 2, defaults filled
    in, types normalised and the constraints of section 2 checked."""
    c = dict(cfg)
    for k in ("vocab_size", "d_model", "n_layers", "n_heads", "memory_slots",
              "segment_len"):
        if k not in c:
            raise ValueError("config: missing required key %r" % k)
        c[k] = int(c[k])
    c.setdefault("n_kv_heads", c["n_heads"])
    c["n_kv_heads"] = int(c["n_kv_heads"])
    c.setdefault("cell", "gru")
    c.setdefault("pos", "rope")
    c.setdefault("norm", "layernorm")
    c.setdefault("ffn", "swiglu")
    if c.get("ffn_hidden") is None:
        c["ffn_hidden"] = default_ffn_hidden(c["d_model"])
    c["ffn_hidden"] = int(c["ffn_hidden"])
    c["tie_embeddings"] = bool(c.get("tie_embeddings", False))
    c["norm_eps"] = float(c.get("norm_eps", 1e-5))
    c["rope_theta"] = float(c.get("rope_theta", 10000.0))

    V, D, L, H = c["vocab_size"], c["d_model"], c["n_layers"], c["n_heads"]
    Hkv, M, S = c["n_kv_heads"], c["memory_slots"], c["segment_len"]
    if V < 1 or D < 1 or L < 1 or H < 1 or M < 1 or S < 1 or Hkv < 1:
        raise ValueError("config: sizes must be >= 1: %r" % (c,))
    if D % H != 0:
        raise ValueError("config: d_model %d is not a multiple of n_heads %d" % (D, H))
    if (D // H) % 2 != 0:
        raise ValueError("config: head_dim %d is odd" % (D // H))
    if H % Hkv != 0:
        raise ValueError("config: n_kv_heads %d does not divide n_heads %d" % (Hkv, H))
    if c["cell"] not in CELLS:
        raise ValueError("config: bad cell %r" % c["cell"])
    if c["pos"] not in POSITIONS:
        raise ValueError("config: bad pos %r" % c["pos"])
    if c["norm"] not in NORMS:
        raise ValueError("config: bad norm %r" % c["norm"])
    if c["ffn"] not in FFNS:
        raise ValueError("config: bad ffn %r" % c["ffn"])
    if c["ffn"] != "none" and c["ffn_hidden"] < 1:
        raise ValueError("config: ffn_hidden must be >= 1")
    return c


def config_from_metadata(metadata):
    """Parses metadata["config"] (JSON of SPEC section 2) and fills defaults."""
    if "config" not in metadata:
        raise ValueError("model file metadata has no 'config'")
    raw = metadata["config"]
    cfg = json.loads(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(cfg, dict):
        raise ValueError("metadata 'config' is not a JSON object")
    return complete_config(cfg)


def param_shapes(cfg):
    """Expected tensor names and shapes (SPEC section 3), in a fixed order."""
    V, D, L = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"]
    H, Hkv, M, S = cfg["n_heads"], cfg["n_kv_heads"], cfg["memory_slots"], cfg["segment_len"]
    F = cfg["ffn_hidden"]
    hd = D // H
    Dkv = Hkv * hd
    ln = cfg["norm"] == "layernorm"
    shapes = {"tok_emb.weight": (V, D)}
    if cfg["pos"] == "learned":
        shapes["pos_emb.weight"] = (S, D)
    for l in range(L):
        p = "layers.%d." % l
        shapes[p + "init_memory"] = (M, D)
        shapes[p + "norm1.weight"] = (D,)
        if ln:
            shapes[p + "norm1.bias"] = (D,)
        shapes[p + "attn.q.weight"] = (D, D)
        shapes[p + "attn.q.bias"] = (D,)
        shapes[p + "attn.k.weight"] = (Dkv, D)
        shapes[p + "attn.k.bias"] = (Dkv,)
        shapes[p + "attn.v.weight"] = (Dkv, D)
        shapes[p + "attn.v.bias"] = (Dkv,)
        shapes[p + "attn.o.weight"] = (D, D)
        shapes[p + "attn.o.bias"] = (D,)
        shapes[p + "pool.query"] = (M, D)
        if cfg["cell"] in ("gru", "lstm"):
            G = 3 if cfg["cell"] == "gru" else 4
            shapes[p + "cell.weight_ih"] = (G * D, D)
            shapes[p + "cell.weight_hh"] = (G * D, D)
            shapes[p + "cell.bias_ih"] = (G * D,)
            shapes[p + "cell.bias_hh"] = (G * D,)
        else:
            shapes[p + "cell.weight"] = (2 * D, 2 * D)
            shapes[p + "cell.bias"] = (2 * D,)
        if cfg["ffn"] != "none":
            shapes[p + "norm2.weight"] = (D,)
            if ln:
                shapes[p + "norm2.bias"] = (D,)
            if cfg["ffn"] == "swiglu":
                shapes[p + "ffn.gate.weight"] = (F, D)
            shapes[p + "ffn.up.weight"] = (F, D)
            shapes[p + "ffn.down.weight"] = (D, F)
    shapes["norm_f.weight"] = (D,)
    if ln:
        shapes["norm_f.bias"] = (D,)
    if not cfg["tie_embeddings"]:
        shapes["head.weight"] = (V, D)
    return shapes


def check_params(params, cfg):
    """Raises ValueError unless params has exactly the tensors of SPEC section 3."""
    want = param_shapes(cfg)
    missing = sorted(set(want) - set(params))
    extra = sorted(set(params) - set(want))
    if missing or extra:
        raise ValueError("parameter set differs from SPEC section 3: missing %s, unexpected %s"
                         % (missing, extra))
    for name, shape in want.items():
        if tuple(params[name].shape) != tuple(shape):
            raise ValueError("parameter %s has shape %s, SPEC wants %s"
                             % (name, tuple(params[name].shape), tuple(shape)))


def random_params(cfg, seed=0, scale=0.3, dtype=torch.float64):
    """Synthetic parameters for testing the reference itself (not the C++
    init): normal(0, scale/sqrt(fan_in)) for matrices, norm weights around 1,
    small random biases, so that every part of the model visibly matters."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm_f.weight":
            t = 1.0 + 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif len(shape) == 1:
            t = 0.2 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name.endswith("init_memory") or name.endswith("pool.query") or "emb" in name:
            t = torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = scale * 3.0 * torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[1])
        out[name] = t.to(dtype)
    return out


# ---------------------------------------------------------------------------
# safetensors (SPEC section 7), numpy/struct only
# ---------------------------------------------------------------------------

_DTYPE_SIZES = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}


def read_safetensors_header(path):
    """Returns (header dict without __metadata__, metadata dict, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: file shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("%s: header length %d exceeds file size %d" % (path, n, len(blob)))
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("%s: header is not valid JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise ValueError("%s: header is not a JSON object" % path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("%s: __metadata__ must map strings to strings" % path)
    data = blob[8 + n:]
    return header, metadata, data


def _decode(name, dtype, shape, raw):
    if dtype == "F32":
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif dtype == "F64":
        arr = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    elif dtype == "F16":
        arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        arr = (u16 << np.uint32(16)).view(np.float32)
    else:
        raise ValueError("tensor %s: unsupported dtype %r" % (name, dtype))
    return torch.from_numpy(arr.reshape(shape).copy())


def load_safetensors(path, return_dtypes=False):
    """Reads a safetensors file.

    Returns (tensors, metadata): tensors maps name -> torch tensor (float32;
    BF16 and F16 are widened exactly), metadata is the __metadata__ dict.
    With return_dtypes=True also returns name -> stored dtype string.
    """
    header, metadata, data = read_safetensors_header(path)
    tensors, dtypes = {}, {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise ValueError("%s: entry %s is not an object" % (path, name))
        dtype = info.get("dtype")
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if dtype not in _DTYPE_SIZES:
            raise ValueError("%s: tensor %s has unsupported dtype %r" % (path, name, dtype))
        if (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)):
            raise ValueError("%s: tensor %s has a bad shape %r" % (path, name, shape))
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise ValueError("%s: tensor %s has bad data_offsets %r" % (path, name, offs))
        begin, end = offs
        if not (0 <= begin <= end <= len(data)):
            raise ValueError("%s: tensor %s offsets [%d, %d) outside the data section of %d bytes"
                             % (path, name, begin, end, len(data)))
        nbytes = int(np.prod(shape, dtype=np.int64)) * _DTYPE_SIZES[dtype]
        if end - begin != nbytes:
            raise ValueError("%s: tensor %s holds %d bytes, dtype %s shape %s needs %d"
                             % (path, name, end - begin, dtype, shape, nbytes))
        tensors[name] = _decode(name, dtype, shape, data[begin:end])
        dtypes[name] = dtype
    if return_dtypes:
        return tensors, metadata, dtypes
    return tensors, metadata


def save_safetensors(path, tensors, metadata=None, dtype="F32"):
    """Small writer (used by the self-tests): every tensor stored as dtype
    F32, F16 or BF16 (BF16 with round-to-nearest-even), 8-byte aligned."""
    header = {}
    chunks = []
    off = 0
    for name in sorted(tensors):
        a = tensors[name].detach().to(torch.float32).contiguous().numpy()
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            raw = u.astype("<u2").tobytes()
        else:
            raise ValueError("unsupported dtype %r" % dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        pad = (-len(raw)) % 8
        chunks.append(raw + b"\0" * pad)
        off += len(raw) + pad
    if metadata:
        header["__metadata__"] = dict(metadata)
    hj = json.dumps(header).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)


# ---------------------------------------------------------------------------
# Building blocks (SPEC section 4)
# ---------------------------------------------------------------------------

def linear(x, weight, bias=None):
    """nn.Linear convention: y = x W^T + b."""
    y = x @ weight.t()
    if bias is not None:
        y = y + bias
    return y


def norm(cfg, params, prefix, x):
    """layernorm: (x - mean) / sqrt(var_biased + eps) * w + b;
    rmsnorm:   x / sqrt(mean(x^2) + eps) * w.  Over the last dim."""
    eps = cfg["norm_eps"]
    w = params[prefix + ".weight"]
    if cfg["norm"] == "layernorm":
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + eps) * w + params[prefix + ".bias"]
    ms = (x * x).mean(dim=-1, keepdim=True)
    return x / torch.sqrt(ms + eps) * w


def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def silu(x):
    return x * sigmoid(x)


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def softmax(x, dim):
    """Explicit, numerically stable softmax; -inf entries get weight 0."""
    xmax = x.max(dim=dim, keepdim=True).values.detach()
    e = torch.exp(x - xmax)
    return e / e.sum(dim=dim, keepdim=True)


def sincos_pe(positions, d_model, dtype):
    """PE(p, 2i) = sin(p / 10000^(2i/D)), PE(p, 2i+1) = cos(p / 10000^(2i/D))."""
    p = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 1)
    i = torch.arange(d_model // 2, dtype=torch.float64).reshape(1, -1)
    ang = p / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2.0 * i / d_model)
    pe = torch.zeros(p.shape[0], d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang[:, : d_model - d_model // 2])
    return pe.to(dtype)


def rope(x, positions, theta):
    """Rotate-half RoPE on x [..., T, hd]; pair (i, i + hd/2) is rotated by the
    angle positions[t] * theta^(-2i/hd)."""
    hd = x.shape[-1]
    half = hd // 2
    t = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 1)
    i = torch.arange(half, dtype=torch.float64).reshape(1, -1)
    ang = t * torch.pow(torch.tensor(theta, dtype=torch.float64), -2.0 * i / hd)  # [T, half]
    cos = torch.cos(ang).to(x.dtype)
    sin = torch.sin(ang).to(x.dtype)
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention_mask(M, T):
    """allowed[i, j] for the (M+T) x (M+T) score matrix, rows = queries.
    Memory rows (i < M) see every column; token row t = i - M sees the M
    memory columns and token columns 0..t."""
    allowed = torch.zeros(M + T, M + T, dtype=torch.bool)
    allowed[:M, :] = True
    allowed[M:, :M] = True
    for t in range(T):
        allowed[M + t, M:M + t + 1] = True
    return allowed


def dropout_(x, p, generator=None):
    """Inverted dropout (training only, SPEC section 4): each element is kept
    with probability 1 - p and scaled by 1 / (1 - p).  p == 0 returns x."""
    if not p:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError("dropout must be in [0, 1), got %r" % (p,))
    keep = torch.rand(x.shape, generator=generator, dtype=torch.float64) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


_M64 = (1 << 64) - 1


def _mix64(z):
    """splitmix64's finaliser on numpy uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


class HashDropout:
    """The dropout masks of the C++ library, so that its training with dropout
    can be compared: element i of a site with key `key` is kept iff
    (splitmix64(key + (i + 1) * 0x9e3779b97f4a7c15) >> 40) * 2^-24 >= p, and
    then scaled by 1 / (1 - p).  Sites: per sequence (the trainer's seed for
    optimiser step 0, micro-batch 0, sequence b), segment k, layer l and
    place: 0 attention probabilities of token rows ([H, T, M+T], row-major
    element index), 1 of memory rows ([H, M, M+T]), 2 Wo outputs of token
    rows ([T, D]), 3 of memory rows ([M, D]), 4 ffn.down outputs ([T, D])."""

    GOLDEN = 0x9e3779b97f4a7c15

    def __init__(self, p, seed, sequence=None, segment=None, layer=None):
        self.p, self.seed = float(np.float32(p)), seed
        self.sequence, self.segment, self.layer = sequence, segment, layer

    def bind(self, **kw):
        d = dict(sequence=self.sequence, segment=self.segment, layer=self.layer)
        d.update(kw)
        return HashDropout(self.p, self.seed, **d)

    def factors(self, site, shape):
        """Factors (0 or 1/(1-p)) of a site, as a float64 tensor of `shape`."""
        seq_seed = int(_mix64(np.uint64(self.seed) ^ _mix64(np.uint64(self.sequence))))
        where = ((self.segment << 24) ^ (self.layer << 8) ^ site) & _M64
        key = int(_mix64(np.uint64(seq_seed) ^ _mix64(np.uint64((where + 0x632be59bd9b4e019) & _M64))))
        n = int(np.prod(shape))
        i = np.arange(1, n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = _mix64(np.uint64(key) + i * np.uint64(self.GOLDEN))
        u = (z >> np.uint64(40)).astype(np.float64) * 2.0 ** -24
        scale = float(np.float32(1.0) / (np.float32(1.0) - np.float32(self.p)))
        f = np.where(u >= self.p, scale, 0.0)
        return torch.from_numpy(f.reshape(shape))


def attention(cfg, params, prefix, C, M, T, dropout=0.0, generator=None):
    """Steps 2-4 of SPEC section 4: returns O = concat_heads(A) Wo^T + bo,
    shape [M+T, D].  dropout > 0 (training) drops attention probabilities
    and outputs of Wo."""
    D, H, Hkv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = D // H
    R = M + T
    Q = linear(C, params[prefix + "attn.q.weight"], params[prefix + "attn.q.bias"])
    K = linear(C, params[prefix + "attn.k.weight"], params[prefix + "attn.k.bias"])
    Vv = linear(C, params[prefix + "attn.v.weight"], params[prefix + "attn.v.bias"])
    Q = Q.reshape(R, H, hd).transpose(0, 1)      # [H, R, hd]
    K = K.reshape(R, Hkv, hd).transpose(0, 1)    # [Hkv, R, hd]
    Vv = Vv.reshape(R, Hkv, hd).transpose(0, 1)  # [Hkv, R, hd]
    if cfg["pos"] == "rope":
        t = list(range(T))
        Q = torch.cat([Q[:, :M], rope(Q[:, M:], t, cfg["rope_theta"])], dim=1)
        K = torch.cat([K[:, :M], rope(K[:, M:], t, cfg["rope_theta"])], dim=1)
    # grouped-query attention: query head h reads kv head h // (H / Hkv)
    group = H // Hkv
    kv_of_head = torch.tensor([h // group for h in range(H)], dtype=torch.long)
    Kh = K[kv_of_head]    # [H, R, hd]
    Vh = Vv[kv_of_head]   # [H, R, hd]
    scores = (Q @ Kh.transpose(1, 2)) / math.sqrt(hd)    # [H, R, R]
    allowed = attention_mask(M, T)
    scores = scores.masked_fill(~allowed, float("-inf"))
    if isinstance(generator, HashDropout) and dropout:
        probs = softmax(scores, dim=-1)
        f = torch.cat([generator.factors(1, (H, M, R)), generator.factors(0, (H, T, R))], dim=1)
        A = (probs * f.to(probs.dtype)) @ Vh
        A = A.transpose(0, 1).reshape(R, D)
        O = linear(A, params[prefix + "attn.o.weight"], params[prefix + "attn.o.bias"])
        f = torch.cat([generator.factors(3, (M, D)), generator.factors(2, (T, D))], dim=0)
        return O * f.to(O.dtype)
    probs = dropout_(softmax(scores, dim=-1), dropout, generator)
    A = probs @ Vh                                       # [H, R, hd]
    A = A.transpose(0, 1).reshape(R, D)                  # concat heads
    return dropout_(linear(A, params[prefix + "attn.o.weight"], params[prefix + "attn.o.bias"]),
                    dropout, generator)


def ffn(cfg, params, prefix, u):
    if cfg["ffn"] == "swiglu":
        g = linear(u, params[prefix + "ffn.gate.weight"])
        up = linear(u, params[prefix + "ffn.up.weight"])
        return linear(silu(g) * up, params[prefix + "ffn.down.weight"])
    if cfg["ffn"] == "gelu":
        up = linear(u, params[prefix + "ffn.up.weight"])
        return linear(gelu_erf(up), params[prefix + "ffn.down.weight"])
    raise ValueError("ffn() called with ffn = none")


def memory_update(cfg, params, prefix, O_m, O_x, c_prev):
    """Step 6 of SPEC section 4: returns (m', c') (c' is None except lstm)."""
    D = cfg["d_model"]
    P = params[prefix + "pool.query"]                          # [M, D]
    w = softmax((P @ O_x.t()) / math.sqrt(D), dim=-1)          # [M, T], over the T tokens
    s = w @ O_x                                                # [M, D]
    return cell_step(cfg, params, prefix, s, O_m, c_prev)


def cell_step(cfg, params, prefix, s, h, c_prev=None):
    """The recurrent cell of SPEC section 4 step 6: input s, hidden h (= O_m),
    LSTM cell state c_prev.  Returns (m', c') (c' is None except lstm)."""
    D = cfg["d_model"]
    cell = cfg["cell"]
    if cell == "gru":
        gi = linear(s, params[prefix + "cell.weight_ih"], params[prefix + "cell.bias_ih"])
        gh = linear(h, params[prefix + "cell.weight_hh"], params[prefix + "cell.bias_hh"])
        i_r, i_z, i_n = gi[:, :D], gi[:, D:2 * D], gi[:, 2 * D:]
        h_r, h_z, h_n = gh[:, :D], gh[:, D:2 * D], gh[:, 2 * D:]
        r = sigmoid(i_r + h_r)
        z = sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h, None
    if cell == "lstm":
        gates = (linear(s, params[prefix + "cell.weight_ih"], params[prefix + "cell.bias_ih"])
                 + linear(h, params[prefix + "cell.weight_hh"], params[prefix + "cell.bias_hh"]))
        gi, gf, gg, go = gates[:, :D], gates[:, D:2 * D], gates[:, 2 * D:3 * D], gates[:, 3 * D:]
        c_new = sigmoid(gf) * c_prev + sigmoid(gi) * torch.tanh(gg)
        return sigmoid(go) * torch.tanh(c_new), c_new
    if cell == "minimal":
        ab = linear(torch.cat([h, s], dim=-1), params[prefix + "cell.weight"],
                    params[prefix + "cell.bias"])
        a, b = ab[:, :D], ab[:, D:]
        sa = sigmoid(a)
        return h * sa + (1.0 - sa) * silu(b), None
    raise ValueError("bad cell %r" % cell)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

def init_state(params, cfg):
    """Memory before the first segment: layers.{l}.init_memory; the LSTM
    cell state starts at zero."""
    mem = [params["layers.%d.init_memory" % l] for l in range(cfg["n_layers"])]
    cells = None
    if cfg["cell"] == "lstm":
        cells = [torch.zeros_like(m) for m in mem]
    return {"memory": mem, "cell": cells}


def segment_forward(params, cfg, tokens, state, p0, dropout=0.0, generator=None):
    """One segment of T tokens (1 <= T <= S) starting at stream position p0.

    Returns (logits [T, V], new_state) where new_state holds the per-layer
    memories (and LSTM cell states) to be used by the NEXT segment.
    dropout > 0 (training only) applies inverted dropout to the attention
    probabilities and to the outputs of Wo and ffn.down (SPEC section 4).
    """
    tokens = [int(t) for t in tokens]
    T = len(tokens)
    S, M, D, L = cfg["segment_len"], cfg["memory_slots"], cfg["d_model"], cfg["n_layers"]
    V = cfg["vocab_size"]
    if not 1 <= T <= S:
        raise ValueError("segment of %d tokens, segment_len is %d" % (T, S))
    for t in tokens:
        if not 0 <= t < V:
            raise ValueError("token %d out of range [0, %d)" % (t, V))
    tok_emb = params["tok_emb.weight"]
    X = tok_emb[torch.tensor(tokens, dtype=torch.long)]
    if cfg["pos"] == "learned":
        X = X + params["pos_emb.weight"][:T]
    elif cfg["pos"] == "sincos":
        X = X + sincos_pe([p0 + t for t in range(T)], D, X.dtype)

    new_mem, new_cell = [], ([] if cfg["cell"] == "lstm" else None)
    for l in range(L):
        pre = "layers.%d." % l
        m = state["memory"][l]
        C = norm(cfg, params, pre + "norm1", torch.cat([m, X], dim=0))
        g_l = generator.bind(layer=l) if isinstance(generator, HashDropout) else generator
        O = attention(cfg, params, pre, C, M, T, dropout, g_l)
        O_m, O_x = O[:M], O[M:]
        X1 = X + O_x
        if cfg["ffn"] != "none" and isinstance(g_l, HashDropout) and dropout:
            Y = ffn(cfg, params, pre, norm(cfg, params, pre + "norm2", X1))
            X2 = X1 + Y * g_l.factors(4, (T, D)).to(Y.dtype)
        elif cfg["ffn"] != "none":
            X2 = X1 + dropout_(ffn(cfg, params, pre, norm(cfg, params, pre + "norm2", X1)),
                               dropout, generator)
        else:
            X2 = X1
        c_prev = state["cell"][l] if cfg["cell"] == "lstm" else None
        m_next, c_next = memory_update(cfg, params, pre, O_m, O_x, c_prev)
        new_mem.append(m_next)
        if new_cell is not None:
            new_cell.append(c_next)
        X = X2

    Xf = norm(cfg, params, "norm_f", X)
    head = tok_emb if cfg["tie_embeddings"] else params["head.weight"]
    logits = Xf @ head.t()
    return logits, {"memory": new_mem, "cell": new_cell}


def segment_bounds(n_tokens, segment_len, flush_after=()):
    """SPEC section 5 (inference): a segment ends when it holds segment_len
    tokens or right after a token whose 0-based index is in flush_after.  A
    flush of an empty segment changes nothing.  The last segment may be
    left open (not flushed).  Returns [(begin, end, flushed)]."""
    flush = set(int(i) for i in flush_after)
    bounds = []
    start = 0
    for i in range(n_tokens):
        if (i + 1 - start) == segment_len or i in flush:
            bounds.append((start, i + 1, True))
            start = i + 1
    if start < n_tokens:
        bounds.append((start, n_tokens, False))
    return bounds


def cast_params(params, dtype):
    """Differentiable cast (a tensor already of dtype is returned as is)."""
    return {k: v.to(dtype) for k, v in params.items()}


def stream_forward(params, cfg, tokens, flush_after=(), dtype=torch.float64,
                   carry_memory=True, return_state=False):
    """Runs a token stream the way an inference session steps it and returns
    the logits after every token, [N, V].  Segment k starts at p0 = number of
    tokens before it; the memory update of a segment is used by the next one.

    With return_state=True also returns the state after the last completed
    (full or flushed) segment; tokens of a trailing open segment are not in it.

    carry_memory=False is a diagnostic: every segment starts from the initial
    state again (to measure how much the logits depend on the memory update).
    """
    cfg = complete_config(cfg)
    if dtype is not None:
        params = cast_params(params, dtype)
    tokens = [int(t) for t in tokens]
    state0 = init_state(params, cfg)
    state = state0
    out = []
    for (b, e, flushed) in segment_bounds(len(tokens), cfg["segment_len"], flush_after):
        logits, new_state = segment_forward(params, cfg, tokens[b:e], state, b)
        out.append(logits)
        if flushed:
            state = new_state if carry_memory else state0
    V = cfg["vocab_size"]
    all_logits = torch.cat(out, dim=0) if out else torch.zeros(0, V, dtype=dtype)
    if return_state:
        return all_logits, state
    return all_logits


# ---------------------------------------------------------------------------
# Training (SPEC section 6)
# ---------------------------------------------------------------------------

def resolve_segment_lens(segment_lens, n_tokens, segment_len):
    """The K segment lengths of a training sample of n_tokens tokens.

    None: consecutive segments of segment_len tokens, the last one shorter
    (ceil(n_tokens / segment_len) segments).  Otherwise every length must be
    in [1, segment_len] and they must sum to n_tokens."""
    n_tokens, segment_len = int(n_tokens), int(segment_len)
    if n_tokens < 1:
        raise ValueError("a training sample needs at least one token")
    if segment_lens is None:
        lens = [segment_len] * (n_tokens // segment_len)
        if n_tokens % segment_len:
            lens.append(n_tokens % segment_len)
        return lens
    lens = [int(k) for k in segment_lens]
    if not lens or any(not 1 <= k <= segment_len for k in lens):
        raise ValueError("segment lengths %s: each must be in [1, %d]" % (lens, segment_len))
    if sum(lens) != n_tokens:
        raise ValueError("segment lengths %s sum to %d, the sample has %d tokens"
                         % (lens, sum(lens), n_tokens))
    return lens


def _as_2d_int(a, what):
    t = torch.as_tensor(np.asarray(a, dtype=np.int64))
    if t.dim() != 2:
        raise ValueError("%s must have shape [B, N], got %s" % (what, tuple(t.shape)))
    return t


def batch_logits(params, cfg, tokens, segment_lens=None, dtype=torch.float64,
                 dropout=0.0, generator=None, carry_memory=True):
    """Logits [B, N, V] of a training batch (tokens [B, N], ints).

    Every sequence b starts from init_state (layers.*.init_memory, LSTM cell
    zero) at stream position 0 and runs its K segments in order (segment k
    starts at p0 = sum of the previous lengths; learned/RoPE positions are
    positions inside the segment, sincos uses p0 + t).  The memory written
    by segment k is the memory of segment k + 1; gradients flow back through
    it (BPTT over the K segments).  carry_memory=False is a diagnostic: every
    segment starts from init_state again."""
    cfg = complete_config(cfg)
    if dtype is not None:
        params = cast_params(params, dtype)
    tok = _as_2d_int(tokens, "tokens")
    B, N = tok.shape
    lens = resolve_segment_lens(segment_lens, N, cfg["segment_len"])
    rows = []
    for b in range(B):
        state0 = init_state(params, cfg)
        state = state0
        out = []
        p0 = 0
        for i, k in enumerate(lens):
            g = generator.bind(sequence=b, segment=i) if isinstance(generator, HashDropout) else generator
            logits, new_state = segment_forward(params, cfg, tok[b, p0:p0 + k].tolist(), state, p0,
                                                dropout=dropout, generator=g)
            out.append(logits)
            state = new_state if carry_memory else state0
            p0 += k
        rows.append(torch.cat(out, dim=0))
    return torch.stack(rows, dim=0)


def masked_cross_entropy(logits, targets):
    """Mean over the (b, t) with targets[b, t] != -1 of
    -log softmax(logits[b, t])[targets[b, t]]: one mean over all valid tokens
    of the batch (token-weighted; not a mean of per-sequence means).
    Returns (loss, number of valid targets); loss is 0 (gradient 0) when no
    target is valid."""
    tgt = _as_2d_int(targets, "targets")
    V = logits.shape[-1]
    if tuple(tgt.shape) != tuple(logits.shape[:2]):
        raise ValueError("targets shape %s, tokens shape %s" % (tuple(tgt.shape), tuple(logits.shape[:2])))
    if bool(((tgt < -1) | (tgt >= V)).any()):
        raise ValueError("targets must be -1 (masked) or in [0, %d)" % V)
    valid = tgt != -1
    count = int(valid.sum())
    if count == 0:
        return logits.sum() * 0.0, 0
    x = logits[valid]                                         # [count, V]
    xmax = x.max(dim=-1, keepdim=True).values.detach()
    lse = torch.log(torch.exp(x - xmax).sum(dim=-1)) + xmax.squeeze(-1)
    picked = x.gather(1, tgt[valid].reshape(-1, 1)).squeeze(1)
    return (lse - picked).sum() / count, count


def batch_loss(params, cfg, tokens, targets, segment_lens=None, dropout=0.0,
               dtype=torch.float64, generator=None):
    """Training loss of SPEC section 6 for a batch, a scalar tensor.

    tokens, targets: ints of shape [B, N]; targets[b, t] is the token that
    logits[b, t] must predict, or -1 (loss mask 0, e.g. a prompt token).
    segment_lens: K ints summing to N (None: segments of segment_len, the
    last one shorter).  Loss = sum over valid (b, t) of the cross-entropy,
    divided by the number of valid (b, t) in the whole batch; 0 if there is
    none.  Memory flows through the K segments of each sequence (see
    batch_logits) and gradients flow back through it.  dropout > 0 draws
    masks from generator (or torch's global RNG); 0 is deterministic.
    Differentiable with respect to params; computed in dtype (float64)."""
    logits = batch_logits(params, cfg, tokens, segment_lens, dtype=dtype, dropout=dropout,
                          generator=generator)
    loss, _ = masked_cross_entropy(logits, targets)
    return loss


TRAIN_PARAM_KEYS = ("learning_rate", "min_learning_rate", "warmup_steps", "total_steps",
                    "weight_decay", "beta1", "beta2", "epsilon", "grad_clip")

# Parameters that get weight decay (suffix after "layers.{l}."); plus head.weight.
_DECAYED_LAYER_TENSORS = ("attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
                          "cell.weight_ih", "cell.weight_hh", "cell.weight",
                          "ffn.gate.weight", "ffn.up.weight", "ffn.down.weight")


def weight_decay_applies(name):
    """True for the matrices of attn.q/k/v/o, the cell (weight_ih, weight_hh,
    minimal's cell.weight), ffn.gate/up/down and head.weight.  False for
    norms, every bias (cell biases included), tok_emb (also when the head is
    tied to it), pos_emb, init_memory and pool.query (SPEC section 6)."""
    if name == "head.weight":
        return True
    parts = name.split(".", 2)
    return len(parts) == 3 and parts[0] == "layers" and parts[2] in _DECAYED_LAYER_TENSORS


def learning_rate_at(tp, step):
    """Learning rate of optimiser step `step` (1, 2, ...):
    - warmup_steps > 0 and step <= warmup_steps: learning_rate * step / warmup_steps;
    - otherwise, total_steps > 0: cosine decay from learning_rate to min_learning_rate,
      progress = min(1, (step - warmup_steps) / max(1, total_steps - warmup_steps)),
      lr = min_lr + 0.5 * (learning_rate - min_lr) * (1 + cos(pi * progress))
      (so lr = min_learning_rate from step total_steps on);
    - otherwise (total_steps == 0): learning_rate."""
    lr, min_lr = float(tp["learning_rate"]), float(tp["min_learning_rate"])
    warm, total = int(tp["warmup_steps"]), int(tp["total_steps"])
    if step < 1:
        raise ValueError("steps count from 1")
    if warm > 0 and step <= warm:
        return lr * step / warm
    if total > 0:
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    return lr


def _batch_parts(batch):
    if isinstance(batch, dict):
        return batch["tokens"], batch["targets"], batch.get("segment_lens")
    if len(batch) == 2:
        return batch[0], batch[1], None
    return batch[0], batch[1], batch[2]


def adamw_reference(params, cfg, batches, tp, dtype=torch.float64, trainable=None,
                    return_history=False, decays=weight_decay_applies):
    """len(batches) optimiser steps of SPEC section 6, one batch per step.

    batches: list of {"tokens", "targets", "segment_lens"} dicts (or tuples
    (tokens, targets[, segment_lens])), see batch_loss.  tp: dict with the
    keys of TRAIN_PARAM_KEYS (an extra "dropout" must be 0).  trainable: names
    of the tensors that are trained (None: all; state tuning passes the
    layers.*.init_memory names); the others are neither updated nor counted
    in the gradient norm.  decays: name -> bool, which tensors get weight
    decay (default weight_decay_applies, the SPEC set; other values are for
    tests of the tests).

    Step s = 1, 2, ...:
      1. loss_s = batch_loss(params, batches[s-1]) (dropout 0), recorded
         BEFORE the update; g = its gradient.
      2. norm_s = sqrt(sum over every trainable tensor of sum(g^2)), before
         clipping; if grad_clip > 0: g *= grad_clip / max(norm_s, grad_clip).
      3. lr_s = learning_rate_at(tp, s).
      4. for every trainable tensor p (moments m, v start at 0):
           if weight_decay_applies(name): p -= lr_s * weight_decay * p
           m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
           p -= lr_s * (m / (1 - beta1^s)) / (sqrt(v / (1 - beta2^s)) + epsilon)
         (PyTorch AdamW semantics; the decay uses the pre-update p.)

    Returns (losses, params) with losses a list of floats and params a dict of
    detached tensors in dtype; with return_history=True returns
    (losses, params, {"grad_norms", "learning_rates", "clip_scales"})."""
    cfg = complete_config(cfg)
    missing = [k for k in TRAIN_PARAM_KEYS if k not in tp]
    if missing:
        raise ValueError("train params lack %s" % missing)
    if float(tp.get("dropout", 0.0)) != 0.0:
        raise ValueError("adamw_reference is deterministic: dropout must be 0")
    b1, b2 = float(tp["beta1"]), float(tp["beta2"])
    eps, wd, clip = float(tp["epsilon"]), float(tp["weight_decay"]), float(tp["grad_clip"])
    cur = {k: v.detach().to(dtype).clone() for k, v in params.items()}
    names = sorted(cur) if trainable is None else sorted(trainable)
    unknown = [n for n in names if n not in cur]
    if unknown:
        raise ValueError("trainable names not in params: %s" % unknown)
    m = {n: torch.zeros_like(cur[n]) for n in names}
    v = {n: torch.zeros_like(cur[n]) for n in names}
    losses, norms, lrs, scales = [], [], [], []
    for s, batch in enumerate(batches, start=1):
        tokens, targets, lens = _batch_parts(batch)
        leaves = dict(cur)
        for n in names:
            leaves[n] = cur[n].clone().requires_grad_(True)
        loss = batch_loss(leaves, cfg, tokens, targets, lens, dtype=None)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
        grads = [torch.zeros_like(cur[n]) if g is None else g.detach()
                 for n, g in zip(names, grads)]
        norm_s = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        scale = clip / max(norm_s, clip) if clip > 0 else 1.0
        lr = learning_rate_at(tp, s)
        bc1 = 1.0 - b1 ** s
        bc2 = 1.0 - b2 ** s
        for n, g in zip(names, grads):
            g = g * scale
            p = cur[n]
            if wd != 0.0 and decays(n):
                p = p - lr * wd * p
            m[n] = b1 * m[n] + (1.0 - b1) * g
            v[n] = b2 * v[n] + (1.0 - b2) * g * g
            cur[n] = p - lr * (m[n] / bc1) / (torch.sqrt(v[n] / bc2) + eps)
        losses.append(float(loss))
        norms.append(norm_s)
        lrs.append(lr)
        scales.append(scale)
    if return_history:
        return losses, cur, {"grad_norms": norms, "learning_rates": lrs, "clip_scales": scales}
    return losses, cur
