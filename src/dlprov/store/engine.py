"""Opening a store: URL resolution and SQLAlchemy engines tuned per backend."""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from dlprov.errors import StoreUnavailable

DEFAULT_STORE = "dlprov.db"
STORE_ENV = "DLPROV_STORE"


def resolve_store_url(store: str | os.PathLike | None = None) -> str:
    """The SQLAlchemy URL of a store given as a URL, a path to an SQLite file, or nothing.

    Nothing means ``$DLPROV_STORE``, else ``./dlprov.db``. ``postgresql://`` URLs use psycopg 3.
    """
    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    text = os.fspath(store)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    url = make_url(text)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreUnavailable(
            f"unsupported store URL {text!r}: use a path to an SQLite file, sqlite:///PATH "
            f"or postgresql://USER@HOST/DB")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, read_only: bool) -> None:
    # pysqlite's own transaction handling is turned off: we issue BEGIN ourselves (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    if not read_only:
        # WAL lets readers (another process running `dlprov sql`) work while a run writes.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine on ``url``. Writers take SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``) so
    that two processes never deadlock upgrading a read lock; readers use deferred transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if read_only and database and not Path(database).exists():
            raise StoreUnavailable(f"no store at {database}: run something with dlprov first")
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Readers get fresh connections (NullPool): `dlprov sql` adds temporary views to its
        # connection, which must not leak into the next reader.
        pool = {"poolclass": NullPool} if read_only else {}
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **pool)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            _sqlite_pragmas(dbapi_connection, read_only)

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    options = {"pool_pre_ping": True}
    if read_only:
        options["execution_options"] = {"postgresql_readonly": True}
    return create_engine(url, **options)
