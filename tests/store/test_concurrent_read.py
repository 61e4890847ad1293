"""Reading a store while another process writes to it (WAL): readers are never locked out.

The writer is a separate process that captures continuously, then prints ``DONE`` and stays
alive until its stdin closes, so that every read below happens while it holds the store open.
This process is the reader, both with plain ``sqlite3`` (no busy timeout: a lock would raise at
once) and through :meth:`dlprov.store.store.Store.read`.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from dlprov.errors import StoreUnavailable
from dlprov.store.store import Store

STEPS = 400

WRITER = textwrap.dedent("""
    import sys, time
    import dlprov

    steps = int(sys.argv[2])
    with dlprov.run("busy", store=sys.argv[1], exec_tag="writer") as run:
        with run.task("train") as train:
            for step in range(steps):
                train.output("otrain", epoch=step, loss=1.0 / (step + 1))
                if step == 0:
                    run.flush()
                    print("STARTED", flush=True)
                time.sleep(0.005)
    print("DONE", flush=True)
    sys.stdin.read()
""")


def _count_sqlite(path: Path) -> int:
    # timeout=0: a reader that had to wait for the writer's lock raises "database is locked".
    conn = sqlite3.connect(path, timeout=0)
    try:
        return conn.execute("SELECT count(*) FROM busy__otrain").fetchone()[0]
    finally:
        conn.close()


def _count_store(store: Store) -> int:
    with store.read() as conn:
        return conn.execute(text("SELECT count(*) FROM busy__otrain")).scalar_one()


def _stderr(proc: subprocess.Popen) -> str:
    """The writer's stderr, for a failure message (stopping it first, so the read ends)."""
    if proc.poll() is None:
        proc.kill()
    return proc.stderr.read()


def test_reader_sees_rows_grow_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "DLPROV_FLUSH_INTERVAL": "0.05"}
    env.pop("DLPROV_STORE", None)
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(STEPS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    started, done = threading.Event(), threading.Event()

    def watch() -> None:
        for line in proc.stdout:
            if line.strip() == "STARTED":
                started.set()
            elif line.strip() == "DONE":
                done.set()
        started.set()  # the writer died: stop waiting

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    store = Store(path)
    seen: list[tuple[int, int]] = []
    errors: list[str] = []
    slowest = 0.0
    try:
        assert started.wait(30) and proc.poll() is None, _stderr(proc)
        deadline = time.monotonic() + 60
        while not done.is_set():
            assert proc.poll() is None, f"the writer died:\n{_stderr(proc)}"
            assert time.monotonic() < deadline, "the writer never finished"
            begun = time.monotonic()
            try:
                counts = (_count_sqlite(path), _count_store(store))
            except (sqlite3.OperationalError, OperationalError, StoreUnavailable) as exc:
                errors.append(str(exc))  # "database is locked", typically
            else:
                seen.append(counts)
            slowest = max(slowest, time.monotonic() - begun)
            time.sleep(0.02)
        final = (_count_sqlite(path), _count_store(store))
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        store.dispose()
    assert proc.returncode == 0, proc.stderr.read()
    assert errors == [], f"{len(errors)} reads failed while the writer wrote"

    by_sqlite = [a for a, _ in seen]
    by_store = [b for _, b in seen]
    assert by_sqlite == sorted(by_sqlite) and by_store == sorted(by_store), "rows disappeared"
    # Each pair was read sqlite3 first: the second reader never sees fewer rows.
    assert all(a <= b for a, b in seen)
    assert len(set(by_sqlite)) >= 5, f"the reader saw too few stages of the write: {by_sqlite}"
    assert by_sqlite[0] < STEPS, "the reader only looked after the writer had finished"
    # A reader that waited on the writer's transactions would take a good part of a second.
    assert slowest < 1.0
    assert final == (STEPS, STEPS)

    conn = sqlite3.connect(path)
    try:
        epochs = [e for (e,) in conn.execute("SELECT epoch FROM busy__otrain ORDER BY id")]
        status = conn.execute("SELECT status FROM dataflow_execution").fetchall()
    finally:
        conn.close()
    assert epochs == [float(step) for step in range(STEPS)]
    assert status == [("finished",)]
