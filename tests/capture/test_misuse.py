"""Misuse after the end is refused at the call: recording into an ended task, or into a task of
an ended run, raises TaskEnded naming the task and its status, and stores nothing."""
from __future__ import annotations

import pytest

import dlprov
from dlprov.dfa import DataSet, Dataflow, Element, Set, SetType, Task, Transformation
from dlprov.dfa import end_execution
from dlprov.errors import RunEnded, TaskEnded
from tests.capture.stores import backend_for


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with backend_for(request.param, tmp_path, "misuse") as found:
        yield found


def test_recording_into_an_ended_task_is_refused(backend, tmp_path) -> None:
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=0.5)
        for call in (lambda: train.output("otrain", epoch=2, loss=0.4),
                     lambda: train.input("itrain", lr=0.1),
                     lambda: train.model(tmp_path / "m.pt")):
            with pytest.raises(TaskEnded) as raised:
                call()
            message = str(raised.value)
            assert f"task 1 'train' of run {run.exec_tag!r} has ended (finished)" in message
            assert "record into a new task" in message
        failed = run.task("check")
        failed.end("boom")
        with pytest.raises(TaskEnded, match=r"'check' .* has ended \(failed\)"):
            failed.output("ocheck", ok=1)
    assert backend.rows("otrain", "epoch") == [(1.0,)]
    assert backend.set_tables() == {"otrain"}  # no itrain, no otrainedmodel, no ocheck


def test_recording_into_a_task_of_an_ended_run_is_refused(backend) -> None:
    run = dlprov.run(backend.df_tag, store=backend.url)
    train = run.task("train")
    train.output("otrain", epoch=1, loss=0.5)
    run.end()  # ends the task it left open
    with pytest.raises(TaskEnded) as raised:
        train.output("otrain", epoch=2, loss=0.4)
    assert f"run {run.exec_tag!r} has ended (finished): start a new run" in str(raised.value)
    assert isinstance(raised.value, dlprov.DlprovError)
    with pytest.raises(RunEnded, match="has ended"):
        run.task("test")
    with pytest.raises(RuntimeError):  # as before: RunEnded is a RuntimeError too
        run.task("test")
    assert backend.rows("otrain", "epoch") == [(1.0,)]
    assert backend.query("SELECT count(*) FROM task") == [(1,)]


def test_the_dfa_api_refuses_datasets_after_the_end(store_path, sql, monkeypatch) -> None:
    df = Dataflow("dfamisuse", transformations=[Transformation("train", [
        Set("otrain", SetType.OUTPUT, [dlprov.Attribute("loss", "numeric")])])])
    df.save()
    task = Task(1, df, "dfamisuse-1", "train")
    task.add_dataset(DataSet("otrain", [Element([0.5])]))
    task.end()
    task.add_dataset(DataSet("otrain", [Element([0.4])]))  # lenient: a warning, not an error
    assert "has ended" in task.warnings[-1]
    monkeypatch.setenv("DLPROV_DFA_STRICT", "1")
    with pytest.raises(TaskEnded, match="has ended"):
        task.add_dataset(DataSet("otrain", [Element([0.4])]))
    end_execution("dfamisuse-1")
    assert sql("SELECT loss FROM dfamisuse__otrain") == [(0.5,)]
