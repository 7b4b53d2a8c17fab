"""Where rmkv's device time goes: training steps, one session's decoding steps, or
sessions stepped together, under PyTorch's profiler (CUPTI records every kernel
the process launches, the library's included), summed per kernel.

    RMKV_LIBRARY=build/src/librmkv.so.0 RMKV_CUDA_PLUGIN=build/src/librmkv_cuda.so \
        python3 bench/profile_gpu.py [--mode train|decode|together] [--config base|small] \
        [--batch 4] [--segments 2] [--parallel 0] [--stack 0] [--precision auto] [--recompute 0] \
        [--sessions 64] [--position 100] [--steps 5] [--warmup 3] [--top 30] \
        [--trace FILE.json.gz] [--device cuda]

--mode train (the default): training steps of B sequences of K segments.
--mode decode: one session's single-token steps from --position (a prefill of
that many tokens first), every step's logits fetched.
--mode together: --sessions sessions stepped together (rmkv_sessions_step) from
--position, every session's logits fetched.

Prints, for the profiled steps: the wall time per step; the time at least one
kernel or copy ran (the union over every stream) as a share of it, so what is
left is the device waiting for the host (launch-bound); the number of kernels
per step; then the kernels, largest total first, with count per step, total and
mean time, and share of the device time; then the same summed by family (our
kernels by name, cuBLAS's and PyTorch's under their libraries). --trace writes
the Chrome trace too (open in chrome://tracing or Perfetto).

--device cpu runs the same steps on the CPU backend; no device kernels are
recorded then, and the script says so (a check of the script itself).
"""
import argparse
import gzip
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import rmkv  # noqa: E402

CONFIGS = {  # the configs of rmkv-bench-train (bench/bench_train.cpp)
    "small": {"vocab_size": 16384, "d_model": 512, "n_layers": 8, "n_heads": 8, "memory_slots": 32,
              "segment_len": 256},
    "base": {"vocab_size": 32000, "d_model": 768, "n_layers": 12, "n_heads": 12, "memory_slots": 32,
             "segment_len": 256},
}


def family(name):
    """The group a kernel's time is summed under."""
    n = name.lower()
    if n.startswith("memcpy") or n.startswith("memset"):
        return name.split(" ")[0]
    for part in name.replace("(", " ").replace("<", " ").split():
        base = part.split("::")[-1]
        if base.startswith("k_"):  # the library's kernels
            return base
    if any(w in n for w in ("gemm", "gemv", "nvjet", "cublas", "xmma", "cutlass")):
        return "cuBLAS products"
    return name[:60]


def busy_union(intervals):
    """Length of the union of [start, end) intervals."""
    total, end = 0.0, None
    for s, e in sorted(intervals):
        if end is None or s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", default="train", choices=["train", "decode", "together"])
    ap.add_argument("--config", default="base", choices=sorted(CONFIGS))
    ap.add_argument("--sessions", type=int, default=64, help="--mode together: sessions stepped together")
    ap.add_argument("--position", type=int, default=100, help="decode, together: tokens each session has seen first")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=0, help="rmkv_train_params.parallel_sequences (0: the device's)")
    ap.add_argument("--stack", type=int, default=0, help="rmkv_train_params.stacked_sequences (0: the device's)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--recompute", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--trace", help="also write the Chrome trace here (.json or .json.gz)")
    args = ap.parse_args()

    config = CONFIGS[args.config]
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        if not torch.cuda.is_available():
            sys.exit("profile_gpu: PyTorch sees no GPU (its profiler is what records the kernels)")
        torch.zeros(1, device="cuda")  # the process's CUDA context and PyTorch's profiler hooks first

    model = rmkv.Model.create(config, seed=1, device=args.device)
    rng = np.random.default_rng(1)
    V = config["vocab_size"]
    if args.mode == "train":
        trainer = model.trainer(learning_rate=1e-4, warmup_steps=0, total_steps=args.warmup + args.steps + 1,
                                precision=args.precision, recompute=args.recompute,
                                parallel_sequences=args.parallel, stacked_sequences=args.stack)
        n = config["segment_len"] * args.segments

        def batch():
            t = rng.integers(0, V, size=(args.batch, n + 1), dtype=np.int32)
            return t[:, :-1].copy(), t[:, 1:].copy()

        batches = [batch() for _ in range(args.warmup + args.steps)]
        last = {}

        def step(i):  # returns after the device finished it (the loss is read back)
            last.update(trainer.step(*batches[i]))

        tokens_step = args.batch * n
        what = (f"training: B={args.batch}, K={args.segments} x {config['segment_len']}, precision {args.precision}, "
                f"parallel {args.parallel}, stack {args.stack}, recompute {args.recompute}")
    else:
        count = 1 if args.mode == "decode" else args.sessions
        sessions = [model.session(precision=args.precision) for _ in range(count)]
        for s_ in sessions:
            if args.position > 0:
                s_.step(rng.integers(0, V, size=args.position, dtype=np.int32), logits=False)
        toks = rng.integers(0, V, size=(args.warmup + args.steps, count), dtype=np.int32)
        last = {}

        def step(i):  # the logits are fetched: the step has finished on the device
            if args.mode == "decode":
                sessions[0].step(int(toks[i, 0]))
            else:
                rmkv.step_together(sessions, toks[i])

        tokens_step = count
        what = (f"{'one session decoding' if count == 1 else f'{count} sessions stepped together'} from position "
                f"{args.position}, precision {args.precision}")

    for i in range(args.warmup):
        step(i)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for i in range(args.warmup, args.warmup + args.steps):
            step(i)
        wall = (time.perf_counter() - t0) / args.steps
    print(f"rmkv {rmkv.version()} under the profiler, {args.config}: {what}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if on_gpu else ""))
    print(f"{args.steps} steps: {wall * 1e3:.3f} ms a step ({tokens_step / wall:.0f} tokens/s with the profiler on)"
          + (f", last loss {last['loss']:.4f}" if "loss" in last else ""))

    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if not events:
        print("no device kernels recorded" + ("" if on_gpu else " (device cpu: nothing to record)"))
        return
    per_kernel, intervals = {}, []
    for e in events:
        start, end = e.time_range.start, e.time_range.end  # microseconds
        intervals.append((start, end))
        k = per_kernel.setdefault(e.name, [0, 0.0])
        k[0] += 1
        k[1] += end - start
    busy = busy_union(intervals) / args.steps / 1e3  # ms a step
    device_total = sum(v[1] for v in per_kernel.values()) / args.steps / 1e3
    count = sum(v[0] for v in per_kernel.values()) / args.steps
    print(f"device busy {busy:.2f} ms a step ({100 * busy / (wall * 1e3):.1f}% of the wall time; the rest the "
          f"device waits for the host), kernel time summed over streams {device_total:.2f} ms, "
          f"{count:.0f} kernels and copies a step")

    def table(rows, title):
        print(f"\n{title}")
        print(f"{'count/step':>10} {'ms/step':>9} {'mean us':>9} {'share':>6}  name")
        for name, (c, t) in rows:
            print(f"{c / args.steps:10.1f} {t / args.steps / 1e3:9.3f} {t / c:9.1f} "
                  f"{100 * t / args.steps / 1e3 / device_total:5.1f}%  {name[:110]}")

    ranked = sorted(per_kernel.items(), key=lambda kv: -kv[1][1])
    table(ranked[:args.top], f"kernels, largest total first (top {min(args.top, len(ranked))} of {len(ranked)})")
    families = {}
    for name, (c, t) in per_kernel.items():
        f = families.setdefault(family(name), [0, 0.0])
        f[0] += c
        f[1] += t
    table(sorted(families.items(), key=lambda kv: -kv[1][1]), "by family")

    if args.trace:
        plain = args.trace[:-3] if args.trace.endswith(".gz") else args.trace
        prof.export_chrome_trace(plain)
        if plain != args.trace:
            with open(plain, "rb") as src, gzip.open(args.trace, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.remove(plain)
        print(f"\ntrace: {args.trace}")


if __name__ == "__main__":
    main()
