"""Draws the training curves of a metrics.jsonl (written by `rmkv train`) to a PNG.

    python -m rmkv.plot run/metrics.jsonl [-o curves.png]

Panels: training and validation loss against the step (with the unigram baseline
when present), the learning rate, and the memory effect (validation loss with the
memory reset minus with the memory carried) when evaluations recorded it.
"""
import argparse
import json
import sys


def read_metrics(path):
    train, val = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                m = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
            if "val_loss" in m:
                val.append(m)
            elif "loss" in m:
                train.append(m)
    return train, val


def plot(path, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = read_metrics(path)
    if not train and not val:
        raise ValueError(f"{path}: no training or validation records")
    has_effect = any("memory_effect" in m for m in val)
    n_panels = 3 if has_effect else 2
    fig, axes = plt.subplots(n_panels, 1, figsize=(8, 3 * n_panels), sharex=True)
    ax = axes[0]
    if train:
        ax.plot([m["step"] for m in train], [m["loss"] for m in train], label="train loss", lw=1)
    if val:
        ax.plot([m["step"] for m in val], [m["val_loss"] for m in val], "o-", label="validation loss")
        base = [m for m in val if m.get("val_unigram_entropy")]
        if base:
            ax.axhline(base[-1]["val_unigram_entropy"], ls="--", color="gray", label="unigram baseline")
    ax.set_ylabel("loss (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    lr = [m for m in train if "lr" in m]
    ax.plot([m["step"] for m in lr], [m["lr"] for m in lr], color="tab:green")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    if has_effect:
        ax = axes[2]
        eff = [m for m in val if "memory_effect" in m]
        ax.plot([m["step"] for m in eff], [m["memory_effect"] for m in eff], "o-", color="tab:red")
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_ylabel("memory effect (nats)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("optimiser step")
    fig.suptitle(path)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return len(train), len(val)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m rmkv.plot", description=__doc__.splitlines()[0])
    ap.add_argument("metrics", help="metrics.jsonl of a training run")
    ap.add_argument("-o", "--out", help="PNG to write (default: next to the metrics, curves.png)")
    args = ap.parse_args(argv)
    out = args.out or (args.metrics.rsplit("/", 1)[0] + "/curves.png" if "/" in args.metrics else "curves.png")
    try:
        n_train, n_val = plot(args.metrics, out)
    except (OSError, ValueError) as e:
        print(f"rmkv.plot: {e}", file=sys.stderr)
        return 1
    print(f"{out}: {n_train} training and {n_val} validation records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
