"""When the store cannot take records, training goes on and nothing is lost.

The failures are real ones, and none depends on file permissions (the tests may run as root,
which ignores them): a directory where the SQLite file should be, a file that is not a database,
a set table moved away in the middle of a run. Those records are spooled and replayed. Records
the store answers but refuses (a trigger, a duplicate execution) are set aside instead.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import dlprov

SPOOL_WARNING = "cannot write provenance"


def _break_with_directory(path: Path) -> None:
    path.mkdir()


def _break_with_garbage(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of an SQLite database\n" * 200)


BREAKS = [
    # StoreUnavailable (the file cannot be opened) was once taken for a refusal of the records'
    # content: the spool was cleared while the store still failed, and every record lost.
    pytest.param(_break_with_directory, id="directory in place of the file"),
    pytest.param(_break_with_garbage, id="file that is not a database"),
]


def _repair(path: Path) -> None:
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()


def _writes_fail(path: Path) -> bool:
    """Whether plain sqlite3 (as this user, root included) can write at ``path``."""
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error:
        return True
    try:
        with conn:
            conn.execute("CREATE TABLE probe (x)")
            conn.execute("DROP TABLE probe")
        return False
    except sqlite3.Error:
        return True
    finally:
        conn.close()


def _spooled(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dlprov.recorder" and text in r.getMessage()]


@pytest.mark.parametrize("break_store", BREAKS)
def test_records_are_spooled_while_the_store_fails_and_replayed_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, break_store) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    path = tmp_path / "store.db"
    break_store(path)
    assert _writes_fail(path), "this way of breaking the store does not stop writes here"

    run = dlprov.run("mnist", store=path, exec_tag="offline")
    recorder = run.recorder
    train = run.task("train")
    train.input("itrain", learning_rate=0.01, optimizer="adam")
    for epoch in range(5):
        train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1))
    assert run.flush() is True  # spooled counts as done: training is not held up
    failed_once = recorder.failures
    assert failed_once >= 1
    for epoch in range(5, 10):
        train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1))
    assert run.flush() is True  # asking for a flush retries the store: it fails again
    assert recorder.failures > failed_once
    assert recorder.written == 0

    warned = _warnings(caplog, SPOOL_WARNING)
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert warned[0].levelno == logging.WARNING
    assert str(recorder.spool.path) in warned[0].getMessage()

    spool = recorder.spool.path
    assert spool.is_file() and spool.parent.parent == tmp_path
    kept = _spooled(spool)
    kinds = [rec[0] for rec in kept]
    assert kinds.index("exec_start") < kinds.index("task_start") < kinds.index("element")
    assert "task_end" not in kinds and "exec_end" not in kinds
    assert [rec[3]["epoch"] for rec in kept if rec[0] == "element" and rec[2] == "otrain"] == [
        float(e) for e in range(10)]
    assert [rec[3] for rec in kept if rec[0] == "element" and rec[2] == "itrain"] == [
        {"learning_rate": 0.01, "optimizer": "adam"}]

    _repair(path)
    train.output("otrain", epoch=10, loss=1.0 / 11)
    assert run.flush() is True
    assert not recorder.spool and not spool.exists()
    assert len(_warnings(caplog, "is back")) == 1
    train.end()
    run.end()
    assert run.flush() is True  # a later flush replays nothing again

    conn = sqlite3.connect(path)
    try:
        epochs = [e for (e,) in conn.execute("SELECT epoch FROM mnist__otrain ORDER BY id")]
        inputs = conn.execute("SELECT learning_rate, optimizer FROM mnist__itrain").fetchall()
        executions = conn.execute("SELECT tag, status FROM dataflow_execution").fetchall()
        tasks = conn.execute("SELECT status FROM task").fetchall()
    finally:
        conn.close()
    assert epochs == [float(e) for e in range(11)]
    assert inputs == [(0.01, "adam")]
    assert executions == [("offline", "finished")]
    assert tasks == [("finished",)]
    assert len(_warnings(caplog, SPOOL_WARNING)) == 1


def test_a_store_that_goes_away_mid_run_loses_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    path = tmp_path / "store.db"
    with dlprov.run("mnist", store=path, exec_tag="flaky") as run:
        recorder = run.recorder
        with run.task("train") as train:
            for epoch in range(3):
                train.output("otrain", epoch=epoch, loss=1.0)
            assert run.flush()
            assert recorder.failures == 0 and not recorder.spool

            # Another process (say, a migration) moves the set's table away for a while.
            admin = sqlite3.connect(path)
            admin.execute("ALTER TABLE mnist__otrain RENAME TO otrain_migrating")
            for epoch in range(3, 6):
                train.output("otrain", epoch=epoch, loss=1.0)  # must not raise
            assert run.flush()
            failed = recorder.failures
            assert failed >= 1
            assert [rec[3]["epoch"] for rec in _spooled(recorder.spool.path)
                    if rec[0] == "element"] == [3.0, 4.0, 5.0]
            train.output("otrain", epoch=6, loss=1.0)
            assert run.flush()
            assert recorder.failures > failed  # the flush tried the store again
            assert [rec[3]["epoch"] for rec in _spooled(recorder.spool.path)
                    if rec[0] == "element"] == [3.0, 4.0, 5.0, 6.0]

            admin.execute("ALTER TABLE otrain_migrating RENAME TO mnist__otrain")
            admin.close()
            for epoch in range(7, 9):
                train.output("otrain", epoch=epoch, loss=1.0)
    assert not recorder.spool
    assert recorder.rejected == 0
    conn = sqlite3.connect(path)
    try:
        epochs = [e for (e,) in conn.execute("SELECT epoch FROM mnist__otrain ORDER BY id")]
        status = conn.execute("SELECT status FROM dataflow_execution").fetchall()
    finally:
        conn.close()
    assert epochs == [float(e) for e in range(9)]
    assert status == [("finished",)]
    warned = _warnings(caplog, SPOOL_WARNING)
    assert len(warned) == 1 and "no such table" in warned[0].getMessage()


def test_records_the_store_refuses_are_set_aside_and_do_not_block_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    path = tmp_path / "store.db"
    with dlprov.run("mnist", store=path, exec_tag="picky") as run:
        recorder = run.recorder
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=1.0)
            assert run.flush()
            admin = sqlite3.connect(path)
            with admin:  # the store answers, but refuses these elements for their content
                admin.execute("CREATE TRIGGER picky BEFORE INSERT ON mnist__otrain "
                              "WHEN NEW.loss > 10 BEGIN SELECT RAISE(ABORT, 'loss too big'); END")
            admin.close()
            for epoch, loss in enumerate([0.5, 50.0, 0.25, 70.0], start=1):
                train.output("otrain", epoch=epoch, loss=loss)  # must not raise
            assert run.flush()
            train.output("otrain", epoch=5, loss=0.1)
    assert run.flush()
    assert recorder.failures == 0 and not recorder.spool
    assert recorder.rejected == 2
    from dlprov.recorder.spool import Spool
    kept = [item for _, items in Spool(recorder.rejected_path).refusals() for item in items]
    assert [(rec[3]["epoch"], rec[3]["loss"]) for rec, _ in kept] == [(2.0, 50.0), (4.0, 70.0)]
    assert all("loss too big" in reason for _, reason in kept)  # each kept with its reason
    refused = [r for r in caplog.records if r.name == "dlprov.recorder"
               and r.levelno == logging.ERROR and "loss too big" in r.getMessage()]
    # One error per refused batch; how the elements were batched is up to the writer thread.
    assert 1 <= len(refused) <= 2
    assert all(str(recorder.rejected_path) in r.getMessage() for r in refused)
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT epoch, loss FROM mnist__otrain ORDER BY id").fetchall()
        status = conn.execute("SELECT status FROM task").fetchall()
    finally:
        conn.close()
    assert rows == [(0.0, 1.0), (1.0, 0.5), (3.0, 0.25), (5.0, 0.1)]
    assert status == [("finished",)]


def test_a_rejected_batch_does_not_stop_later_runs_being_stored(tmp_path: Path) -> None:
    # A duplicate exec_tag once poisoned the recorder: the refused batch was spooled and
    # replayed before, and so failed, every later batch of the process.
    path = tmp_path / "store.db"
    with dlprov.run("mnist", store=path, exec_tag="nightly") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=1.0)
    try:  # the same tag again: refusing it up front or setting its records aside are both fine
        with dlprov.run("mnist", store=path, exec_tag="nightly") as run:
            with run.task("train") as train:
                train.output("otrain", epoch=1, loss=1.0)
    except (ValueError, dlprov.DlprovError):
        pass
    with dlprov.run("mnist", store=path, exec_tag="the-next-night") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=2, loss=1.0)
    conn = sqlite3.connect(path)
    try:
        tags = {t for (t,) in conn.execute("SELECT tag FROM dataflow_execution")}
        epochs = [e for (e,) in conn.execute("SELECT epoch FROM mnist__otrain ORDER BY id")]
    finally:
        conn.close()
    assert tags == {"nightly", "the-next-night"}
    assert epochs in ([0.0, 2.0], [0.0, 1.0, 2.0])
    assert not run.recorder.spool


def test_spool_round_trips_values_that_look_like_its_own_tags(tmp_path) -> None:
    from datetime import datetime

    from dlprov.recorder.spool import Spool
    record = ("element", "key", "otrain", {
        "meta": {"$datetime": "not a time"}, "when": datetime(2026, 1, 2, 3, 4, 5),
        "nested": {"$dict": {"$datetime": 1}}, "items": [1, {"x": 2}]})
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([record])
    assert spool.records() == [record]
