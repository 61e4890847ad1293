"""benchmarks/report.py gathers the scripts' figures, plots and reports into RESULTS.md."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


def test_results_md_has_machine_summary_plots_and_reports(tmp_path: Path) -> None:
    out, plots = tmp_path / "out", tmp_path / "bench" / "plots"
    out.mkdir()
    plots.mkdir(parents=True)
    # overhead.py's shape: an object with figures (measured as text) and series
    (out / "overhead.json").write_text(json.dumps({
        "figures": [{"figure": "capture call, median", "measured": "0.91 us",
                     "target": "<= 5 us", "result": "PASS"},
                    {"figure": "training (mlp), per-epoch capture CPU", "measured": "0.41%",
                     "target": "< 0.3%", "result": "FAIL"}],
        "series": {"mlp per-epoch": [0.1, 0.2]}}))
    (out / "overhead.txt").write_text("dlprov capture overhead\n1. One capture call ...\n")
    # queries.py's shape: a list of figures with value/unit/spread, plus a series object
    (out / "queries.json").write_text(json.dumps([
        {"figure": "q1 at 1,000 executions", "value": 3.25, "unit": "ms", "target": 50.0,
         "result": "PASS", "spread": [3.0, 3.5]},
        {"series": {"q1": [3.25, 30.1]}}]))
    (plots / "queries.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    results = tmp_path / "bench" / "RESULTS.md"

    done = _run(str(out), "-o", str(results), "--gpu", str(tmp_path / "no-gpu-results"))

    assert done.returncode == 0, done.stderr
    text = results.read_text()
    assert "GPU training" not in text
    assert "## Machine" in text and "logical CPUs" in text and "Python 3." in text
    assert "| overhead | capture call, median | 0.91 us | <= 5 us | PASS |" in text
    assert "| overhead | training (mlp), per-epoch capture CPU | 0.41% | < 0.3% | **FAIL** |" \
        in text
    assert "| queries | q1 at 1,000 executions | 3.25 ms (3.00–3.50) | 50 ms | PASS |" in text
    assert "1 figure(s) missed their target." in text
    assert "![queries](plots/queries.png)" in text
    assert "1. One capture call ..." in text  # the full report is quoted
    assert "Not run: `peers.py`, `ingest.py`, `queries.py --store postgresql://…`, " \
        "`export.py`, `export_stream.py`" in text


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    done = _run(str(tmp_path / "nowhere"), "-o", str(tmp_path / "RESULTS.md"))
    assert done.returncode == 2
    assert "is not a folder of benchmark outputs" in done.stderr
    assert not (tmp_path / "RESULTS.md").exists()


def test_kept_gpu_results_get_their_own_section(tmp_path: Path) -> None:
    out, gpu, plots = tmp_path / "out", tmp_path / "gpu", tmp_path / "bench" / "plots"
    for folder in (out, gpu, plots):
        folder.mkdir(parents=True)
    (gpu / "README.md").write_text("# gpu.py on a lent GPU\n\nMeasured on a lent machine.\n")
    (gpu / "gpu.json").write_text(json.dumps({"figures": [
        {"figure": "GPU training (per batch), dlprov capture CPU", "measured": "0.228%",
         "target": "< 2%", "result": "PASS"}]}))
    (gpu / "gpu.txt").write_text("dlprov beside MLflow and yProv4ML on GPU training\n")
    (plots / "gpu.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    results = tmp_path / "bench" / "RESULTS.md"

    done = _run(str(out), "-o", str(results), "--gpu", str(gpu))

    assert done.returncode == 0, done.stderr
    text = results.read_text()
    assert "| gpu | GPU training (per batch), dlprov capture CPU | 0.228% | < 2% | PASS |" in text
    section = text[text.index("## GPU training (`gpu.py`, kept from a lent GPU machine)"):]
    assert "Measured on a lent machine." in section
    assert "### GPU: beside MLflow and yProv4ML" in section
    assert "![gpu](plots/gpu.png)" in section
    assert "dlprov beside MLflow and yProv4ML on GPU training" in section
    assert "except in the GPU section" in text


def test_the_kept_gpu_results_are_quoted_by_default(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    results = tmp_path / "RESULTS.md"
    done = _run(str(out), "-o", str(results))
    assert done.returncode == 0, done.stderr
    text = results.read_text()
    assert "### GPU: dlprov alone, more rounds" in text
    assert "NVIDIA H200" in text
