"""Forked children and threads recording into their parent's task: every element lands exactly
once, on SQLite and PostgreSQL (the child's recorder is re-armed in place, the parent's rows are
written before the fork, and the child writes what it queued before multiprocessing's exit)."""
from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

import dlprov
from tests.recorder.stores import open_target

CHILDREN, PER_CHILD, THREADS, PER_THREAD = 3, 100, 4, 100


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path: Path):
    with open_target(request.param, tmp_path, "fork") as found:
        yield found


def _record(train, first: int, count: int) -> None:
    for epoch in range(first, first + count):
        train.output("otrain", epoch=epoch, loss=1.0)


def test_fork_children_and_threads_record_into_the_parents_task(target) -> None:
    fork = multiprocessing.get_context("fork")
    with dlprov.run(target.df_tag, store=target.url, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=-1, loss=0.0)  # queued, not yet written, at the fork
            children = [fork.Process(target=_record, args=(train, 1000 * (n + 1), PER_CHILD))
                        for n in range(CHILDREN)]
            for child in children:
                child.start()
            threads = [threading.Thread(target=_record, args=(train, 100_000 * (n + 1),
                                                              PER_THREAD))
                       for n in range(THREADS)]
            for thread in threads:
                thread.start()
            for child in children:
                child.join(60)
                assert child.exitcode == 0
            for thread in threads:
                thread.join(60)
    assert run.flush()
    expected = 1 + CHILDREN * PER_CHILD + THREADS * PER_THREAD
    table = target.table("otrain")
    assert target.scalar(f"SELECT count(*) FROM {table}") == expected
    assert target.scalar(f"SELECT count(DISTINCT epoch) FROM {table}") == expected
    assert target.scalar(f"SELECT count(DISTINCT train_task_id) FROM {table}") == 1
    assert target.scalar("SELECT count(*) FROM task") == 1
    assert target.scalar("SELECT status FROM dataflow_execution") == "finished"


def _child_run(url: str, df_tag: str, train) -> None:
    # The child starts its own run too, beside recording into the inherited task.
    with dlprov.run(df_tag, store=url, capture_environment=False) as own:
        with own.task("evaluate") as evaluate:
            evaluate.output("oeval", score=1.0)
    _record(train, 5000, 10)


def test_a_fork_child_may_start_runs_of_its_own(target) -> None:
    fork = multiprocessing.get_context("fork")
    with dlprov.run(target.df_tag, store=target.url, capture_environment=False) as run:
        with run.task("train") as train:
            child = fork.Process(target=_child_run, args=(target.url, target.df_tag, train))
            child.start()
            child.join(60)
            assert child.exitcode == 0
    assert run.flush()
    assert target.scalar(f"SELECT count(*) FROM {target.table('otrain')}") == 10
    assert target.scalar(f"SELECT count(*) FROM {target.table('oeval')}") == 1
    assert sorted(r for (r,) in target.rows("SELECT status FROM dataflow_execution")) == [
        "finished", "finished"]
