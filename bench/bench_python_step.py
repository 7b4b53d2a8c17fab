"""Per-call overhead of the Python binding's Session.step against the C call.

    RMKV_LIBRARY=build/src/librmkv.so.0 python3 bench/bench_python_step.py \
        --c-bench build/bench/rmkv-bench-binding-step [--n 20000] [--repeats 7]

Makes a small model (the step itself should be short so that the overhead shows),
times N single-token steps with logits, REPEATS times each, best and median, for:
the C program (rmkv_session_step in a C loop), Session.step(int) (the binding,
returning the numpy view over the session's buffer), Session.step([int]) (a list),
and the bare ctypes call with prepared arguments (the floor of any ctypes binding).
Also checks that the logits returned are the buffer the C call wrote: no copy.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one thread in both processes: steadier figures
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import rmkv  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--c-bench", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--config", default='{"vocab_size": 64, "d_model": 16, "n_layers": 1, "n_heads": 2, '
                                        '"memory_slots": 2, "segment_len": 64}')
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "bench.safetensors")
    with rmkv.Model.create(json.loads(args.config), seed=1) as m:
        m.save(path)

    model = rmkv.Model.load(path)
    V = model.vocab_size

    def py_int(n):
        with model.session() as s:
            step = s.step
            t0 = time.perf_counter()
            for i in range(n):
                step(i % V)
            return (time.perf_counter() - t0) / n * 1e6

    def py_list(n):
        with model.session() as s:
            step = s.step
            t0 = time.perf_counter()
            for i in range(n):
                step([i % V])
            return (time.perf_counter() - t0) / n * 1e6

    lib = rmkv._lib

    def raw_ctypes(n):
        with model.session() as s:
            fn = lib["rmkv_session_step"]
            fn.restype = ctypes.c_int
            h, tok = ctypes.c_void_p(s.handle), s._tok1
            tok_p, one, buf = ctypes.c_void_p(s._tok1_addr), ctypes.c_size_t(1), ctypes.c_void_p(s._buf_addr)
            t0 = time.perf_counter()
            for i in range(n):
                tok[0] = i % V
                fn(h, tok_p, one, buf)
            return (time.perf_counter() - t0) / n * 1e6

    variants = (("Session.step(int)", py_int), ("Session.step([int])", py_list), ("bare ctypes call", raw_ctypes))
    times = {name: [] for name, _ in variants}
    c_times = []
    for _ in range(args.repeats):            # interleaved, so that a noisy moment hits every variant
        c = json.loads(subprocess.run([args.c_bench, path, str(args.n), "1"], check=True,
                                      capture_output=True, text=True).stdout)
        c_times.append(c["c_us_per_step_best"])
        for name, fn in variants:
            times[name].append(fn(args.n))
    rows = [(name, min(t), statistics.median(t)) for name, t in times.items()]

    with model.session() as s:
        lg = s.step(1)
        zero_copy = lg.ctypes.data == ctypes.addressof(s._buf) and lg.base is not None
        lg2 = s.step(2)
        zero_copy = zero_copy and lg2 is lg
    cb, cm = min(c_times), statistics.median(c_times)
    print(f"model {args.config}; {args.n} steps x {args.repeats} repeats; OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}; library {rmkv.library_path()}")
    print(f"{'call':<24}{'us/call best':>14}{'median':>10}{'overhead vs C (best)':>24}")
    print(f"{'C rmkv_session_step':<24}{cb:>14.3f}{cm:>10.3f}{'':>24}")
    for name, best, med in rows:
        print(f"{name:<24}{best:>14.3f}{med:>10.3f}{best - cb:>24.3f}")
    print(f"logits returned without a copy (numpy view of the buffer the C call fills): {zero_copy}")
    model.close()
    os.remove(path)
    os.rmdir(tmp)
    return 0 if zero_copy else 1


if __name__ == "__main__":
    sys.exit(main())
