"""What bf16 costs in quality: the next-token loss of a trained model over a text,
with its weights as trained (F32), as a BF16 file computed in fp32 (session
precision FP32), and as a BF16 file with bf16 products (precision BF16, CPUs with
AVX512-BF16), the text fed in segments of segment_len tokens (rmkv_session_step_all), one
session through the whole text; with --one-by-one, one token per step (decoding:
products of one row).

    python3 bench/precision_loss.py MODEL.safetensors TEXT [--tokens 20000] [--one-by-one]

TEXT: the last --tokens tokens of the file are scored. Prints the mean loss of each
row, its difference from F32, and the largest difference of a logit from F32's
relative to that row's largest logit. Needs numpy and the Python binding
(bindings/python on PYTHONPATH, librmkv found as the binding says)."""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import rmkv  # noqa: E402


def score(model, precision, ids, seg):
    """Mean loss over ids[1:], and every row's logits (float32, [n - 1, V])."""
    losses, rows = [], []
    with model.session(precision=precision) as s:
        for i in range(0, len(ids) - 1, seg):
            chunk = ids[i:min(i + seg, len(ids) - 1)]
            logits = s.step_all(chunk)
            target = np.asarray(ids[i + 1:i + 1 + len(chunk)])
            m = logits.max(axis=1, keepdims=True)
            lse = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
            losses.append(lse - logits[np.arange(len(chunk)), target])
            rows.append(logits)
    return float(np.concatenate(losses).mean()), np.concatenate(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--one-by-one", action="store_true", help="one token per step (decoding)")
    a = ap.parse_args()
    with rmkv.Model.load(a.model) as m32:
        tok = m32.tokenizer
        if tok is None:
            sys.exit(f"{a.model} has no tokenizer")
        ids = tok.encode(open(a.text, encoding="utf-8", errors="replace").read())[-a.tokens:]
        seg = 1 if a.one_by_one else m32.config["segment_len"]
        print(f"{a.model}: {m32.n_params / 1e6:.1f}M parameters; {len(ids)} tokens of {a.text}, "
              + ("one per step" if a.one_by_one else f"in segments of {seg}"))
        base, ref = score(m32, "fp32", ids, seg)
        print(f"{'weights':8} {'precision':10} {'loss':>8} {'- F32':>9} {'max logit diff':>15}")
        print(f"{'f32':8} {'fp32':10} {base:8.4f} {0:9.4f} {0:15.2e}")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bf16.safetensors")
            m32.save(path, dtype="bf16")
            with rmkv.Model.load(path) as m16:
                for prec in ("fp32", "bf16"):
                    try:
                        loss, rows = score(m16, prec, ids, seg)
                    except rmkv.BackendError as e:
                        print(f"{'bf16':8} {prec:10} not run: {e}")
                        continue
                    diff = np.abs(rows - ref).max(axis=1) / np.abs(ref).max(axis=1)
                    print(f"{'bf16':8} {prec:10} {loss:8.4f} {loss - base:+9.4f} {diff.max():15.2e}")


if __name__ == "__main__":
    main()
