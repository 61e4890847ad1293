"""A provenance store: one database reached through SQLAlchemy Core (SQLite or PostgreSQL)."""
from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy import Connection, Engine, event, inspect, select
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError

from dlprov.errors import StoreUnavailable
from dlprov.model.spec import DataflowSpec
from dlprov.store import schema
from dlprov.store.engine import (
    REMOTE_SCHEMES,
    file_identity,
    make_engine,
    resolve_store_url,
    sqlite_file,
)
from dlprov.store.recall import Recall
from dlprov.store.specs import read_spec

if TYPE_CHECKING:
    from dlprov.store import http
    from dlprov.store.writer import StoreWriter


class Store:
    """A store, given as a URL, an SQLite path, or nothing (``$DLPROV_STORE`` or ``./dlprov.db``).

    Engines are made on first use; the fixed tables are created by the first writer.
    An ``http://`` or ``https://`` URL names a ``dlprov serve`` server (see :mod:`.http`).
    """

    def __init__(self, store: str | os.PathLike | None = None) -> None:
        text = os.fspath(store if store is not None else os.environ.get("DLPROV_STORE") or "")
        self.remote = text.startswith(REMOTE_SCHEMES)
        self.url = text.rstrip("/") if self.remote else resolve_store_url(store)
        self._engines: dict[bool, Engine] = {}
        self._lock = threading.Lock()
        self._schema_ready = False
        self._read_checked = False
        _stores.add(self)

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
                engine = self._engines[read_only] = shared_engine(self.url, read_only)
            if not read_only and not self._schema_ready:
                self._create_schema(engine)
                self._schema_ready = True
            return engine

    def _create_schema(self, engine: Engine) -> None:
        try:
            version = _schema_version(engine)
            if version is not None and _verified_schemas.get(self.url) == version:
                return  # nothing changed the schema since it was last found whole
            if self._schema_present(engine):
                _verified_schemas[self.url] = version
                return
            with engine.begin() as conn:
                inspector = inspect(conn)
                # a store made before the metric summary: summarized once, from its elements
                unsummarized = (inspector.has_table(schema.dataflow.name)
                                and not inspector.has_table(schema.metric_summary.name))
                schema.metadata.create_all(conn)
                schema.add_missing_columns(conn)  # a store made before a column was added
                if unsummarized:
                    from dlprov.store.summary import backfill
                    backfill(conn)
            _verified_schemas[self.url] = _schema_version(engine)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot open store {self.safe_url}: {exc.orig}") from exc

    def _upgrade_for_readers(self) -> None:
        """A store made by an older dlprov lacks columns that readers select (``task.rank``):
        add them as a writer would, where the store can be written. A store without dlprov's
        tables is left alone (reading never creates one), and so is one that cannot be written
        (the reader then meets the missing column)."""
        try:
            found = _catalogue_columns(self.engine(read_only=True))
            if _SCHEMA_COLUMNS <= found or (schema.dataflow.name, "id") not in found:
                return
            with self._lock:
                self._schema_ready = False
            self.engine()
        except (StoreUnavailable, SQLAlchemyError):
            return

    @staticmethod
    def _schema_present(engine: Engine) -> bool:
        """Whether every table and column exists, so that a store made by an older dlprov still
        gets the tables and columns added since: one query of the database's catalogue (a
        SELECT per table, or reflection, cost a run several milliseconds)."""
        try:
            return _SCHEMA_COLUMNS <= _catalogue_columns(engine)
        except SQLAlchemyError:
            return False

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        from sqlalchemy.engine import make_url
        if self.remote:
            return self.url
        return make_url(self.url).render_as_string(hide_password=True)

    def writer(self, recall: Recall | None = None) -> "StoreWriter | http.HttpWriter":
        """A :class:`StoreWriter` for the recorder thread (an HTTP one for a remote store).
        ``recall``: the recorder's memory of its live runs (see :mod:`.recall`)."""
        from dlprov.store import http  # imported for writing only: reading stays light
        from dlprov.store.writer import StoreWriter

        if self.remote:
            return http.HttpWriter(self.url)
        # A recorder asks again after a failure: check the tables again (the file may have
        # been removed and made afresh since).
        with self._lock:
            self._schema_ready = False
        return StoreWriter(self.engine(), recall=recall, schema_whole=True)

    @contextmanager
    def read(self, prepare: Callable[[Connection], None] | None = None) -> Iterator[Connection]:
        """A connection for reading; it refuses to write. ``prepare`` runs first, while the
        connection may still make temporary objects (the dataflow's views for `dlprov sql`)."""
        if not self._read_checked:
            self._read_checked = True
            self._upgrade_for_readers()
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
            from dlprov.store import http

            found = http.get_json(self.url, f"/v1/dataflows/{http.segment(df_tag)}/spec")
            return DataflowSpec.from_dict(found) if found is not None else None
        if not self._has_tables():
            return None
        with self.read() as conn:
            found = read_spec(conn, df_tag)
        return found[2] if found else None

    def has_execution(self, exec_tag: str, *, other_than: str | None = None) -> bool:
        """Whether an execution tagged ``exec_tag`` is stored (False if the store can't be read);
        with ``other_than``, one whose key is not that (a remote store cannot tell: False)."""
        if self.remote:
            if other_than is not None:
                return False
            from dlprov.store import http

            try:
                return http.get_json(
                    self.url, f"/v1/runs/{http.segment(exec_tag)}/tasks") is not None
            except StoreUnavailable:
                return False
        if not self._has_tables():
            return False
        with self.read() as conn:
            query = select(schema.dataflow_execution.c.id).where(
                schema.dataflow_execution.c.tag == exec_tag)
            if other_than is not None:
                query = query.where(schema.dataflow_execution.c.uuid != other_than)
            return conn.execute(query).first() is not None

    def _has_tables(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(select(schema.dataflow.c.id).limit(1)).all()
            return True
        except (StoreUnavailable, SQLAlchemyError):
            return False

    def dispose(self) -> None:
        """Close this store's pooled connections (the engines are shared by the process's
        stores of the same URL: they reconnect when next used)."""
        with _shared_lock:
            shared = [e for (url, _), e in _shared.items() if url == self.url]
        for engine in {*self._engines.values(), *shared}:
            engine.dispose()
        self._engines.clear()


# The (table, column) pairs of the tables where unqualified names land.
_CATALOGUE_COLUMNS = {
    "sqlite": "SELECT m.name, c.name FROM sqlite_master AS m "
              "JOIN pragma_table_info(m.name) AS c WHERE m.type = 'table'",
    "postgresql": "SELECT table_name, column_name FROM information_schema.columns "
                  "WHERE table_schema = current_schema()",
}

_SCHEMA_COLUMNS = {(t.name, c.name) for t in schema.metadata.sorted_tables for c in t.columns}


# Per SQLite URL, the schema version last found whole (see _schema_version): a run's writer then
# skips the catalogue query (~1-3 ms of its thread per run, more with many dataflows).
_verified_schemas: dict[str, tuple[int, int, int] | None] = {}


def _schema_version(engine: Engine) -> tuple[int, int, int] | None:
    """An SQLite store's file (device, inode) and ``PRAGMA schema_version``, which every change
    of a table or column increments; None for PostgreSQL or an in-memory database (checked
    each time). A file replaced at the path has another inode while the engine's pooled
    connection keeps the old one open (see :func:`_reconnect_if_replaced`)."""
    database = sqlite_file(engine.url)
    found = file_identity(database) if database else None
    if found is None:
        return None
    try:
        with engine.connect() as conn:  # no transaction: a writer's would take the write lock
            version = conn.connection.driver_connection.execute(
                "PRAGMA schema_version").fetchone()[0]
    except (SQLAlchemyError, sqlite3.Error):
        return None
    return (*found, int(version))


def _catalogue_columns(engine: Engine) -> set[tuple[str, str]]:
    """The (table, column) pairs the database holds where dlprov's fixed tables go."""
    with engine.connect() as conn:
        return set(conn.exec_driver_sql(_CATALOGUE_COLUMNS[engine.dialect.name]).all())

# Engines are shared by every Store of one URL in a process: each dlprov.run makes a Store,
# and a new engine would compile every statement again (~10 ms of the writer thread per run).
_shared: dict[tuple[str, bool], Engine] = {}
_shared_lock = threading.Lock()


def shared_engine(url: str, read_only: bool = False) -> Engine:
    """The process's engine on ``url`` (see :func:`.engine.make_engine`)."""
    with _shared_lock:
        engine = _shared.get((url, read_only))
        if engine is None:
            engine = _shared[(url, read_only)] = make_engine(url, read_only=read_only)
            database = sqlite_file(url)
            if database:
                _reconnect_if_replaced(engine, database)
        return engine


def _reconnect_if_replaced(engine: Engine, path: str) -> None:
    """A pooled SQLite connection keeps the file it opened: if the path was deleted or now names
    another file, drop the connection rather than write where nobody reads. (The open file
    keeps its inode, so a new file at the path cannot have the same one.)"""

    @event.listens_for(engine, "connect")
    def _remember(_dbapi_connection, record) -> None:
        record.info["dlprov_file"] = file_identity(path)

    @event.listens_for(engine, "checkout")
    def _check(_dbapi_connection, record, _proxy) -> None:
        if record.info.get("dlprov_file") != file_identity(path):
            raise DisconnectionError(f"{path} was replaced or removed")


_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()
# The parent's engines, kept referenced in a forked child and never used there: collecting them
# would close the parent's connections from the child (SQLite's, or a socket's TLS session).
_inherited: list[Engine] = []


def _forget_engines_after_fork() -> None:
    # A child must not use its parent's pooled connections: it makes its own engines, and so
    # does every Store it inherited.
    global _shared_lock
    _inherited.extend(_shared.values())
    _shared.clear()
    _shared_lock = threading.Lock()
    for store in list(_stores):
        _inherited.extend(store._engines.values())
        store._engines = {}
        store._lock = threading.Lock()
        store._schema_ready = False


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def as_store(store: "Store | str | os.PathLike | None") -> Store:
    """``store`` if it is a :class:`Store`, else the store it names (see :class:`Store`)."""
    return store if isinstance(store, Store) else Store(store)
