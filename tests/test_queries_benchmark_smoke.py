"""The query and export benchmarks run at a tiny size and report every figure, in the table and
in the JSON; their timings are never asserted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
QUERIES = [f"q{i}" for i in range(1, 13)] + ["listing4"]


def run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_queries_benchmark_reports_every_query_at_each_size(tmp_path: Path) -> None:
    out = run("queries.py", "--executions", "10", "20", "--epochs", "3", "--repeats", "2",
              "--json", str(tmp_path / "q.json"), "--plot", str(tmp_path / "q.png"), cwd=tmp_path)
    for name in QUERIES:
        assert f"{name} @ 10 executions: warm median" in out
        assert f"{name} @ 20 executions: warm median" in out
        assert f"{name} growth 20/10" in out
    assert "PASS" in out or "FAIL" in out
    figures = json.loads((tmp_path / "q.json").read_text())
    for row in figures:
        assert {"figure", "value", "unit", "target", "result"} <= set(row)
    named = {row["figure"]: row for row in figures}
    for name in QUERIES:
        for size in (10, 20):
            median = named[f"{name} @ {size} executions: warm median"]
            assert median["unit"] == "ms" and median["value"] > 0
            assert named[f"{name} @ {size} executions: cold first call"]["value"] > 0
            assert named[f"{name} @ {size} executions: p90"]["value"] >= median["spread"][0]
        assert named[f"{name} @ 10 executions: warm median"]["rows"] > 0  # a real answer
    series = named["series"]["series"]["latency_ms"]
    assert set(series) == {"10", "20"} and set(series["10"]) == set(QUERIES)
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"


def test_export_benchmark_reports_each_format_of_both_scopes(tmp_path: Path) -> None:
    out = run("export.py", "--executions", "10", "--epochs", "3", "--repeats", "1",
              "--json", str(tmp_path / "e.json"), cwd=tmp_path)
    named = {row["figure"]: row for row in json.loads((tmp_path / "e.json").read_text())}
    for scope, formats in (("one model", ("provn", "json", "xml", "ttl", "trig", "svg", "png")),
                           ("dataflow of 10 executions", ("provn", "json", "xml", "ttl", "trig"))):
        assert f"{scope}: build document" in out
        assert named[f"{scope}: build document"]["records"] > 0
        for fmt in formats:
            assert f"{scope}: {fmt} time" in out
            assert named[f"{scope}: {fmt} size"]["bytes"] > 0
    whole = named["dataflow of 10 executions: json size"]["bytes"]
    assert whole > named["one model: json size"]["bytes"]  # ten executions outweigh one model
