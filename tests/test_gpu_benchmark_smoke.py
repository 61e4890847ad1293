"""benchmarks/gpu.py runs (on a CPU here: a smoke run) and prints its report; its timings are
never asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_quick_run_exits_0_and_reports_capture_cpu(tmp_path: Path) -> None:
    run_in = tmp_path / "cwd"
    run_in.mkdir()
    figures = tmp_path / "out" / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--tools", "dlprov", "--device", "cpu",
         "--train-size", "64", "--batch-size", "32", "--val-size", "32", "--epochs", "1",
         "--json", str(figures)], cwd=run_in, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. One metric record", "2. GPU training, logging per epoch",
                    "3. GPU training, logging per batch", "no tracking",
                    "dlprov capture CPU: 3 calls"):  # 1 epoch x (2 batches + 1) per batch
        assert heading in out, f"{heading!r} missing from:\n{out}"
    assert list(run_in.iterdir()) == []  # the stores lived in a temporary directory
    names = {f["figure"] for f in json.loads(figures.read_text())["figures"]}
    assert {"GPU training (per epoch), dlprov capture CPU",
            "GPU training (per batch), dlprov wall overhead"} <= names
    # --tools dlprov: no peer measured, whichever are installed
    assert not [n for n in names if "mlflow" in n.lower() or "yprov" in n.lower()]


def test_tools_must_include_dlprov(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--tools", "mlflow sync"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "dlprov is what the others are compared with" in done.stderr
