"""benchmarks/ui.py runs end to end at a small size (the figures are its report, not checked)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ui_benchmark_quick_run():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ui.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runs page, 100 executions" in done.stdout
    assert "series of 10000 points (≤ 2000 shown/series)" in done.stdout
