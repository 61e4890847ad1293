"""Stores of one URL share an engine in a process; a replaced SQLite file is never written blind."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import dlprov
from dlprov.recorder.recorder import close_all
from dlprov.store.store import Store


def _one_run(path: Path, value: float) -> None:
    with dlprov.run("shared", store=path, capture_environment=False) as run:
        with run.task("train") as task:
            task.output("otrain", loss=value)


def test_stores_of_one_url_share_their_engine(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    first, second = Store(path), Store(str(path))
    assert first.engine() is second.engine()
    assert first.engine(read_only=True) is second.engine(read_only=True)
    assert Store(tmp_path / "b.db").engine() is not first.engine()


def test_a_store_file_removed_and_made_again_gets_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "dlprov.db"
    _one_run(path, 1.0)
    for leftover in tmp_path.iterdir():  # the user deletes the store between two runs
        leftover.unlink()
    _one_run(path, 2.0)
    close_all()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT loss FROM shared__otrain").fetchall() == [(2.0,)]
        assert conn.execute("SELECT count(*) FROM dataflow_execution").fetchone() == (1,)


def test_a_store_without_a_newer_column_gets_it_when_a_run_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _one_run(path, 1.0)
    close_all()
    with sqlite3.connect(path) as conn:  # as made by a dlprov before task.rank existed
        conn.execute("ALTER TABLE task DROP COLUMN rank")
    _one_run(path, 2.0)
    close_all()
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(task)")]
        assert "rank" in columns
        assert conn.execute("SELECT loss FROM shared__otrain ORDER BY id").fetchall() == [
            (1.0,), (2.0,)]


def test_reading_an_older_store_adds_the_column_readers_select(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _one_run(path, 1.0)
    close_all()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE task DROP COLUMN rank")
        (exec_tag,), = conn.execute("SELECT tag FROM dataflow_execution").fetchall()
    from dlprov.query.catalogue import list_tasks
    tasks = list_tasks(exec_tag, Store(path))  # no run has opened it since
    assert [(t["transformation"], t["rank"]) for t in tasks] == [("train", None)]


def test_reading_never_creates_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    from dlprov.query.catalogue import list_runs
    try:
        list_runs(Store(empty))
    except Exception:  # noqa: BLE001 - whatever the reader says, the file stays empty
        pass
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
