"""The overhead benchmark runs and prints its report; its timings are never asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


def test_quick_run_exits_0_and_prints_its_table(tmp_path: Path) -> None:
    run_in = tmp_path / "cwd"
    run_in.mkdir()
    figures, picture = tmp_path / "out" / "overhead.json", tmp_path / "plots" / "overhead.png"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--models", "mlp,cnn",
                           "--json", str(figures), "--plot", str(picture)], cwd=run_in,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. One capture call", "2. Training loop", "figure", "measured", "target",
                    "result", "capture call, median", "training (mlp), per-epoch overhead",
                    "training (mlp), per-batch overhead", "3. Training loop: CNN",
                    "training (cnn), per-batch overhead"):
        assert heading in out, f"{heading!r} missing from:\n{out}"
    for variant in ("no capture", "per-epoch", "per-batch"):
        assert variant in out
    assert "WARNING" not in out, out  # every captured row reached the store
    assert list(run_in.iterdir()) == []  # the stores lived in a temporary directory
    found = json.loads(figures.read_text())
    names = {f["figure"] for f in found["figures"]}
    assert "training (cnn), per-epoch capture CPU" in names
    assert all(f["result"] for f in found["figures"])
    assert sorted(found["series"]) == ["CNN | per-batch", "CNN | per-epoch", "MLP | per-batch",
                                       "MLP | per-epoch"]
    assert all(len(v) == 2 for v in found["series"].values())  # --quick: 2 rounds
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
