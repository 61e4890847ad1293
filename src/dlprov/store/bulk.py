"""Inserting many rows of one set table at once: the element path of the store writer.

SQLite takes the rows through the driver's ``executemany``. PostgreSQL takes them through
``COPY ... FROM STDIN`` (psycopg 3's ``Copy.write_row``), several times faster than
``executemany``, when every value has the Python type that capture produces for its column
(float, str without NUL, naive datetime, JSON, task id); rows with any other value go through
``executemany`` as before, so that odd values are stored, or refused, exactly as they were.
COPY's text format is used: PostgreSQL parses each value with the column's own input function,
as it does the untyped parameters of ``executemany``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

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
from sqlalchemy.exc import DBAPIError


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


@dataclass(frozen=True)
class SetTable:
    """A set's table and what inserting into it needs: the column positions, the driver-level
    INSERT, the bind processors of the columns that have one (timestamps, JSON) and, for
    PostgreSQL, the COPY statement and each column's Python type that COPY takes as is."""
    table: Table
    position: dict[str, int]
    insert_sql: str
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    copy_sql: str | None = None
    copy_types: tuple[type, ...] = ()

    @classmethod
    def of(cls, table: Table, dialect: Dialect) -> "SetTable":
        columns = [c for c in table.columns if c.name != "id"]
        quote = dialect.identifier_preparer
        names = ", ".join(quote.format_column(c) for c in columns)
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {quote.format_table(table)} ({names}) "
               f"VALUES ({', '.join([marker] * len(columns))})")
        processors = tuple((i, p) for i, c in enumerate(columns)
                           if (p := c.type.dialect_impl(dialect).bind_processor(dialect)))
        copy_sql, copy_types = None, ()
        if dialect.driver == "psycopg":
            kinds = [_copy_value_type(c.type, dialect) for c in columns]
            if None not in kinds:
                copy_sql = f"COPY {quote.format_table(table)} ({names}) FROM STDIN"
                copy_types = tuple(kinds)
        return cls(table, {c.name: i for i, c in enumerate(columns)}, sql, processors,
                   copy_sql, copy_types)


def insert_rows(conn: Connection, target: SetTable, rows: list[list]) -> bool:
    """Insert ``rows`` (lists in ``target``'s column order, bind processors not yet applied)
    into ``target`` within ``conn``'s transaction; returns whether COPY took them. The lists
    are changed in place."""
    for i, process in target.processors:
        for row in rows:
            if row[i] is not None:
                row[i] = process(row[i])
    if target.copy_sql is not None and _copyable(rows, target.copy_types):
        _copy(conn, target.copy_sql, rows)
        return True
    # Tuples straight to the driver: SQLAlchemy's per-row parameter processing costs several
    # us a row on the writer thread, all of it holding the GIL.
    conn.exec_driver_sql(target.insert_sql, [tuple(row) for row in rows])
    return False


def _copyable(rows: list[list], types: Sequence[type]) -> bool:
    """Whether every value of ``rows`` is None or of exactly its column's COPY type, no text
    holds NUL (PostgreSQL refuses it, and ``executemany``'s error says so) and no datetime has
    a time zone (``executemany`` converts it to local time; COPY would drop the zone)."""
    for i, kind in enumerate(types):
        found = {type(row[i]) for row in rows}
        found.discard(type(None))
        if found and found != {kind}:
            return False
        if not found:
            continue
        if kind is str and "\x00" in "".join(row[i] for row in rows if row[i] is not None):
            return False
        if kind is datetime and any(row[i].tzinfo is not None for row in rows
                                    if row[i] is not None):
            return False
    return True


def _copy(conn: Connection, sql: str, rows: list[list]) -> None:
    """``rows`` through ``COPY ... FROM STDIN``; a driver error is raised as SQLAlchemy's
    (``DataError``, ``OperationalError``, ...), as ``executemany`` would raise it."""
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error,
                                  dialect=conn.dialect) from exc
