"""A provenance store: one database reached through SQLAlchemy Core (SQLite or PostgreSQL)."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dlprov.errors import StoreUnavailable
from dlprov.model.spec import DataflowSpec
from dlprov.store import http, schema
from dlprov.store.engine import make_engine, resolve_store_url
from dlprov.store.specs import read_spec
from dlprov.store.writer import StoreWriter


class Store:
    """A store, given as a URL, an SQLite path, or nothing (``$DLPROV_STORE`` or ``./dlprov.db``).

    Engines are made on first use; the fixed tables are created by the first writer.
    An ``http://`` or ``https://`` URL names a ``dlprov serve`` server (see :mod:`.http`).
    """

    def __init__(self, store: str | os.PathLike | None = None) -> None:
        text = os.fspath(store if store is not None else os.environ.get("DLPROV_STORE") or "")
        self.remote = http.is_remote(text)
        self.url = text.rstrip("/") if self.remote else resolve_store_url(store)
        self._engines: dict[bool, Engine] = {}
        self._lock = threading.Lock()
        self._schema_ready = False

    @property
    def backend(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"http"``."""
        if self.remote:
            return "http"
        return "postgresql" if self.url.startswith("postgresql") else "sqlite"

    def engine(self, *, read_only: bool = False) -> Engine:
        if self.remote:
            raise StoreUnavailable(
                f"{self.url} is a dlprov server, not a database: SQL over a remote store is "
                f"done with the server's read endpoints (GET {self.url}/v1/runs, /v1/sets/..., "
                f"/v1/query/q1...)")
        with self._lock:
            engine = self._engines.get(read_only)
            if engine is None:
                engine = self._engines[read_only] = make_engine(self.url, read_only=read_only)
            if not read_only and not self._schema_ready:
                self._create_schema(engine)
                self._schema_ready = True
            return engine

    def _create_schema(self, engine: Engine) -> None:
        try:
            if self._schema_present(engine):
                return
            with engine.begin() as conn:
                schema.metadata.create_all(conn)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot open store {self.safe_url}: {exc.orig}") from exc

    @staticmethod
    def _schema_present(engine: Engine) -> bool:
        """Whether every table exists: an empty SELECT on each, far cheaper than reflection, so
        a store made by an older dlprov still gets the tables added since."""
        try:
            with engine.connect() as conn:
                for table in schema.metadata.sorted_tables:
                    conn.execute(select(*table.primary_key.columns or table.columns).limit(0)).all()
            return True
        except SQLAlchemyError:
            return False

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        from sqlalchemy.engine import make_url
        if self.remote:
            return self.url
        return make_url(self.url).render_as_string(hide_password=True)

    def writer(self) -> "StoreWriter | http.HttpWriter":
        """A :class:`StoreWriter` for the recorder thread (an HTTP one for a remote store)."""
        if self.remote:
            return http.HttpWriter(self.url)
        return StoreWriter(self.engine())

    @contextmanager
    def read(self, prepare: Callable[[Connection], None] | None = None) -> Iterator[Connection]:
        """A connection for reading; it refuses to write. ``prepare`` runs first, while the
        connection may still make temporary objects (the dataflow's views for `dlprov sql`)."""
        try:
            conn = self.engine(read_only=True).connect()
            if prepare is not None:
                prepare(conn)
            if self.backend == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = ON")
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot read store {self.safe_url}: {exc.orig}") from exc
        with conn:
            yield conn

    def load_spec(self, df_tag: str) -> DataflowSpec | None:
        """The latest stored spec of ``df_tag``, or None."""
        if self.remote:
            found = http.get_json(self.url, f"/v1/dataflows/{http.segment(df_tag)}/spec")
            return DataflowSpec.from_dict(found) if found is not None else None
        if not self._has_tables():
            return None
        with self.read() as conn:
            found = read_spec(conn, df_tag)
        return found[2] if found else None

    def has_execution(self, exec_tag: str) -> bool:
        """Whether an execution tagged ``exec_tag`` is stored (False if the store can't be read)."""
        if self.remote:
            try:
                return http.get_json(
                    self.url, f"/v1/runs/{http.segment(exec_tag)}/tasks") is not None
            except StoreUnavailable:
                return False
        if not self._has_tables():
            return False
        with self.read() as conn:
            return conn.execute(select(schema.dataflow_execution.c.id)
                                .where(schema.dataflow_execution.c.tag == exec_tag)).first() \
                is not None

    def _has_tables(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(select(schema.dataflow.c.id).limit(1)).all()
            return True
        except (StoreUnavailable, SQLAlchemyError):
            return False

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def as_store(store: "Store | str | os.PathLike | None") -> Store:
    """``store`` if it is a :class:`Store`, else the store it names (see :class:`Store`)."""
    return store if isinstance(store, Store) else Store(store)
