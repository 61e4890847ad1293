"""A Task or Run handed to a child process started with ``spawn`` (so pickled) records into the
same execution: a Task's elements land in that task, exactly once, and the child writes them
before it exits. Real children, ``multiprocessing.get_context("spawn")``, SQLite and PostgreSQL."""
from __future__ import annotations

import multiprocessing
import pickle

import pytest

import dlprov
from dlprov.errors import RunEnded, TaskEnded
from tests.capture.stores import backend_for

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with backend_for(request.param, tmp_path, "spawned") as found:
        yield found


# What the children run (module level: a spawned child imports them by name).
def record_into(task: dlprov.Task, worker: int, count: int) -> None:
    for step in range(count):
        task.output("otrain", worker=worker, step=step, loss=1.0 / (step + 1))


def start_a_task(run: dlprov.Run, worker: int, leave_open: bool) -> None:
    task = run.task("evaluate", sub_id=str(worker))
    task.output("oeval", worker=worker, accuracy=0.5 + worker / 10)
    if not leave_open:
        task.end()


def _start(target, *args) -> multiprocessing.Process:
    child = SPAWN.Process(target=target, args=args)
    child.start()
    return child


def _joined(children: list[multiprocessing.Process]) -> None:
    for child in children:
        child.join(120)
        assert child.exitcode == 0


def test_a_task_handed_to_spawned_children_gets_their_elements_exactly_once(backend) -> None:
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("train") as train:
            train.output("otrain", worker=-1, step=0, loss=1.0)  # the parent's own
            _joined([_start(record_into, train, worker, 100) for worker in range(3)])
            train.output("otrain", worker=-1, step=1, loss=0.5)
    rows = backend.rows("otrain", "worker, step, train_task_id")
    assert len(rows) == 302
    assert len({(w, s) for w, s, _ in rows}) == 302  # none twice
    assert {task_id for *_, task_id in rows} == {
        backend.query("SELECT id FROM task WHERE uuid = :key", key=train.key)[0][0]}
    assert backend.query("SELECT count(*), min(status) FROM task") == [(1, "finished")]


def test_a_run_handed_to_spawned_children_gets_their_tasks(backend) -> None:
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        _joined([_start(start_a_task, run, worker, worker == 2) for worker in range(3)])
    tasks = backend.query("SELECT t.sub_id, t.status, t.error_msg, e.uuid FROM task t JOIN "
                          "dataflow_execution e ON e.id = t.exec_id ORDER BY t.sub_id")
    assert [(sub, status) for sub, status, _, _ in tasks] == [
        ("0", "finished"), ("1", "finished"), ("2", "failed")]  # 2 left its task open
    assert "exited before Task.end()" in tasks[2][2]
    assert {key for *_, key in tasks} == {run.key}
    assert sorted(backend.rows("oeval", "worker")) == [(0.0,), (1.0,), (2.0,)]
    assert backend.query("SELECT count(*), min(status) FROM dataflow_execution") == [
        (1, "finished")]


def test_an_ended_task_or_run_is_refused_when_pickled(store_path) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
        with pytest.raises(TaskEnded, match="'train' .* has ended"):
            pickle.dumps(train)
    with pytest.raises(RunEnded, match="has ended"):
        pickle.dumps(run)


def test_an_unpickled_task_in_this_process_records_into_the_same_task(store_path, sql) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
            copy = pickle.loads(pickle.dumps(train))
            assert copy is not train and copy.key == train.key
            copy.output("OTRAIN", LOSS=0.25)
            copy.end()  # a handle: the task is its starter's to end
            train.output("otrain", loss=0.125)
    assert sql("SELECT loss, train_task_id FROM mnist__otrain ORDER BY id") == [
        (0.5, 1), (0.25, 1), (0.125, 1)]
    assert sql("SELECT count(*), min(status) FROM task") == [(1, "finished")]
