"""A store on each backend for the recorder's tests, and counting what landed in it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import postgresql_home


@dataclass
class Target:
    """A store (``url``) and the dataflow tag whose set tables the test reads back."""
    url: str
    df_tag: str

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith("postgresql") else "sqlite"

    def table(self, set_tag: str) -> str:
        """The set table's name as SQL."""
        if self.backend == "postgresql":
            return f'"{self.df_tag}"."{set_tag}"'
        return f"{self.df_tag}__{set_tag}"

    def scalar(self, statement: str):
        engine = create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                return conn.execute(text(statement)).scalar()
        finally:
            engine.dispose()

    def rows(self, statement: str) -> list[tuple]:
        engine = create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(statement))]
        finally:
            engine.dispose()


def open_target(backend: str, tmp_path: Path, prefix: str):
    """A context manager giving a fresh :class:`Target` on ``backend``."""
    from contextlib import contextmanager

    @contextmanager
    def made():
        if backend == "sqlite":
            yield Target(f"sqlite:///{tmp_path / 'store.db'}", "mnist")
            return
        with postgresql_home(prefix) as (url, home):
            yield Target(url, f"{home}_df")
    return made()
