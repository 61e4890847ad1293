"""dlprov's own capture through a server: DLPROV_STORE=http://... and the normal recorder."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from dlprov.errors import StoreUnavailable, ValueRejected
from dlprov.model import records as r
from dlprov.recorder.spool import encode
from dlprov.store.http import HttpWriter
from dlprov.store.store import Store

SCRIPT = """
import dlprov
with dlprov.run("mnist", exec_tag="remote-1", capture_environment=False) as run:
    with run.task("train") as train:
        train.input("itrain", optimizer_name="adam", learning_rate=0.001)
        for epoch in (1, 2, 3):
            train.output("otrain", epoch=epoch, loss=1.0 / epoch)
"""


def test_training_script_captures_through_the_server(server, store_path, sql, tmp_path):
    # a separate process, as a training script on another machine would be
    env = {"DLPROV_STORE": server, "PATH": "", "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "cache" / "dlprov").exists() or not any(
        (tmp_path / "cache" / "dlprov").rglob("*.jsonl")), "nothing may be left spooled"
    assert sql("SELECT tag, status FROM dataflow_execution") == [("remote-1", "finished")]
    assert sql("SELECT epoch, loss FROM mnist__otrain ORDER BY epoch") == [
        (1.0, 1.0), (2.0, 0.5), (3.0, 1.0 / 3)]
    runs = httpx.get(f"{server}/v1/runs").json()
    assert [run["exec_tag"] for run in runs] == ["remote-1"]
    page = httpx.get(f"{server}/v1/sets/mnist/otrain", params={"limit": 2, "offset": 1}).json()
    assert [row["epoch"] for row in page["rows"]] == [2.0, 3.0]
    spec = httpx.get(f"{server}/v1/dataflows/mnist/spec").json()
    assert "otrain" in spec["sets"]


def test_remote_store_reads_through_the_server(server):
    import dlprov
    with dlprov.run("cifar", exec_tag="remote-2", store=server,
                    capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=0.25)
    store = Store(server)
    assert store.backend == "http"
    assert store.has_execution("remote-2") and not store.has_execution("nope")
    assert "otrain" in store.load_spec("cifar").sets
    assert store.load_spec("unknown") is None
    with pytest.raises(StoreUnavailable, match="read endpoints"):
        with store.read():
            pass
    answer = httpx.get(f"{server}/v1/query/q3", params={"dataflow": "cifar"})
    assert answer.status_code in (200, 400), answer.text  # cifar lacks itrain: a clear 400


def test_batch_is_one_transaction(server, sql):
    now = datetime(2025, 1, 1, 12)
    good = [(r.SPEC, "df", {"tag": "df"}),
            (r.EXEC_START, "e" * 32, {"tag": "x1", "df_tag": "df", "start_time": now})]
    bad = good + [(r.TASK_END, "no-such-task", {"status": "finished"})]
    answer = httpx.post(f"{server}/v1/batch", json=encode(bad))  # a plain list: one batch
    assert answer.status_code == 400
    assert "nothing of it was stored" in answer.json()["detail"]
    assert sql("SELECT count(*) FROM dataflow_execution") == [(0,)]
    HttpWriter(server).write(good)  # the same writer recovers afterwards
    assert sql("SELECT tag, start_time FROM dataflow_execution") == [
        ("x1", "2025-01-01 12:00:00.000000")]
    with pytest.raises(ValueRejected, match="400"):
        HttpWriter(server).write(bad[-1:])


def test_writer_raises_store_unavailable_when_no_server_answers():
    with pytest.raises(StoreUnavailable, match="no answer"):
        HttpWriter("http://127.0.0.1:9").write([(r.SPEC, "df", {"tag": "df"})])
