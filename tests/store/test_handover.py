"""A closed writer hands its caches of a store's dataflows to the next writer of that store in
the process (dlprov.store.handover), which keeps them only while the store still matches."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

import dlprov
from dlprov.recorder.recorder import close_all
from dlprov.store import writer as writer_module
from dlprov.store.store import Store
from tests.conftest import store_on

GROW_ELSEWHERE = """
import sys, dlprov
with dlprov.run(sys.argv[2], store=sys.argv[1], capture_environment=False) as run:
    with run.task("train") as task:
        task.output("otrain", loss=0.5, grad_norm=3.0)
"""


def _one_run(url: str, df_tag: str, **values: float) -> None:
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        with run.task("train") as task:
            task.output("otrain", **values)
    close_all()  # each run its own recorder, as a script that closes it between runs


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    with store_on(request.param, tmp_path, "ho") as found:
        yield found


def _losses(url: str, df_tag: str) -> list[tuple]:
    table = f"{df_tag}__otrain" if not url.startswith("postgresql") else f'"{df_tag}".otrain'
    column = "grad_norm" if "grad" in _columns(url, df_tag) else "NULL"
    with Store(url).read() as conn:
        return [tuple(r) for r in conn.execute(text(
            f"SELECT loss, {column} FROM {table} ORDER BY id"))]


def _columns(url: str, df_tag: str) -> str:
    with Store(url).read() as conn:
        spec = dlprov.store.specs.read_spec(conn, df_tag)[2]
    return " ".join(spec.sets["otrain"].attributes)


def test_the_next_recorder_starts_with_what_the_last_one_knew(url, monkeypatch):
    url, df_tag = url
    _one_run(url, df_tag, loss=1.0)
    reads = []
    original = writer_module.read_spec
    monkeypatch.setattr(writer_module, "read_spec",
                        lambda conn, tag: reads.append(tag) or original(conn, tag))
    _one_run(url, df_tag, loss=2.0)
    assert reads == []  # the spec, its set tables and ids came from the closed writer
    assert _losses(url, df_tag) == [(1.0, None), (2.0, None)]


def test_a_spec_grown_by_another_process_is_read_again(url):
    url, df_tag = url
    _one_run(url, df_tag, loss=1.0)
    subprocess.run([sys.executable, "-c", GROW_ELSEWHERE, url, df_tag], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    # the handed caches know otrain without grad_norm: they must not be kept
    _one_run(url, df_tag, loss=2.0, grad_norm=4.0)
    assert _losses(url, df_tag) == [(1.0, None), (0.5, 3.0), (2.0, 4.0)]


def test_a_store_file_made_again_gets_nothing_handed(tmp_path, caplog):
    path = tmp_path / "again.db"
    _one_run(str(path), "ho", loss=1.0)
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    # another process makes the file again, its first dataflow taking the id "ho" had
    subprocess.run([sys.executable, "-c", GROW_ELSEWHERE, str(path), "other"], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    _one_run(str(path), "ho", loss=2.0)
    # stale caches would fail the first batch (a set table of the old file) and leave the
    # records to the spool until a fresh writer replays them
    assert "until the store answers" not in caplog.text
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT loss FROM ho__otrain").fetchall() == [(2.0,)]
        # the execution points at the dataflow of this file, not at the cached one's id
        assert conn.execute("SELECT count(*) FROM dataflow_execution e "
                            "JOIN dataflow d ON d.id = e.df_id WHERE d.tag = 'ho'"
                            ).fetchone() == (1,)
