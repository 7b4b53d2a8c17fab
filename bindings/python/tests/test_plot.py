import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def test_plot_writes_a_png(tmp_path):
    m = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "loss": 5.0 / s, "grad_norm": 1.0, "lr": 1e-3 * min(1, s / 5), "tokens_per_s": 1000,
              "epoch": s / 50, "elapsed": s} for s in range(1, 40)]
    lines += [{"step": s, "val_loss": 4.0 / s ** 0.5, "val_ppl": 2.0, "val_unigram_entropy": 3.5,
               "val_loss_later": 3.0, "val_loss_later_memory_reset": 3.2, "memory_effect": 0.2}
              for s in (10, 20, 30)]
    m.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "curves.png"
    r = subprocess.run([sys.executable, "-m", "rmkv.plot", str(m), "-o", str(out)], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "39 training and 3 validation" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000


def test_plot_reports_a_bad_file(tmp_path):
    m = tmp_path / "metrics.jsonl"
    m.write_text('{"step": 1, "loss": 2}\nnot json\n')
    r = subprocess.run([sys.executable, "-m", "rmkv.plot", str(m), "-o", str(tmp_path / "x.png")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 1 and "metrics.jsonl:2" in r.stderr
    r = subprocess.run([sys.executable, "-m", "rmkv.plot", str(tmp_path / "none.jsonl")], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 1 and "none.jsonl" in r.stderr
