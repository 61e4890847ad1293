"""Eight processes write to one store at once: every element arrives exactly once. A ninth,
killed with SIGKILL, leaves its task running and the rest of the store intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import postgresql_home

WORKERS, ELEMENTS = 8, 150

WORKER = textwrap.dedent("""
    import sys, time
    import dlprov
    store, df_tag, name, hang = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "hang"
    with dlprov.run(df_tag, store=store, exec_tag=name, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01, worker=name)
            for step in range(%d):
                train.output("otrain", epoch=step, loss=1.0 / (step + 1), worker=name)
                if step %% 25 == 0:
                    run.flush(timeout=None)
            if hang:
                run.flush(timeout=None)
                print("ready", flush=True)
                time.sleep(600)
""" % ELEMENTS)


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request, tmp_path: Path):
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db"), "mnist", "mnist__otrain"
        return
    with postgresql_home("conc") as (url, schema):
        yield url, f"{schema}_df", f'"{schema}_df"."otrain"'


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_eight_writers_at_once_and_one_killed(home, tmp_path: Path) -> None:
    store, df_tag, otrain = home
    env = {k: v for k, v in os.environ.items() if k != "DLPROV_STORE"}
    env["DLPROV_FLUSH_INTERVAL"] = "0.05"
    victim = subprocess.Popen([sys.executable, "-c", WORKER, store, df_tag, "victim", "hang"],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, store, df_tag, f"w{i}", "no"],
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
               for i in range(WORKERS)]
    try:
        assert victim.stdout.readline().strip() == "ready"
        victim.send_signal(signal.SIGKILL)
        for worker in workers:
            _, err = worker.communicate(timeout=90)
            assert worker.returncode == 0, err
            # Racing to create the schema may spool a batch for a retry; nothing is refused.
            assert "refused" not in err, err
    finally:
        victim.kill()
        victim.wait()
        for worker in workers:
            worker.kill()

    url = store if "://" in store else f"sqlite:///{store}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            per_worker = dict(conn.execute(text(
                f"SELECT worker, count(*) FROM {otrain} GROUP BY worker")).all())
            distinct = conn.execute(text(
                f"SELECT count(*) FROM (SELECT DISTINCT worker, epoch FROM {otrain}) d")
            ).scalar_one()
            statuses = dict(conn.execute(text(
                "SELECT e.tag, t.status FROM task t JOIN dataflow_execution e "
                "ON e.id = t.exec_id")).all())
            executions = dict(conn.execute(text(
                "SELECT tag, status FROM dataflow_execution")).all())
    finally:
        engine.dispose()
    expected = {f"w{i}": ELEMENTS for i in range(WORKERS)} | {"victim": ELEMENTS}
    assert per_worker == expected
    assert distinct == (WORKERS + 1) * ELEMENTS
    assert statuses == {f"w{i}": "finished" for i in range(WORKERS)} | {"victim": "running"}
    assert executions["victim"] == "running"
