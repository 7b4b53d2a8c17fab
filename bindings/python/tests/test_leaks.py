"""Many create/free cycles from Python: neither Python objects (tracemalloc) nor the
process (resident memory, which counts the library's own allocations) grow."""
import gc
import os
import tracemalloc

import rmkv
from conftest import CONFIG


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cycle(tokenizer, model_bytes):
    with rmkv.Tokenizer.from_json(tokenizer.to_json()) as t:
        with rmkv.Model.from_bytes(model_bytes) as m:
            t.encode("The cat sat")
            with m.session() as s, s.clone() as c:
                s.step([1, 2, 3])
                c.load_state(s.save_state())
                with t.stream() as ts:
                    ts.feed(1)
            try:
                rmkv.Model.from_bytes(b"garbage!")
            except rmkv.FormatError:
                pass


def test_create_free_cycles_do_not_leak(tokenizer, tmp_path):
    with rmkv.Model.create(CONFIG, tokenizer, seed=1) as m:
        m.save(tmp_path / "m.safetensors")
    model_bytes = (tmp_path / "m.safetensors").read_bytes()
    for _ in range(50):                  # warm-up: allocator pools, thread pools, caches
        cycle(tokenizer, model_bytes)
    gc.collect()
    tracemalloc.start()
    rss0 = rss_kib()
    snap0 = tracemalloc.take_snapshot()
    n = 400
    for _ in range(n):
        cycle(tokenizer, model_bytes)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    rss1 = rss_kib()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    # A leak of one model (tens of KiB), session or tokenizer per cycle would be MiBs here.
    assert grown < 64 * 1024, f"Python allocations grew by {grown} bytes over {n} cycles"
    assert rss1 - rss0 < 4 * 1024, f"resident memory grew by {rss1 - rss0} KiB over {n} cycles"
    assert len(model_bytes) * n > 16 * 4 * 1024 * 1024  # the RSS bound is far below one leaked model a cycle
