"""``mlflow server --backend-store-uri dlprov:///…``: MLflow's own server and UI over a dlprov
store. Needs the full ``mlflow`` (its server), installed in benchmarks/.venv-peers; skipped
where it is absent."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

mlflow = pytest.importorskip("mlflow")

import dlprov.query as q  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
SERVER = ROOT / "benchmarks" / ".venv-peers" / "bin" / "mlflow"


def _has_full_mlflow() -> bool:
    if not SERVER.is_file():
        return False
    python = SERVER.parent / "python"
    found = subprocess.run([str(python), "-c", "import flask, mlflow.server"],
                           capture_output=True, timeout=120)
    return found.returncode == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _call(url: str, body: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, answer.read()


NO_SERVER = pytest.mark.skipif(not _has_full_mlflow(), reason="the full mlflow (its server) is "
                               "not installed in benchmarks/.venv-peers")


@contextmanager
def _server(backend: str, folder: Path) -> Iterator[str]:
    """An ``mlflow server`` on ``backend``, answering; its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(SERVER), "server", "--backend-store-uri", backend, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _call(base + "/health")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not answer")
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@NO_SERVER
def test_import_from_an_mlflow_server(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from dlprov.integrations.mlflow.importer import import_runs

    from .runs import log_three_runs
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_three_runs(backend, tmp_path)
    with _server(backend, tmp_path) as base:
        report = import_runs(base, store=tmp_path / "dlprov.db")
    assert len(report.imported) == 4 and not report.failed, report.summary()
    found = q.q1(0.01, store=tmp_path / "dlprov.db").records()
    assert [r["learning_rate"] for r in found] == [0.01]


@NO_SERVER
def test_mlflow_server_shows_dlprov_runs(tmp_path: Path) -> None:
    store = tmp_path / "dlprov.db"
    mlflow.set_tracking_uri(f"dlprov://{store}")
    try:
        mlflow.set_experiment("served")
        with mlflow.start_run(run_name="one") as run:
            mlflow.log_param("learning_rate", 0.01)
            for step in range(3):
                mlflow.log_metric("loss", 1 / (step + 1), step=step)
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    from dlprov.recorder.recorder import close_all
    close_all()
    with _server(f"dlprov://{store}", tmp_path) as base:
        status, page = _call(base + "/")
        assert status == 200 and b"<html" in page.lower()
        api = base + "/ajax-api/2.0/mlflow"
        status, body = _call(api + "/experiments/search", {"max_results": 25})
        assert status == 200 and "served" in [e["name"] for e in json.loads(body)["experiments"]]
        status, body = _call(api + "/runs/search", {"experiment_ids": ["served"]})
        runs = json.loads(body)["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run.info.run_id]
        run_id = run.info.run_id
        for path in ("/experiments/get?experiment_id=served", f"/runs/get?run_id={run_id}",
                     f"/metrics/get-history?run_uuid={run_id}&metric_key=loss",
                     f"/metrics/get-history-bulk-interval?run_ids={run_id}&metric_key=loss"
                     f"&max_results=100"):
            assert _call(api + path)[0] == 200, path
        status, body = _call(api + f"/metrics/get-history?run_uuid={run_id}&metric_key=loss")
        assert [m["step"] for m in json.loads(body)["metrics"]] == [0, 1, 2]
        assert _call(api + "/logged-models/search", {"experiment_ids": ["served"]})[0] == 200
