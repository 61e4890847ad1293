"""Shared fixtures: every test gets its own real SQLite store file."""
from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

PG_URL = os.environ.get("DLPROV_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")


def postgresql_admin():
    """An autocommit connection to the test server; skips the test, with the reason, only
    where no server answers."""
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {PG_URL}: {exc}")


@contextmanager
def postgresql_home(prefix: str = "t") -> Iterator[tuple[str, str]]:
    """(store URL, schema) on the real PostgreSQL server: the core tables go to a fresh schema,
    a dataflow tagged ``<schema>_df`` to its own; both are dropped afterwards. Skips the test,
    with the reason, only where no server answers."""
    admin = postgresql_admin()
    home = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{home}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{home}", home
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{home}_df" CASCADE')
        admin.execute(f'DROP SCHEMA "{home}" CASCADE')
        admin.close()


@contextmanager
def store_on(backend: str, folder: Path, name: str) -> Iterator[tuple[str, str]]:
    """(store URL, dataflow tag) of an empty store on ``backend``: the SQLite file
    ``<folder>/<name>.db`` with dataflow ``name``, or a :func:`postgresql_home` on PostgreSQL
    with its dataflow schema."""
    if backend == "sqlite":
        yield str(folder / f"{name}.db"), name
        return
    with postgresql_home(name) as (url, home):
        yield url, f"{home}_df"


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Environment variables a test (or a benchmark function it calls) sets are undone when it
    ends: a leaked DLPROV_CAPTURE_ENVIRONMENT=0 once silenced every later test's probe."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _release_stores() -> Iterator[None]:
    """When a test ends, its recorders are flushed and stopped and the process's shared engines
    closed: every test has stores of its own (a file, a schema, a database), and a pool kept per
    store for the whole session would exhaust PostgreSQL's connections (100 here) and the
    process's file descriptors, and leave hundreds of recorders to flush at exit."""
    yield
    from dlprov.recorder.recorder import close_all
    from dlprov.store import store as store_module
    close_all(timeout=10)
    with store_module._shared_lock:
        engines = list(store_module._shared.values())
        store_module._shared.clear()
    for engine in engines:
        engine.dispose()


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Path of a fresh SQLite store, also set as ``$DLPROV_STORE``; cwd is ``tmp_path``."""
    path = tmp_path / "dlprov.db"
    monkeypatch.setenv("DLPROV_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def sql(store_path: Path):
    """Run SQL on the store file directly with sqlite3 (no dlprov code in between)."""
    def query(statement: str, *params):
        with sqlite3.connect(store_path) as conn:
            return conn.execute(statement, params).fetchall()
    return query
