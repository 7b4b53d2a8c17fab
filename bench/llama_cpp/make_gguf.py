#!/usr/bin/python3
"""A llama-architecture GGUF model of the same shape as an rmkv config, random
weights, for llama.cpp's side of bench/llama_cpp/bench.mjs.

Same d_model, n_layers, n_heads, n_kv_heads, ffn_hidden (SwiGLU), vocab_size,
rope theta and untied head as the rmkv config; RMSNorm (llama has no
LayerNorm); no memory, no segments: a plain decoder whose every token attends
to every earlier one. Weight matrices in the --dtype asked (f32, f16, bf16, or
q8_0: llama.cpp's 8-bit blocks, what its users often run), norms in f32. The
vocabulary is byte-level BPE tokens with no merges: the benchmark feeds token ids.

  make_gguf.py --config '{"d_model":512,...}' --dtype f16 --out small-f16.gguf
(--config takes the JSON `rmkv info` prints, or @file.)
"""
import argparse
import json
import os
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
ALIGN = 32
# gguf metadata value types
U32, I32, F32, STR, ARR = 4, 5, 6, 8, 9
# ggml tensor types
T_F32, T_F16, T_Q8_0, T_BF16 = 0, 1, 8, 30


def s(text):
    b = text.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = s(key) + struct.pack("<I", vtype)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == I32:
        return out + struct.pack("<i", value)
    if vtype == F32:
        return out + struct.pack("<f", value)
    if vtype == STR:
        return out + s(value)
    etype, items = value
    out += struct.pack("<IQ", etype, len(items))
    if etype == STR:
        return out + b"".join(s(x) for x in items)
    if etype == I32:
        return out + np.asarray(items, dtype="<i4").tobytes()
    raise ValueError(etype)


def byte_tokens():
    """GPT-2's printable stand-ins for the 256 bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def encode(w, dtype):
    """(ggml type, bytes) of a float32 matrix [out, in] in the weight format."""
    if dtype == "f32":
        return T_F32, w.astype("<f4").tobytes()
    if dtype == "f16":
        return T_F16, w.astype("<f2").tobytes()
    if dtype == "bf16":
        u = w.astype("<f4").view("<u4")
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # nearest even
        return T_BF16, u.astype("<u2").tobytes()
    if dtype == "q8_0":
        blocks = w.astype("<f4").reshape(-1, 32)
        d = np.abs(blocks).max(axis=1) / 127.0
        inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
        q = np.round(blocks * inv[:, None]).astype("<i1")
        rec = np.empty(len(blocks), dtype=[("d", "<f2"), ("q", "<i1", 32)])
        rec["d"], rec["q"] = d.astype("<f2"), q
        return T_Q8_0, rec.tobytes()
    raise ValueError(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16", "q8_0"], default="f32")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--context", type=int, default=4096)
    a = ap.parse_args()
    cfg = json.loads(open(a.config[1:]).read() if a.config.startswith("@") else a.config)
    D, L, H = cfg["d_model"], cfg["n_layers"], cfg["n_heads"]
    KV = cfg.get("n_kv_heads", H)
    F, V = cfg["ffn_hidden"], cfg["vocab_size"]
    hd = D // H
    rng = np.random.default_rng(a.seed)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32)

    tensors = [("token_embd.weight", mat(V, D), a.dtype)]
    for i in range(L):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", np.ones(D, np.float32), "f32"),
            (p + "attn_q.weight", mat(D, D), a.dtype),
            (p + "attn_k.weight", mat(KV * hd, D), a.dtype),
            (p + "attn_v.weight", mat(KV * hd, D), a.dtype),
            (p + "attn_output.weight", mat(D, D), a.dtype),
            (p + "ffn_norm.weight", np.ones(D, np.float32), "f32"),
            (p + "ffn_gate.weight", mat(F, D), a.dtype),
            (p + "ffn_up.weight", mat(F, D), a.dtype),
            (p + "ffn_down.weight", mat(D, F), a.dtype),
        ]
    tensors += [("output_norm.weight", np.ones(D, np.float32), "f32"), ("output.weight", mat(V, D), a.dtype)]

    tokens = byte_tokens() + [f"<t{i}>" for i in range(256, V)]
    meta = [
        kv("general.architecture", STR, "llama"),
        kv("general.name", STR, "rmkv-shaped llama"),
        kv("general.alignment", U32, ALIGN),
        kv("llama.context_length", U32, a.context),
        kv("llama.embedding_length", U32, D),
        kv("llama.block_count", U32, L),
        kv("llama.feed_forward_length", U32, F),
        kv("llama.attention.head_count", U32, H),
        kv("llama.attention.head_count_kv", U32, KV),
        kv("llama.rope.dimension_count", U32, hd),
        kv("llama.rope.freq_base", F32, float(cfg.get("rope_theta", 10000.0))),
        kv("llama.attention.layer_norm_rms_epsilon", F32, float(cfg.get("norm_eps", 1e-5))),
        kv("llama.vocab_size", U32, V),
        kv("tokenizer.ggml.model", STR, "gpt2"),
        kv("tokenizer.ggml.pre", STR, "default"),
        kv("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        kv("tokenizer.ggml.token_type", ARR, (I32, [1] * V)),
        kv("tokenizer.ggml.merges", ARR, (STR, [])),
        kv("tokenizer.ggml.bos_token_id", U32, 1),
        kv("tokenizer.ggml.eos_token_id", U32, 2),
    ]

    infos, blobs, offset = [], [], 0
    for name, w, dtype in tensors:
        ttype, data = encode(w, dtype)
        dims = list(reversed(w.shape))  # ggml: innermost first
        infos.append(s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) +
                     struct.pack("<IQ", ttype, offset))
        pad = (-len(data)) % ALIGN
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad

    head = GGUF_MAGIC + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * ((-len(head)) % ALIGN)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, a.out)
    n = sum(w.size for _, w, _ in tensors)
    print(f"{a.out}: llama {D}x{L} H{H} KV{KV} F{F} V{V}, {n / 1e6:.1f}M parameters, {a.dtype}")


if __name__ == "__main__":
    main()
