"""Parsl apps on a real HighThroughputExecutor (two worker processes) run as dlprov tasks of one
execution, with the dependencies Parsl knows from the futures passed between them."""
from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

import dlprov

parsl = pytest.importorskip("parsl")


def square(x: int) -> int:
    from dlprov.integrations.parsl import current_task
    current_task().output("osquare", x=x, y=x * x)
    return x * x


def add(a: int, b: int) -> int:
    import os

    from dlprov.integrations.parsl import current_task
    current_task().output("oadd", total=a + b, pid=os.getpid())
    return a + b


def test_parsl_apps_across_worker_processes_form_one_execution(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsl starts its interchange and worker pool by script name: the venv's bin must be on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # The apps below are pickled by reference: the workers import them from this module.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    from dlprov.integrations.parsl import provenance_app

    store = tmp_path / "parsl.db"
    config = Config(executors=[HighThroughputExecutor(
        label="htex", address="127.0.0.1", max_workers_per_node=2, cores_per_worker=1,
        provider=LocalProvider(init_blocks=1, max_blocks=1))], run_dir=str(tmp_path / "runinfo"))
    dfk = parsl.load(config)
    try:
        with dlprov.run("sweep", store=store, exec_tag="parsl", capture_environment=False) as run:
            square_app = provenance_app(run)(square)
            add_app = provenance_app(run)(add)
            a, b = square_app(3), square_app(4)
            assert add_app(a, b).result(timeout=60) == 25
    finally:
        dfk.cleanup()
        parsl.clear()

    conn = sqlite3.connect(store)
    try:
        tasks = conn.execute(
            "SELECT t.id, dt.tag, t.status, e.tag FROM task t JOIN data_transformation dt "
            "ON dt.id = t.dt_id JOIN dataflow_execution e ON e.id = t.exec_id").fetchall()
        deps = conn.execute("SELECT task_id, depends_on_id FROM task_dependency").fetchall()
        squares = sorted(conn.execute("SELECT x, y FROM sweep__osquare").fetchall())
        added = conn.execute("SELECT total, add_task_id FROM sweep__oadd").fetchall()
        executions = conn.execute("SELECT tag, status FROM dataflow_execution").fetchall()
    finally:
        conn.close()
    assert executions == [("parsl", "finished")]
    assert sorted((t, s, e) for _, t, s, e in tasks) == [
        ("add", "finished", "parsl"), ("square", "finished", "parsl"),
        ("square", "finished", "parsl")]
    by_id = {i: t for i, t, _, _ in tasks}
    add_id = next(i for i, t in by_id.items() if t == "add")
    assert sorted(deps) == sorted((add_id, i) for i, t in by_id.items() if t == "square")
    assert squares == [(3.0, 9.0), (4.0, 16.0)]
    assert added == [(25.0, add_id)]
