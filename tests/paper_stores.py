"""Stores for tests that use the DLProv paper's own dataflow tags (``KerasProv-example``, ...):
on PostgreSQL a tag is a schema of the whole database, so each such test gets a database of
its own, and tests running at the same time never share the paper's schema names."""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import PG_URL, postgresql_admin

BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def fresh_postgresql_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards (skips the test
    where no server answers)."""
    admin = postgresql_admin()
    name = f"paper_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        # FORCE: this process's pooled connections would otherwise keep the database.
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def paper_store(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL on ``backend`` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'paper.db'}"
        return
    with fresh_postgresql_database() as url:
        yield url
