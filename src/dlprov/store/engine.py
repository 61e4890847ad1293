"""Opening a store: URL resolution and SQLAlchemy engines tuned per backend."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from dlprov.errors import StoreUnavailable
from dlprov.store.failures import mark

DEFAULT_STORE = "dlprov.db"
STORE_ENV = "DLPROV_STORE"
# How long SQLite waits for another process's lock before "database is locked" (seconds).
BUSY_TIMEOUT_ENV = "DLPROV_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT_S = 30.0
# How long a PostgreSQL connection attempt may take (unless the URL sets connect_timeout).
CONNECT_TIMEOUT_S = 10
_URL_FORMS = "a path to an SQLite file, sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"


# A store named by one of these is a `dlprov serve` server (dlprov.store.http), not a database.
REMOTE_SCHEMES = ("http://", "https://")


def resolve_store_url(store: str | os.PathLike | None = None) -> str:
    """The SQLAlchemy URL of a store given as a URL, a path to an SQLite file, or nothing.

    Nothing means ``$DLPROV_STORE``, else ``./dlprov.db``. ``postgresql://`` URLs use psycopg 3.
    A malformed URL or an unknown scheme raises :class:`StoreUnavailable` naming it.
    """
    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    text = os.fspath(store)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    url = _parse_url(text)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreUnavailable(f"unsupported store URL {_masked(text)!r}: use {_URL_FORMS}")
    return url.render_as_string(hide_password=False)


def _parse_url(text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as exc:
        # make_url raises a bare ValueError for a bad port ("invalid literal for int()").
        reason = "bad port" if isinstance(exc, ValueError) and "int()" in str(exc) else exc
        raise StoreUnavailable(
            f"malformed store URL {_masked(text)!r} ({reason}): use {_URL_FORMS}") from None


def _masked(text: str) -> str:
    """``text`` with the password of ``scheme://user:password@…`` hidden (for messages)."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", text)


def busy_timeout_s() -> float:
    """SQLite's wait for a lock held by another process: ``$DLPROV_BUSY_TIMEOUT`` seconds, else
    30. A bad value raises :class:`StoreUnavailable` naming the variable."""
    value = os.environ.get(BUSY_TIMEOUT_ENV)
    if not value:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 10**6:
        raise StoreUnavailable(f"{BUSY_TIMEOUT_ENV}={value!r} is not a number of seconds")
    return seconds


def _sqlite_pragmas(dbapi_connection, read_only: bool, busy_ms: int) -> None:
    # pysqlite's own transaction handling is turned off: we issue BEGIN ourselves (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
    if not read_only:
        # WAL lets readers (another process running `dlprov sql`) work while a run writes.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _open_read_only_media(engine: Engine, database: str) -> None:
    """Reading a store on a read-only mount: SQLite cannot make the WAL index (``-shm``) beside
    it, so it is opened as immutable (nobody can change it there), or read-only when a ``-wal``
    file is pending. Decided at each connection: a mount can change under a long-lived process."""

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect, _record, cargs, cparams):
        if os.access(Path(database).parent, os.W_OK):
            return None
        wal = Path(f"{database}-wal")
        flag = "mode=ro" if wal.exists() and wal.stat().st_size else "immutable=1"
        cargs[0] = f"file:{quote(database)}?{flag}"
        cparams["uri"] = True
        return None


def sqlite_file(url: str | URL) -> str | None:
    """The file an SQLite URL names; None for another database, an in-memory one or a
    ``file:`` URI."""
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def file_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``, None if there is none: a file removed and
    made again at the path has another one while the old one is still open."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine on ``url``. Writers take SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``) so
    that two processes never deadlock upgrading a read lock; readers use deferred transactions.
    Reading never creates a store: a missing SQLite file raises :class:`StoreUnavailable`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file(parsed)
        in_file = database is not None
        if read_only and in_file and not Path(database).exists():
            raise StoreUnavailable(f"no store at {database}: run something with dlprov first, "
                                   f"or give the store with --store or ${STORE_ENV}")
        if in_file and not read_only:
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot make the folder of store {database}: {exc.strerror}; give a "
                    f"writable path with --store or ${STORE_ENV}") from None
        # Readers get fresh connections (NullPool): `dlprov sql` adds temporary views to its
        # connection, which must not leak into the next reader.
        pool = {"poolclass": NullPool} if read_only else {}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)

        @event.listens_for(engine, "do_connect")
        def _wait_for_locks(_dialect, record, _cargs, cparams):
            # Read at each connection: engines are shared for the life of the process.
            cparams["timeout"] = record.info["dlprov_busy_s"] = busy_timeout_s()

        if in_file and read_only:
            _open_read_only_media(engine, database)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, record):
            _sqlite_pragmas(dbapi_connection, read_only, int(record.info["dlprov_busy_s"] * 1000))

        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

        @event.listens_for(engine, "begin")
        def _on_begin(connection):
            from dlprov.store.statements import run  # driver level: each transaction's start

            run(connection, begin)

        return _naming_the_store(engine, url)
    options: dict = {"pool_pre_ping": True}
    if "connect_timeout" not in parsed.query:
        # An unreachable host must not hang a command for the system's TCP timeout (minutes).
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if read_only:
        options["execution_options"] = {"postgresql_readonly": True}
    return _naming_the_store(create_engine(url, **options), url)


def _naming_the_store(engine: Engine, url: str) -> Engine:
    """Errors raised through ``engine`` carry the store's name (see :mod:`.failures`)."""

    @event.listens_for(engine, "handle_error")
    def _mark(context) -> None:
        if context.sqlalchemy_exception is not None:
            mark(context.sqlalchemy_exception, url)

    return engine
