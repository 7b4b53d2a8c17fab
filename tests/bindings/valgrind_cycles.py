"""Runs cycles.py (Python create/free cycles of models, sessions, clones, streams,
trainers, a failed load) under valgrind memcheck and fails when a block definitely
lost was allocated with librmkv on its stack (the interpreter's and numpy's own
import-time blocks are not the binding's). Also fails on any invalid read/write
that involves librmkv.

    valgrind_cycles.py --valgrind valgrind --python python3"""
import argparse
import os
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--valgrind", default="valgrind")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONMALLOC="malloc", OMP_NUM_THREADS="1")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cycles.py")
    r = subprocess.run([args.valgrind, "--leak-check=full", "--show-leak-kinds=definite", "--num-callers=40",
                        args.python, script], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr[-4000:])
        print(f"cycles.py under valgrind exited with {r.returncode}")
        return 1
    records = re.split(r"\n==\d+== \n", r.stderr)
    lost = [x for x in records if "definitely lost in loss record" in x]
    ours = [x for x in lost if "librmkv" in x]
    invalid = [x for x in records if re.search(r"Invalid (read|write|free)|uninitialised", x) and "librmkv" in x]
    summary = re.search(r"definitely lost: [\d,]+ bytes in [\d,]+ blocks", r.stderr)
    print(f"valgrind: {summary.group(0) if summary else 'no leak summary'}; records definitely lost: "
          f"{len(lost)}, of them with librmkv on the allocation stack: {len(ours)}; "
          f"invalid accesses in librmkv: {len(invalid)}")
    for x in (ours + invalid)[:5]:
        print(x)
    if not summary:
        print(r.stderr[-4000:])
        return 1
    return 1 if ours or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
