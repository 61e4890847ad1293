"""The ingest benchmark runs and prints its report; its rates are never asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ingest.py"


def test_quick_run_exits_0_and_prints_its_tables(tmp_path: Path) -> None:
    run_in, figures = tmp_path / "cwd", tmp_path / "out" / "ingest.json"
    run_in.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(figures)],
                          cwd=run_in, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. Ingest", "2. Capture call", "median el/s", "target", "result",
                    "µs/call", "ratio to sqlite", "sqlite"):
        assert heading in out, f"{heading!r} missing from:\n{out}"
    assert list(run_in.iterdir()) == []  # the stores lived in a temporary directory
    found = {f["figure"]: f for f in json.loads(figures.read_text())}
    assert found["ingest into sqlite"]["value"] > 0
    assert found["ingest into sqlite"]["result"] in ("PASS", "FAIL")
    assert "capture call with the sqlite store" in found
