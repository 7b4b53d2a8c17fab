"""The Python and Node bindings give the same logits (bit for bit) and the same greedy
text as the C API, for the same model and prompt.

    same_output.py --dump same_output_dump --node node --workdir DIR
(RMKV_LIBRARY names the library for the bindings.) A tokenizer and a model are made
through the Python binding; the C program, Python and Node each step the prompt and
draw greedy tokens; the logit rows and the texts must be identical."""
import argparse
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import rmkv  # noqa: E402

TEXT = ("The old lighthouse keeper wrote in his log every night. The sea was calm, the lamp was bright, "
        "and the ships passed safely. caf\u00e9 \u00fcber \u4e16\u754c\n") * 20
PROMPT = "The old lighthouse keeper"
N_GEN = 24


def python_side(model_path, out):
    with rmkv.Model.load(model_path) as m, m.session() as s:
        tok = m.tokenizer
        rows = [s.step(tok.encode(PROMPT)).copy()]
        gen = []
        for _ in range(N_GEN):
            t = s.sample(0.0)
            gen.append(t)
            rows.append(s.step(t).copy())
        np.stack(rows).astype(np.float32).tofile(out)
    with rmkv.Model.load(model_path) as m, m.session() as s:
        streamed = s.generate_text(PROMPT, max_tokens=N_GEN, temperature=0.0)
    return tok_text(model_path, gen), streamed


def tok_text(model_path, ids):
    with rmkv.Model.load(model_path) as m:
        return m.tokenizer.decode(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--node", default="node")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    failures = 0
    for i, config in enumerate([
            {"d_model": 32, "n_layers": 2, "n_heads": 2, "memory_slots": 4, "segment_len": 8},
            {"d_model": 48, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2, "memory_slots": 3, "segment_len": 16,
             "cell": "lstm", "tie_embeddings": True}]):
        model_path = os.path.join(args.workdir, f"model{i}.safetensors")
        with rmkv.Tokenizer.train_from_texts([TEXT], vocab_size=300) as tok, \
                rmkv.Model.create(config, tok, seed=11 + i) as m:
            ids = np.array(tok.encode(TEXT), dtype=np.int32)
            with m.trainer(learning_rate=1e-2, warmup_steps=0, precision="fp32") as t:   # text, not noise
                for step in range(60):
                    starts = [(step * 97 + r * 211) % (len(ids) - 33) for r in range(4)]
                    rows = np.stack([ids[a:a + 33] for a in starts])
                    t.step(rows[:, :-1], rows[:, 1:])
            m.save(model_path)
            V = m.vocab_size
        outs = {}
        texts = {}
        c_out = os.path.join(args.workdir, f"c{i}.f32")
        texts["C"] = subprocess.run([args.dump, model_path, PROMPT, str(N_GEN), c_out], check=True,
                                    capture_output=True).stdout.decode("utf-8")
        outs["C"] = c_out
        py_out = os.path.join(args.workdir, f"py{i}.f32")
        texts["Python"], texts["Python generate"] = python_side(model_path, py_out)
        outs["Python"] = py_out
        js_out = os.path.join(args.workdir, f"js{i}.f32")
        r = subprocess.run([args.node, os.path.join(os.path.dirname(__file__), "same_output.js"),
                            os.path.join(ROOT, "bindings", "node"), model_path, PROMPT, str(N_GEN), js_out],
                           capture_output=True)
        if r.returncode != 0:
            print(f"node failed (did `npm ci` run in bindings/node?):\n{r.stderr.decode()}")
            return 1
        texts["Node"], texts["Node generate"] = r.stdout.decode("utf-8").split("\x00")
        outs["Node"] = js_out
        ref = np.fromfile(outs["C"], dtype=np.float32)
        if ref.size != (N_GEN + 1) * V or not np.isfinite(ref).all():
            print(f"config {i}: C wrote {ref.size} logits, expected {(N_GEN + 1) * V}")
            return 1
        for name in ("Python", "Node"):
            got = np.fromfile(outs[name], dtype=np.float32)
            same = got.shape == ref.shape and np.array_equal(got, ref)
            same_text = texts[name] == texts["C"]
            print(f"config {i}: {name}: logits {'identical' if same else 'DIFFER'} to C "
                  f"({ref.size} values), greedy text {'identical' if same_text else 'DIFFERS'}: {texts[name]!r}")
            failures += (not same) + (not same_text)
        for name in ("Python generate", "Node generate"):
            same_text = texts[name] == texts["C"]
            print(f"config {i}: {name} (streamed rmkv_session_generate, greedy): text "
                  f"{'identical' if same_text else 'DIFFERS'} to C's step/sample loop")
            failures += not same_text
        if len(set(np.argmax(ref.reshape(N_GEN + 1, V), axis=1))) < 2:
            print(f"config {i}: the greedy run is degenerate (one token), the comparison shows little")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
