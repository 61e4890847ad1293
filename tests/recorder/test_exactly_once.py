"""Replay writes every spooled batch exactly once, on SQLite and on the real PostgreSQL server:
a batch committed whose acknowledgement was lost, backends terminated mid-run, a store that was
not there while the process lived (replayed later by `dlprov replay`)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

import dlprov
from dlprov.cli.main import cli
from dlprov.store.writer import StoreWriter
from tests.conftest import postgresql_home


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", "mnist"
        return
    with postgresql_home("once") as (url, home):
        yield url, f"{home}_df"  # set tables go to a schema named after the dataflow


def _count(url: str, statement: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(text(statement)).scalar_one()
    finally:
        engine.dispose()


def _otrain(url: str, df_tag: str = "mnist") -> str:
    return f'"{df_tag}"."otrain"' if url.startswith("postgresql") else f"{df_tag}__otrain"


def test_a_batch_committed_whose_acknowledgement_was_lost_is_not_written_twice(
        store_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store_url, df_tag = store_url
    real = StoreWriter.apply_batches
    lost = []

    def commit_then_lose_the_connection(self, batches):
        written = real(self, batches)
        if not lost and any(r[0] == "element" for _, records in batches for r in records):
            lost.append(written)
            raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the "
                                                                      "connection"))
        return written

    monkeypatch.setattr(StoreWriter, "apply_batches", commit_then_lose_the_connection)
    with dlprov.run(df_tag, store=store_url, capture_environment=False) as run:
        with run.task("train") as train:
            for epoch in range(5):
                train.output("otrain", epoch=epoch, loss=1.0)
            assert run.flush()
            # retried at once with a fresh writer (or kept and retried): the batch is found
            # applied and skipped
            assert lost and run.recorder.written < 5 + 3
            train.output("otrain", epoch=5, loss=1.0)
    assert not run.recorder.spool
    assert _count(store_url, f"SELECT count(*) FROM {_otrain(store_url, df_tag)}") == 6
    assert _count(store_url, "SELECT count(DISTINCT epoch) FROM "
                             f"{_otrain(store_url, df_tag)}") == 6
    assert _count(store_url, "SELECT count(*) FROM task") == 1
    assert _count(store_url, "SELECT count(*) FROM applied_batch") >= 2


def test_postgresql_backends_terminated_mid_run_lose_and_duplicate_nothing() -> None:
    psycopg = pytest.importorskip("psycopg")
    with postgresql_home("kill") as (url, home):
        url = f"{url}&application_name={home}"
        admin = psycopg.connect(url.split("?")[0], autocommit=True)
        with dlprov.run(f"{home}_df", store=url, capture_environment=False) as run:
            with run.task("train") as train:
                for epoch in range(30):
                    train.output("otrain", epoch=epoch, loss=1.0)
                    if epoch % 10 == 5:
                        assert run.flush()
                        killed = admin.execute(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = %s", (home,)).fetchone()[0]
                        assert killed >= 1
        assert run.flush()
        admin.close()
        assert not run.recorder.spool
        assert _count(url, f"SELECT count(*) FROM {_otrain(url, f'{home}_df')}") == 30
        assert _count(url, f"SELECT count(DISTINCT epoch) FROM {_otrain(url, f'{home}_df')}") == 30
        assert _count(url, "SELECT count(*) FROM dataflow_execution WHERE status = 'finished'") \
            == 1


OFFLINE = textwrap.dedent("""
    import sys
    import dlprov
    with dlprov.run(sys.argv[2], store=sys.argv[1], capture_environment=False) as run:
        with run.task("train") as train:
            for epoch in range(20):
                train.output("otrain", epoch=epoch, loss=1.0)
""")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_store_down_for_a_whole_process_is_replayed_once_by_dlprov_replay(
        tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    with postgresql_home("replay") as (url, home):
        wrong = url.replace("127.0.0.1:5432", f"127.0.0.1:{_closed_port()}")
        assert wrong != url
        cache = tmp_path / "cache"
        done = subprocess.run([sys.executable, "-c", OFFLINE, wrong, f"{home}_df"], capture_output=True,
                              text=True, timeout=60, env={"XDG_CACHE_HOME": str(cache),
                                                          "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr  # training went on without its store
        assert "cannot write provenance" in done.stderr
        spooled = sorted(cache.rglob("*.jsonl"))
        assert len(spooled) == 1
        kept = tmp_path / "kept.jsonl"
        shutil.copy(spooled[0], kept)

        result = CliRunner().invoke(cli, ["replay", "--store", url, str(spooled[0].parent)])
        assert result.exit_code == 0, result.output
        assert "replayed 1 spool files" in result.output
        assert not spooled[0].exists()
        assert _count(url, f"SELECT count(*) FROM {_otrain(url, f'{home}_df')}") == 20
        assert _count(url, "SELECT count(*) FROM dataflow_execution WHERE status = 'finished'") \
            == 1

        again = CliRunner().invoke(cli, ["replay", "--store", url, str(kept)])  # a 2nd time
        assert again.exit_code == 0, again.output
        assert "(0 records written" in again.output
        assert _count(url, f"SELECT count(*) FROM {_otrain(url, f'{home}_df')}") == 20
        assert _count(url, "SELECT count(*) FROM task") == 1


def test_replay_leaves_the_files_of_live_processes_and_reports_a_store_still_down(
        tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    import os
    (folder / f"{os.getpid()}.jsonl").write_text('["$batch", "b1"]\n')
    broken = tmp_path / "broken.db"
    broken.mkdir()  # a directory where the SQLite file should be
    dead = tmp_path / "dead.jsonl"
    dead.write_text('["$batch", "b2"]\n["spec", "mnist", {"tag": "mnist"}]\n')
    runner = CliRunner()
    live = runner.invoke(cli, ["replay", "--store", str(tmp_path / "ok.db"), str(folder)])
    assert live.exit_code == 0 and "1 of live processes skipped" in live.output
    down = runner.invoke(cli, ["replay", "--store", str(broken), str(dead)])
    assert down.exit_code == 1 and "kept" in down.output and dead.exists()
