"""The store writer's statements, compiled once per dialect and run at driver level.

SQLAlchemy's ``Connection.execute`` of a Core statement costs tens of microseconds a call even
with its compiled-statement cache (cache key, parameter processing, result set-up), and its
``exec_driver_sql`` still 10-15 us (execution context, result object, events): most of a run's
fixed writer cost, all of it holding the GIL that the training thread wants. The writer's
statements are few and their shapes repeat, so each is compiled once per dialect and per tuple
of parameter names (:func:`prepare`), and then run on the DB-API cursor of the transaction's
connection with a plain tuple (:func:`run`, :meth:`Prepared.execute`): under a microsecond of
Python around the driver's call.

The SQL is SQLAlchemy's own compilation of the statement (PostgreSQL's bind casts included) and
each parameter goes through its type's bind processor (SQLite's datetime text, JSON, booleans),
taken from that compilation: the values stored are those ``Connection.execute`` would store.
A driver error is raised as SQLAlchemy raises it (``DBAPIError.instance``: ``IntegrityError``,
``OperationalError``...), marked with the store's name, and a connection the server dropped is
invalidated, as SQLAlchemy does; a bind processor's ``TypeError`` or ``ValueError`` refuses the
record as before. :func:`observe` shows the statements sent (tests, benchmarks).
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Connection, Dialect, Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError, NoResultFound
from sqlalchemy.sql import ClauseElement

from dlprov.store import schema as s

_PYFORMAT = re.compile(r"%\(([^)]+)\)s")
# Statements are keyed by table and column names, so a long-lived writer seeing many dataflows
# could grow the cache without end: past this size it starts again.
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Prepared:
    """A compiled statement: driver-level SQL (the dialect's paramstyle, positional), the names
    of its parameters in order and the bind processor of each position that has one."""
    sql: str
    names: tuple[str, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    _get: Callable[[Mapping[str, Any]], tuple] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the parameters' values in order, taken from a mapping in C (frozen: set once here)
        getter = itemgetter(*self.names) if len(self.names) > 1 else (
            (lambda values: (values[self.names[0]],)) if self.names else (lambda values: ()))
        object.__setattr__(self, "_get", getter)

    def params(self, values: Mapping[str, Any]) -> tuple:
        """The driver's parameter tuple for ``values`` (every name of the statement present)."""
        row = self._get(values)
        if not self.processors:
            return row
        row = list(row)
        for at, process in self.processors:
            if row[at] is not None:
                row[at] = process(row[at])
        return tuple(row)

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run the statement for one set of values; returns the DB-API cursor (``fetchone``,
        ``fetchall``, iteration)."""
        return run(conn, self.sql, self.params(values))

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple | None:
        """The first row the statement returns for ``values``, None if it returns none."""
        return run(conn, self.sql, self.params(values)).fetchone()

    def one(self, conn: Connection, values: Mapping[str, Any]) -> tuple:
        """The one row the statement returns for ``values``; ``NoResultFound`` if none (as
        SQLAlchemy's ``Result.one``; a second row is not looked for)."""
        row = run(conn, self.sql, self.params(values)).fetchone()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """The first column of the first row returned, None if no row."""
        row = run(conn, self.sql, self.params(values)).fetchone()
        return None if row is None else row[0]

    def execute_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run the statement for each of ``rows`` (the driver's ``executemany``)."""
        params = [self.params(row) for row in rows]
        if params:
            run(conn, self.sql, params, many=True)


# -- running SQL at driver level ------------------------------------------------------------------

_observers: list[Callable[[str, Any, bool], None]] = []


@contextmanager
def observe(callback: Callable[[str, Any, Any], None]) -> Iterator[None]:
    """Call ``callback(sql, parameters, many)`` for each statement :func:`run` sends while in
    the block, and ``callback("copy", (copy_sql, binary_types), rows)`` for each COPY of
    :mod:`.bulk` (``binary_types``: psycopg's type names for ``Copy.set_types`` in COPY's
    binary format, else None). The writer's statements bypass SQLAlchemy's cursor events."""
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


def tell_observers(sql: str, params: Any, many: Any) -> None:
    """Show a statement about to be sent to the :func:`observe` callbacks."""
    for callback in _observers:
        callback(sql, params, many)


def run(conn: Connection, sql: str, params: Any = (), many: bool = False) -> Any:
    """``sql`` with ``params`` (a tuple; for ``many``, a list of tuples) on the DB-API cursor of
    ``conn``'s connection, in its transaction; returns the cursor. Errors as SQLAlchemy's."""
    if _observers:
        tell_observers(sql, params, many)
    cursor = conn.connection.driver_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn, sql, params, exc) from exc
    return cursor


def driver_error(conn: Connection, sql: str, params: Any, exc: Exception) -> DBAPIError:
    """The driver's ``exc`` as SQLAlchemy would raise it from ``conn``: its ``DBAPIError``
    subclass, marked with the store (see :mod:`.failures`), and the connection invalidated
    if the server dropped it (the pool then opens a new one)."""
    from dlprov.store.failures import mark

    dialect = conn.dialect
    fairy = conn.connection
    dropped = dialect.is_disconnect(exc, fairy.dbapi_connection, None)
    error = DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                connection_invalidated=dropped, dialect=dialect)
    if dropped:
        conn.invalidate(exc)
    mark(error, conn.engine.url.render_as_string(hide_password=False))
    return error


_cache: dict[tuple, Prepared] = {}
_lock = threading.Lock()


def prepare(dialect: Dialect, key: tuple, build: Callable[[], ClauseElement],
            column_keys: Sequence[str] | None = None) -> Prepared:
    """The statement ``build()`` makes, compiled for ``dialect`` the first time ``key`` (which
    must name everything the statement depends on: table, columns, conflict handling) is
    asked for, from then on taken from the cache. ``column_keys``: the columns an INSERT or
    UPDATE without ``values()`` sets (as ``Connection.execute`` derives from its parameters)."""
    cache_key = (dialect.name, dialect.driver, *key)
    found = _cache.get(cache_key)
    if found is None:
        found = compile_statement(dialect, build(), column_keys)
        with _lock:
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[cache_key] = found
    return found


def compile_statement(dialect: Dialect, statement: ClauseElement,
                      column_keys: Sequence[str] | None = None) -> Prepared:
    """``statement`` compiled for ``dialect`` as a :class:`Prepared`."""
    compiled = statement.compile(dialect=dialect,
                                 column_keys=list(column_keys) if column_keys else None)
    sql = compiled.string
    if compiled.positiontup is not None:  # qmark (SQLite), numeric: the order is known
        names = tuple(compiled.positiontup)
    else:  # pyformat (psycopg): named in the text; made positional, the driver's fast path
        unescape = {v: k for k, v in compiled.escaped_bind_names.items()}
        names = tuple(unescape.get(n, n) for n in _PYFORMAT.findall(sql))
        sql = _PYFORMAT.sub("%s", sql)
    processors = []
    for at, name in enumerate(names):
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((at, process))
    return Prepared(sql, names, tuple(processors))


# -- the writer's statements ----------------------------------------------------------------------

def insert(dialect: Dialect, table: Table, keys: tuple[str, ...], *,
           conflict: tuple[str, ...] | None = None, overwrite: tuple[str, ...] = (),
           returning: tuple[str, ...] = ()) -> Prepared:
    """``INSERT INTO table (keys)``, the keys that are not columns of ``table`` left out (as
    ``Connection.execute`` leaves out parameters no column takes). ``conflict``: the columns of
    the unique index whose conflict is handled (``()``: any), by overwriting the columns
    ``overwrite`` with the new row's, or else by doing nothing; ``returning``: the columns the
    statement returns."""
    def build() -> ClauseElement:
        statement = dialect_insert(dialect, table)
        if conflict is not None:
            index = [table.c[c] for c in conflict] or None
            written = [k for k in overwrite if k in table.c]
            statement = (statement.on_conflict_do_update(
                index_elements=index, set_={k: statement.excluded[k] for k in written})
                if written else statement.on_conflict_do_nothing(index_elements=index))
        if returning:
            statement = statement.returning(*(table.c[c] for c in returning))
        return statement

    columns = [k for k in keys if k in table.c]
    return prepare(dialect, ("insert", table.fullname, keys, conflict, overwrite, returning),
                   build, columns)


def update_by_id(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> Prepared:
    """``UPDATE table SET keys WHERE id = :row_id`` (keys that are not columns left out)."""
    columns = [k for k in keys if k in table.c and k != "id"]
    return prepare(dialect, ("update", table.fullname, keys),
                   lambda: update(table).where(table.c.id == bindparam("row_id")),
                   [*columns, "row_id"])


def select_by(dialect: Dialect, table: Table, wanted: tuple[str, ...], key: str) -> Prepared:
    """``SELECT wanted FROM table WHERE key = :key``."""
    return prepare(dialect, ("select", table.fullname, wanted, key),
                   lambda: select(*(table.c[c] for c in wanted))
                   .where(table.c[key] == bindparam("key", type_=table.c[key].type)))


def claim(dialect: Dialect, count: int) -> Prepared:
    """The batch ledger's claim of ``count`` batch ids (``b0``... with times ``t0``...): inserted
    if absent, returning those inserted."""
    ledger = s.applied_batch

    def build() -> ClauseElement:
        rows = [{"batch_id": bindparam(f"b{i}", type_=ledger.c.batch_id.type),
                 "applied_at": bindparam(f"t{i}", type_=ledger.c.applied_at.type)}
                for i in range(count)]
        return (dialect_insert(dialect, ledger).values(rows).on_conflict_do_nothing()
                .returning(ledger.c.batch_id))

    return prepare(dialect, ("claim", count), build)


def applied(dialect: Dialect, count: int) -> Prepared:
    """Which of ``count`` batch ids (``b0``...) the ledger holds."""
    ledger = s.applied_batch
    return prepare(dialect, ("applied", count), lambda: select(ledger.c.batch_id).where(
        ledger.c.batch_id.in_([bindparam(f"b{i}", type_=ledger.c.batch_id.type)
                               for i in range(count)])))


def dialect_insert(dialect: Dialect, table: Table):
    """The backend's INSERT, the one with ``on_conflict_do_*``."""
    # imported here: the PostgreSQL dialect (and asyncio) is a tenth of a reader's startup
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as backend_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as backend_insert
    return backend_insert(table)
