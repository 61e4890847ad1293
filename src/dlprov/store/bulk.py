"""Inserting many rows of one set table at once: the element path of the store writer.

SQLite takes the rows as multi-row ``INSERT ... VALUES (...), (...)`` statements of up to its
variable limit: one statement per few thousand rows costs less than half of ``executemany``'s
per-row step (``benchmarks/ingest.py``). PostgreSQL takes them through
``COPY ... FROM STDIN`` (psycopg 3's ``Copy.write_row``), several times faster than
``executemany``, when every value has the Python type that capture produces for its column
(float, str without NUL, naive datetime, JSON, task id); rows with any other value go through
``executemany`` as before, so that odd values are stored, or refused, exactly as they were.
COPY's binary format is used where every column of the table, as the server holds it, has a
type whose binary form psycopg writes from that Python type (integer, bigint, double precision,
text, timestamp): no value is formatted as text and parsed again, ~5x less writer CPU a row.
Integers outside the column's range are not COPY's to take (the binary form would wrap them).
A table with another column type (JSON) takes COPY's text format: PostgreSQL parses each value
with the column's own input function, as it does the untyped parameters of ``executemany``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Dialect,
    Double,
    Integer,
    Table,
    Text,
    TypeDecorator,
)

from dlprov.store.statements import driver_error, run, tell_observers


def _copy_value_type(column_type: Any, dialect: Dialect) -> type | None:
    """The one Python type whose values COPY may take as they are, for a column of this type
    (after its bind processor); None: rows of this table always use ``executemany``."""
    impl = column_type  # as declared: the dialect's implementations rename the classes
    if isinstance(impl, TypeDecorator):  # JsonValue: its processor ends in its impl's
        impl = impl.load_dialect_impl(dialect)
    if isinstance(impl, Double):
        return float
    if isinstance(impl, Integer):
        return int
    if isinstance(impl, DateTime) and not impl.timezone:
        return datetime
    if isinstance(impl, Text):
        return str
    if isinstance(impl, JSON) and dialect.name == "postgresql":
        from psycopg.types.json import Json  # what SQLAlchemy's psycopg JSON processor makes
        return Json
    return None


# A column type as PostgreSQL names it (``regtype``) -> the Python type COPY takes for it and
# psycopg's name of its binary form.
_BINARY_FORMS: dict[str, tuple[type, str]] = {
    "integer": (int, "int4"),
    "bigint": (int, "int8"),
    "double precision": (float, "float8"),
    "text": (str, "text"),
    "timestamp without time zone": (datetime, "timestamp"),
}
# The integers each binary form holds: [-limit, limit).
_INT_LIMITS = {"int4": 2**31, "int8": 2**63}


def server_column_types(conn: Connection, table: Table) -> dict[str, str]:
    """{column: its type as PostgreSQL names it} of ``table`` as the server holds it (a store
    made by other software may differ from what the spec would make)."""
    name = conn.dialect.identifier_preparer.format_table(table)
    rows = run(conn, "SELECT attname, atttypid::regtype::text FROM pg_attribute "
                     "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
               (name,)).fetchall()
    return dict(rows)


def _binary_forms(columns: Sequence, kinds: Sequence[type],
                  server_types: dict[str, str] | None) -> tuple[str, ...] | None:
    """psycopg's binary form of each column, where every column has one matching the Python
    type COPY takes for it; else None (COPY's text format)."""
    if not server_types:
        return None
    forms = []
    for column, kind in zip(columns, kinds):
        found = _BINARY_FORMS.get(server_types.get(column.name, ""))
        if found is None or found[0] is not kind:
            return None
        forms.append(found[1])
    return tuple(forms)


def _plain_type(column_type: Any) -> type | None:
    """The Python type whose values the column's bind processor leaves as they are (floats for
    a float column: its processor only calls ``float``); None: always process."""
    return float if isinstance(column_type, Double) else None


@dataclass(frozen=True)
class SetTable:
    """A set's table and what inserting into it needs: the column positions, the driver-level
    INSERT, the bind processors of the columns that have one (timestamps, JSON, floats), each
    with the Python type it would leave unchanged (or None), and, for PostgreSQL, the COPY
    statement, each column's Python type that COPY takes as is and, for COPY's binary format,
    each column's binary form (psycopg's type name)."""
    table: Table
    position: dict[str, int]
    insert_sql: str
    processors: tuple[tuple[int, Callable[[Any], Any], type | None], ...]
    copy_sql: str | None = None
    copy_types: tuple[type, ...] = ()
    copy_binary: tuple[str, ...] | None = None

    @classmethod
    def of(cls, table: Table, dialect: Dialect,
           server_types: dict[str, str] | None = None) -> "SetTable":
        """``server_types``: :func:`server_column_types` of the table (PostgreSQL); without
        it, COPY's text format."""
        columns = [c for c in table.columns if c.name != "id"]
        quote = dialect.identifier_preparer
        names = ", ".join(quote.format_column(c) for c in columns)
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {quote.format_table(table)} ({names}) "
               f"VALUES ({', '.join([marker] * len(columns))})")
        processors = tuple((i, p, _plain_type(c.type)) for i, c in enumerate(columns)
                           if (p := c.type.dialect_impl(dialect).bind_processor(dialect)))
        copy_sql, copy_types, binary = None, (), None
        if dialect.driver == "psycopg":
            kinds = [_copy_value_type(c.type, dialect) for c in columns]
            if None not in kinds:
                binary = _binary_forms(columns, kinds, server_types)
                copy_sql = (f"COPY {quote.format_table(table)} ({names}) FROM STDIN"
                            + (" (FORMAT BINARY)" if binary else ""))
                copy_types = tuple(kinds)
        return cls(table, {c.name: i for i, c in enumerate(columns)}, sql, processors,
                   copy_sql, copy_types, binary)


def insert_rows(conn: Connection, target: SetTable, rows: list[Sequence]) -> bool:
    """Insert ``rows`` (sequences in ``target``'s column order, bind processors not yet applied)
    into ``target`` within ``conn``'s transaction; returns whether COPY took them."""
    return insert_flat(conn, target, list(chain.from_iterable(rows)))[0]


def insert_flat(conn: Connection, target: SetTable, flat: list) -> tuple[bool, range | None]:
    """:func:`insert_rows` for the rows' values in one list, row after row (the writer's
    buffer, left unchanged), returning also the ids the rows were given, in order, where the
    backend tells them without a query (SQLite: a transaction holds the write lock, and each
    row gets the id after the table's highest, so a block's ids run on to the last one's), else
    None."""
    width = len(target.position)
    if conn.dialect.name == "sqlite":
        last = _insert_multirow(conn, target, flat)
        count = len(flat) // width
        return False, range(last - count + 1, last + 1)
    rows = list(zip(*[iter(flat)] * width))
    if target.processors:  # lists where a value changes
        rows = [list(row) for row in rows]
    for i, process, _ in target.processors:
        for row in rows:
            if row[i] is not None:
                row[i] = process(row[i])
    if target.copy_sql is not None and _copyable(rows, target.copy_types, target.copy_binary):
        _copy(conn, target, rows)
        return True, None
    # Tuples straight to the driver: SQLAlchemy's per-row parameter processing costs several
    # us a row on the writer thread, all of it holding the GIL.
    run(conn, target.insert_sql, [tuple(row) for row in rows], many=True)
    return False, None


def _insert_multirow(conn: Connection, target: SetTable, flat: list) -> int:
    """The rows' values ``flat`` as few ``INSERT ... VALUES (...), (...), ...`` statements,
    processed a column at a time (a column already of its plain type is left alone; ``flat``
    itself is not changed). Returns the id of the last row."""
    width = len(target.position)
    copied = False
    for i, process, plain in target.processors:
        column = flat[i::width]
        if plain is not None and set(map(type, column)) <= {plain, type(None)}:
            continue
        if not copied:
            flat, copied = list(flat), True
        flat[i::width] = [None if value is None else process(value) for value in column]
    last = 0
    for sql, values in multirow_statements(target.insert_sql, flat, width,
                                           _variable_limit(conn) // width):
        last = run(conn, sql, values).lastrowid
    return last


def multirow_statements(insert_sql: str, flat: list, width: int, fit: int
                        ) -> Iterator[tuple[str, list]]:
    """The multi-row INSERTs (statement, its values) of the rows ``flat`` holds (``width``
    values a row), from the one-row ``insert_sql``, ``fit`` rows at most in one statement: of
    the row counts :func:`statement_sizes` gives."""
    head = insert_sql[:insert_sql.rindex(" VALUES ") + 8]
    group = insert_sql[len(head):]
    start = 0
    for count in statement_sizes(len(flat) // width, fit):
        yield _values_sql(head, group, count), flat[start * width:(start + count) * width]
        start += count


# The most rows in one INSERT: larger statements save little, and each size kept prepared
# takes SQLite's memory
MAX_ROWS_PER_STATEMENT = 1024


def statement_sizes(rows: int, fit: int) -> list[int]:
    """How many rows each INSERT of ``rows`` rows takes, when ``fit`` fit in one: as many of
    the largest power of two allowed as there are, then the rest in powers of two, largest
    first. Statements of a few sizes only: the driver's statement cache keeps them prepared,
    while a statement of a new row count is prepared anew, and preparing one of 900 rows costs
    ~6x executing it (a recorder's batches have a new count each time)."""
    largest = 1 << (max(1, min(fit, MAX_ROWS_PER_STATEMENT)).bit_length() - 1)
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def _variable_limit(conn: Connection) -> int:
    """How many ``?`` one SQLite statement may hold (32,766 by default since 3.32)."""
    import sqlite3

    getlimit = getattr(conn.connection.driver_connection, "getlimit", None)  # Python 3.11+
    return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999


@lru_cache(maxsize=64)
def _values_sql(head: str, group: str, count: int) -> str:
    return head + ", ".join([group] * count)


def _copyable(rows: Sequence[Sequence], types: Sequence[type],
              binary: Sequence[str] | None = None) -> bool:
    """Whether every value of ``rows`` is None or of exactly its column's COPY type, no text
    holds NUL (PostgreSQL refuses it, and ``executemany``'s error says so), no datetime has
    a time zone (``executemany`` converts it to local time; COPY would drop the zone) and, in
    COPY's ``binary`` forms, every integer fits its column's (its binary form would wrap it;
    ``executemany``'s error says it is out of range)."""
    for i, kind in enumerate(types):
        column = list(map(itemgetter(i), rows))  # each check a pass in C, not a Python loop
        found = set(map(type, column))
        found.discard(type(None))
        if found and found != {kind}:
            return False
        if not found:
            continue
        if kind is str and "\x00" in "".join(filter(None, column)):
            return False
        if kind is datetime and any(value.tzinfo is not None for value in column
                                    if value is not None):
            return False
        if kind is int and binary is not None:
            numbers = [value for value in column if value is not None]
            limit = _INT_LIMITS[binary[i]]
            if min(numbers) < -limit or max(numbers) >= limit:
                return False
    return True


def _copy(conn: Connection, target: SetTable, rows: list[list]) -> None:
    """``rows`` through ``target``'s ``COPY ... FROM STDIN``; a driver error is raised as
    SQLAlchemy's (``DataError``, ``OperationalError``, ...), as ``executemany`` would raise it."""
    driver, sql = conn.connection.driver_connection, target.copy_sql
    tell_observers("copy", (sql, target.copy_binary), rows)
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            if target.copy_binary:
                copy.set_types(target.copy_binary)
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn, sql, None, exc) from exc
