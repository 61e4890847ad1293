"""Fault injection on SQLite and PostgreSQL: the store killed, locked, filled, made read-only
and the spool folder filled at random (seeded) points of training processes; healed, replayed:
every element stored exactly once and every run consistent. The same campaign as
``benchmarks/faults.py``, small. Also: the issue's full disk (a 512 KiB tmpfs), a store file
removed mid-run, and what is said when nothing can be written anywhere."""
from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"
_spec = importlib.util.spec_from_file_location("dlprov_faults_benchmark", BENCHMARK)
faults = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = faults  # dataclasses look their module up there
_spec.loader.exec_module(faults)

MOUNT = faults.can_mount()
needs_mount = pytest.mark.skipif(
    not MOUNT, reason="needs root and tmpfs mounts (`mount -t tmpfs`) to fill a disk or make it "
                      "read-only; chmod does not stop root")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_element_lands_once_whatever_faults_hit_the_run(backend: str) -> None:
    if backend == "postgresql" and not faults._pg_available():
        pytest.skip(f"no PostgreSQL server at {faults.PG_URL}")
    trial = faults.campaign(backend, faults=6, seed=7, processes=2, epochs_per_fault=10)
    assert trial.faults == 6, trial
    assert trial.outages >= 1, f"no fault reached the recorder: {trial}"
    assert (trial.lost, trial.duplicated, trial.refused) == (0, 0, 0), trial
    assert trial.stored == trial.sent and trial.consistent, trial


FULL_DISK = textwrap.dedent("""
    import sys
    import dlprov
    with dlprov.run("mnist", store=sys.argv[1], capture_environment=False) as run:
        with run.task("train") as train:
            for epoch in range(400):
                train.output("otrain", epoch=epoch, blob="x" * 2000)
""")


@needs_mount
def test_a_full_disk_loses_nothing_once_space_comes_back(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with faults.tmpfs("512k") as disk:
        store = disk / "store.db"
        done = subprocess.run([sys.executable, "-c", FULL_DISK, str(store)], capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "DLPROV_CACHE_DIR": str(cache)})
        assert done.returncode == 0, done.stderr
        assert "No space left on device" in done.stderr or "full" in done.stderr
        spooled = sorted(cache.rglob("*.jsonl"))
        assert spooled, done.stderr  # kept in the cache folder, and the message says where
        assert f"kept in {spooled[0]}" in done.stderr
        assert "LOST" not in done.stderr

        assert faults._mount(["-o", "remount,size=64m", str(disk)])
        result = CliRunner().invoke(cli, ["replay", "--store", str(store)],
                                    env={"DLPROV_CACHE_DIR": str(cache)})
        assert result.exit_code == 0, result.output
        conn = sqlite3.connect(store)
        try:
            count, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT epoch) FROM mnist__otrain").fetchone()
            status = conn.execute("SELECT status FROM dataflow_execution").fetchall()
        finally:
            conn.close()
        assert (count, distinct) == (400, 400)
        assert status == [("finished",)]
        assert not list(cache.rglob("*.jsonl"))


@needs_mount
def test_nothing_writable_holds_records_in_memory_and_counts_the_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    monkeypatch.setenv("DLPROV_SPOOL_MEMORY", "30")
    with faults.tmpfs("4m") as disk, faults.tmpfs("1m") as cache:
        monkeypatch.setenv("DLPROV_CACHE_DIR", str(cache / "dlprov"))
        run = dlprov.run("mnist", store=disk / "store.db", capture_environment=False)
        train = run.task("train")
        train.output("otrain", epoch=0, loss=1.0)
        assert run.flush()
        faults.fill(disk)
        faults.fill(cache)
        for epoch in range(1, 51):
            train.output("otrain", epoch=epoch, loss=1.0)
            if epoch % 10 == 0:
                assert run.flush()
        spool = run.recorder.spool
        assert spool.held_records == 30 and spool.lost == 20
        said = "\n".join(r.getMessage() for r in caplog.records)
        assert "kept in memory (up to 30 records" in said and "records LOST" in said

        faults.unfill(disk)
        faults.unfill(cache)
        train.end()
        run.end()
        said = "\n".join(r.getMessage() for r in caplog.records)
        assert "20 records were LOST while store" in said  # the true count, once back
        conn = sqlite3.connect(disk / "store.db")
        try:
            epochs = [e for (e,) in conn.execute("SELECT epoch FROM mnist__otrain ORDER BY id")]
        finally:
            conn.close()
        # What was held in memory is written; exactly the 20 counted as lost are missing.
        assert len(epochs) == len(set(epochs)) == 51 - 20
        run.store.dispose()


def test_a_store_file_removed_mid_run_gets_the_run_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    store = tmp_path / "store.db"
    with dlprov.run("mnist", store=store, exec_tag="moved", capture_environment=False) as run:
        with run.task("train") as train:
            for epoch in range(5):
                train.output("otrain", epoch=epoch, loss=1.0)
            assert run.flush()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{store}{suffix}").unlink(missing_ok=True)
            for epoch in range(5, 10):
                train.output("otrain", epoch=epoch, loss=1.0)
    assert run.flush()
    assert run.recorder.rejected == 0 and not run.recorder.spool
    conn = sqlite3.connect(store)
    try:
        epochs = [e for (e,) in conn.execute("SELECT epoch FROM mnist__otrain ORDER BY id")]
        runs = conn.execute("SELECT tag, status FROM dataflow_execution").fetchall()
        tasks = conn.execute("SELECT status FROM task").fetchall()
    finally:
        conn.close()
    assert epochs == [float(e) for e in range(5, 10)]  # the first five went with the old file
    assert runs == [("moved", "finished")] and tasks == [("finished",)]
    said = [r.getMessage() for r in caplog.records if "had lost" in r.getMessage()]
    assert len(said) == 1 and "not in it" in said[0]


@needs_mount
def test_a_batch_the_disk_cannot_take_whole_leaves_no_part_in_the_spool() -> None:
    # A batch cut in the middle would be replayed beside its whole copy kept elsewhere.
    from dlprov.recorder.spool import Spool
    with faults.tmpfs("64k") as disk:
        spool = Spool(disk / "1.jsonl")
        spool.append([("element", "k", "otrain", {"epoch": 0.0})], "small")
        before = spool.path.read_bytes()
        with pytest.raises(OSError):
            spool.append([("element", "k", "otrain", {"blob": "x" * 1000})] * 200, "big")
        assert spool.path.read_bytes() == before
        assert [b for b, _ in spool.load()] == ["small"]
