"""One capture test, every backend: a fixture that yields a :class:`Backend` for SQLite, the real
PostgreSQL server and (where asked) a dlprov server over SQLite (``DLPROV_STORE=http://...``).

Tests capture into ``backend.url`` with dataflow ``backend.df_tag`` and read what was stored with
``backend.rows(set_tag, columns)``, straight from the database."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import postgresql_home


@dataclass
class Backend:
    name: str         # "sqlite", "postgresql" or "http"
    url: str          # what capture is given
    database: str     # the database behind it, read directly
    df_tag: str

    def _engine(self):
        return create_engine(self.database.replace("postgresql://", "postgresql+psycopg://", 1))

    def table(self, set_tag: str) -> str:
        if self.name == "postgresql":
            return f'"{self.df_tag}"."{set_tag}"'
        return f'"{self.df_tag}__{set_tag}"'

    def query(self, statement: str, **params) -> list[tuple]:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(statement), params)]
        finally:
            engine.dispose()

    def rows(self, set_tag: str, columns: str) -> list[tuple]:
        """``columns`` of the set's rows, in the order they were stored."""
        return self.query(f"SELECT {columns} FROM {self.table(set_tag)} ORDER BY id")

    def set_tables(self) -> set[str]:
        """The set tables of the dataflow, by set tag."""
        engine = self._engine()
        try:
            found = inspect(engine)
            if self.name == "postgresql":
                return set(found.get_table_names(schema=self.df_tag)) \
                    if self.df_tag in found.get_schema_names() else set()
            prefix = f"{self.df_tag}__"
            return {t[len(prefix):] for t in found.get_table_names() if t.startswith(prefix)}
        finally:
            engine.dispose()


@contextmanager
def backend_for(name: str, tmp_path: Path, prefix: str) -> Iterator[Backend]:
    """A fresh store of backend ``name``; PostgreSQL's schemas are dropped afterwards."""
    if name == "postgresql":
        with postgresql_home(prefix) as (url, home):
            yield Backend(name, url, url, f"{home}_df")  # set tables: a schema per dataflow
        return
    database = f"sqlite:///{tmp_path / 'store.db'}"
    if name == "sqlite":
        yield Backend(name, database, database, prefix)
        return
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from dlprov.server.background import serve_in_thread
    with serve_in_thread(str(tmp_path / "store.db")) as url:
        yield Backend(name, url, database, prefix)
