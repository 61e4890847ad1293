"""The overhead benchmark runs and prints its report; its timings are never asserted."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


def test_quick_run_exits_0_and_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. One capture call", "2. Training loop", "figure", "measured", "target",
                    "result", "capture call, median", "training, per-epoch overhead",
                    "training, per-batch overhead"):
        assert heading in out, f"{heading!r} missing from:\n{out}"
    for variant in ("no capture", "per-epoch", "per-batch"):
        assert variant in out
    assert "WARNING" not in out, out  # every captured row reached the store
    assert list(tmp_path.iterdir()) == []  # the stores lived in a temporary directory
