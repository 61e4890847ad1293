"""A training process killed with SIGKILL loses at most the last flush interval of provenance.

The first process captures one element per step and prints ``<step> <time.monotonic()>`` after
each capture; the test kills it mid-run and then reads the store file it left behind.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import dlprov
from dlprov.query.catalogue import list_runs, list_tasks
from dlprov.store.store import Store

FLUSH_INTERVAL = 0.2
MARGIN = 0.5          # the writer thread may lag a tick behind its interval
RUN_FOR = 2.5         # seconds of training before the kill

TRAINING = textwrap.dedent("""
    import sys, time
    import dlprov

    with dlprov.run("crash", store=sys.argv[1], exec_tag="killed") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01, optimizer="sgd")
            step = 0
            while True:
                train.output("otrain", epoch=step, loss=1.0 / (step + 1))
                print(step, time.monotonic(), flush=True)
                step += 1
                time.sleep(0.005)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_keeps_everything_older_than_one_flush_interval(tmp_path: Path) -> None:
    store = tmp_path / "crash.db"
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    env = {**os.environ, "DLPROV_FLUSH_INTERVAL": str(FLUSH_INTERVAL)}
    env.pop("DLPROV_STORE", None)
    proc = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    printed: list[tuple[int, float]] = []
    watchdog = threading.Timer(60, proc.kill)  # a child that hangs silently must not hang us
    watchdog.start()
    try:
        first = None
        for line in proc.stdout:
            step, at = line.split()
            printed.append((int(step), float(at)))
            first = first if first is not None else float(at)
            if time.monotonic() - first > RUN_FOR:
                break
        assert printed, f"the training process printed nothing; stderr:\n{proc.stderr.read()}"
        # time.monotonic() is one system-wide clock on the platforms we run on, so the child's
        # times and ours compare.
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        rest, err = proc.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err
    printed += [(int(s), float(t)) for s, t in (line.split() for line in rest.splitlines())]

    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = [int(e) for (e,) in conn.execute("SELECT epoch FROM crash__otrain ORDER BY id")]
        executions = conn.execute(
            "SELECT tag, status, end_time FROM dataflow_execution").fetchall()
        tasks = conn.execute("SELECT status, end_time FROM task").fetchall()
        inputs = conn.execute("SELECT learning_rate, optimizer FROM crash__itrain").fetchall()
    finally:
        conn.close()

    old_enough = {step for step, at in printed if at < killed_at - FLUSH_INTERVAL - MARGIN}
    assert len(old_enough) > 10, "the run was too short to say anything"
    missing = sorted(old_enough - set(stored))
    assert not missing, f"{len(missing)} steps captured well before the kill are lost: " \
                        f"{missing[:10]}"
    assert len(stored) == len(set(stored)), "a step was stored twice"
    # Batches are written in order, each in one transaction: what survives is a prefix.
    assert stored == list(range(len(stored)))
    # A step is captured before it is printed, so at most one unprinted step may be stored.
    assert len(stored) <= len(printed) + 1
    assert executions == [("killed", "running", None)]
    assert tasks == [("running", None)]
    assert inputs == [(0.01, "sgd")]
    # Nobody will end them: readers show the killed process's run and task as unknown.
    (run,) = list_runs(Store(store))
    assert (run["exec_tag"], run["status"], run["pid"]) == ("killed", "unknown", proc.pid)
    assert [t["status"] for t in list_tasks("killed", Store(store))] == ["unknown"]


def test_a_run_whose_process_lives_is_shown_running(tmp_path: Path) -> None:
    store = Store(tmp_path / "live.db")
    with dlprov.run("live", store=store, exec_tag="alive") as run:
        with run.task("train") as train:
            train.output("otrain", loss=1.0)
            run.flush()
            assert [r["status"] for r in list_runs(store)] == ["running"]
            assert [t["status"] for t in list_tasks("alive", store)] == ["running"]
    assert [r["status"] for r in list_runs(store)] == ["finished"]
    assert [t["status"] for t in list_tasks("alive", store)] == ["finished"]
