"""Parsl apps on a real HighThroughputExecutor (two worker processes) run as dlprov tasks of one
execution, with the dependencies Parsl knows from the futures passed between them and the sets
each dependant used, as ``run.task(..., depends_on=...)`` records them in one process."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterator

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


def consume(scale: int, inputs=()) -> int:
    from dlprov.integrations.parsl import current_task
    total = scale * sum(inputs)
    current_task().output("oconsume", total=total)
    return total


@pytest.fixture(scope="module")
def htex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One HighThroughputExecutor with two workers for the module (it takes seconds to start)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The apps below are pickled by reference: the workers import them from this module.
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
        from dlprov.demo.parallel import local_htex  # the demo's executor: 2 local workers
        with local_htex(2, tmp_path_factory.mktemp("parsl") / "runinfo"):
            yield


def _rows(store: Path, statement: str) -> list[tuple]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def _tasks(store: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for task_id, tag in _rows(store, "SELECT t.id, dt.tag FROM task t JOIN data_transformation "
                                     "dt ON dt.id = t.dt_id ORDER BY t.id"):
        found.setdefault(tag, []).append(task_id)
    return found


def _usage(store: Path) -> set[tuple[int, int, str]]:
    return set(_rows(store, "SELECT u.task_id, u.producer_task_id, ds.tag FROM task_usage u "
                            "JOIN data_set ds ON ds.id = u.ds_id"))


def test_parsl_apps_across_worker_processes_form_one_execution(htex, tmp_path: Path) -> None:
    from dlprov.integrations.parsl import provenance_app

    store = tmp_path / "parsl.db"
    with dlprov.run("sweep", store=store, exec_tag="parsl", capture_environment=False) as run:
        square_app = provenance_app(run)(square)
        add_app = provenance_app(run)(add)
        a, b = square_app(3), square_app(4)
        assert add_app(a, b).result(timeout=60) == 25

    tasks = _rows(store, "SELECT t.id, dt.tag, t.status, e.tag, t.sub_id FROM task t JOIN "
                         "data_transformation dt ON dt.id = t.dt_id JOIN dataflow_execution e "
                         "ON e.id = t.exec_id")
    assert _rows(store, "SELECT tag, status FROM dataflow_execution") == [("parsl", "finished")]
    assert sorted((t, s, e) for _, t, s, e, _ in tasks) == [
        ("add", "finished", "parsl"), ("square", "finished", "parsl"),
        ("square", "finished", "parsl")]
    # each task names the worker process that ran it
    assert all(sub.startswith("worker ") and " pid " in sub for *_, sub in tasks)
    by_id = {i: t for i, t, *_ in tasks}
    add_id = next(i for i, t in by_id.items() if t == "add")
    square_ids = sorted(i for i, t in by_id.items() if t == "square")
    deps = _rows(store, "SELECT task_id, depends_on_id FROM task_dependency")
    assert sorted(deps) == [(add_id, i) for i in square_ids]
    # add used what each square produced, learnt from the store in add's worker: one usage row
    # per producer, and add's id stamped on the squares' elements (the paper's *_task_id joins)
    assert _usage(store) == {(add_id, i, "osquare") for i in square_ids}
    squares = _rows(store, "SELECT x, y, square_task_id, add_task_id FROM sweep__osquare "
                           "ORDER BY x")
    assert [(x, y) for x, y, _, _ in squares] == [(3.0, 9.0), (4.0, 16.0)]
    assert sorted(s for _, _, s, _ in squares) == square_ids
    assert [used_by for *_, used_by in squares] == [add_id, add_id]
    assert _rows(store, "SELECT total, add_task_id FROM sweep__oadd") == [(25.0, add_id)]


def test_uses_and_tasks_of_this_process_as_dependencies(htex, tmp_path: Path) -> None:
    from dlprov.integrations.parsl import provenance_app

    store = tmp_path / "parsl.db"
    with dlprov.run("sweep", store=store, capture_environment=False) as run:
        with run.task("prep") as prep:  # a task of this process, two output sets
            prep.output("oprep", scale=2)
            prep.output("oextra", note="not used")
        square_app = provenance_app(run)(square)
        consume_app = provenance_app(run, uses=["oprep", "osquare"])(consume)
        squared = square_app(5)
        # the future goes in Parsl's inputs=[...], the local task in depends_on=[...]
        assert consume_app(2, inputs=[squared], depends_on=[prep]).result(timeout=60) == 50

    tasks = _tasks(store)
    [prep_id], [square_id], [consume_id] = tasks["prep"], tasks["square"], tasks["consume"]
    assert sorted(_rows(store, "SELECT task_id, depends_on_id FROM task_dependency")) == [
        (consume_id, prep_id), (consume_id, square_id)]
    # oextra is not in uses: neither a usage row nor a consume_task_id column
    assert _usage(store) == {(consume_id, prep_id, "oprep"), (consume_id, square_id, "osquare")}
    assert _rows(store, "SELECT prep_task_id, consume_task_id FROM sweep__oprep") == [
        (prep_id, consume_id)]
    assert _rows(store, "SELECT square_task_id, consume_task_id FROM sweep__osquare") == [
        (square_id, consume_id)]
    columns = [c[1] for c in _rows(store, "PRAGMA table_info(sweep__oextra)")]
    assert "consume_task_id" not in columns


def test_uses_naming_a_set_no_dependency_produced_fails_that_app(htex, tmp_path: Path) -> None:
    from dlprov.integrations.parsl import provenance_app

    store = tmp_path / "parsl.db"
    with dlprov.run("sweep", store=store, capture_environment=False) as run:
        square_app = provenance_app(run)(square)
        add_app = provenance_app(run, uses=["onothing"])(add)
        with pytest.raises(dlprov.SpecError, match="onothing"):
            add_app(square_app(1), square_app(2)).result(timeout=60)
    # nothing of the refused task was stored; its producers were
    assert sorted(_tasks(store)) == ["square"]
    assert _usage(store) == set()


def test_a_function_with_a_depends_on_parameter_is_refused(tmp_path: Path) -> None:
    from dlprov.integrations.parsl import provenance_app

    def clash(depends_on):
        return depends_on

    with dlprov.run("sweep", store=tmp_path / "p.db", capture_environment=False) as run:
        with pytest.raises(TypeError, match="depends_on"):
            provenance_app(run)(clash)
        with pytest.raises(dlprov.NameRejected):
            provenance_app(run, uses=["not a name"])


def test_usage_across_workers_on_postgresql(htex) -> None:
    from dlprov.integrations.parsl import provenance_app
    from tests.conftest import postgresql_home

    with postgresql_home("parsl") as (url, home):
        df_tag = f"{home}_df"
        with dlprov.run(df_tag, store=url, capture_environment=False) as run:
            square_app = provenance_app(run)(square)
            add_app = provenance_app(run)(add)
            assert add_app(square_app(3), square_app(4)).result(timeout=60) == 25
        stamped = dlprov.sql("SELECT square_task_id, add_task_id FROM osquare",
                             store=url, dataflow=df_tag).rows
        usage = dlprov.sql("SELECT u.task_id, u.producer_task_id FROM task_usage u",
                           store=url, dataflow=df_tag).rows
        [(add_id,)] = dlprov.sql("SELECT add_task_id FROM oadd", store=url,
                                 dataflow=df_tag).rows
    assert sorted(usage) == sorted((add_id, square_id) for square_id, _ in stamped)
    assert len(stamped) == 2 and all(used_by == add_id for _, used_by in stamped)
