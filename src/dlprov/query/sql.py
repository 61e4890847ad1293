"""Read-only SQL over a store, with a dataflow's set tables under their bare names.

In PostgreSQL each dataflow is a schema, so ``SET search_path`` does it. SQLite has one
namespace, so the set tables are stored as ``<df_tag>__<set>`` and exposed to one connection
as temporary views named after the sets: the paper's Listing 4 runs as printed.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from dlprov.errors import DlprovError, ReadOnlyViolation
from dlprov.query.catalogue import choose_dataflow
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store

_WRITE_SIGNS = ("readonly database", "read-only transaction", "not authorized",
                "cannot modify")
# What a read may do in SQLite; anything else (writes, DDL, ATTACH, PRAGMA) is denied at prepare.
_SQLITE_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ,
                                  sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE,
                                  sqlite3.SQLITE_TRANSACTION})

_SQLITE_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list",
                                  "index_info", "database_list", "foreign_key_list"})


def _allow_reads_only(action: int, name: str | None, value: str | None, *_: Any) -> int:
    if action in _SQLITE_READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (
            name in _SQLITE_READ_PRAGMAS
            or (name == "query_only" and str(value).lower() in ("on", "1", "true"))):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@dataclass
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def sql(statement: str, *, store: Store | str | None = None, dataflow: str | None = None,
        params: dict[str, Any] | None = None) -> QueryResult:
    """Run one read-only SQL statement; the set names of ``dataflow`` (default: the only or most
    recent one) resolve to its tables. A statement that would write raises ReadOnlyViolation."""
    store = as_store(store)
    chosen: list[str] = []

    def expose_dataflow(conn: Connection) -> None:
        spec = choose_dataflow(conn, dataflow)
        chosen.append(spec.tag)
        preparer = conn.dialect.identifier_preparer
        if store.backend == "postgresql":
            # The dataflow's schema first, then wherever the core tables already resolve.
            current = conn.exec_driver_sql("SHOW search_path").scalar()
            conn.exec_driver_sql(f"SET search_path TO {preparer.quote(spec.tag)}, {current}")
            return
        for set_tag in spec.sets:
            # The table's name only: building a Table per set cost more than the query itself.
            _, name = s.set_table_location(conn.dialect.name, spec.tag, set_tag)
            conn.exec_driver_sql(
                f"CREATE TEMP VIEW {preparer.quote(set_tag)} AS "
                f"SELECT * FROM main.{preparer.quote(name)}")
        conn.connection.dbapi_connection.set_authorizer(_allow_reads_only)

    try:
        with store.read(prepare=expose_dataflow) as conn:
            result = conn.execute(text(statement), params or {})
            if not result.returns_rows:
                raise ReadOnlyViolation("the statement returns no rows; dlprov sql only reads")
            return QueryResult(list(result.keys()), [tuple(row) for row in result])
    except DBAPIError as exc:
        message = str(exc.orig)
        if any(sign in message.lower() for sign in _WRITE_SIGNS):
            raise ReadOnlyViolation(
                f"dlprov sql is read-only; the statement would write ({message})") from None
        raise DlprovError(f"SQL error: {message}") from None


def set_tables(store: Store | str | None = None,
               dataflow: str | None = None) -> dict[str, list[str]]:
    """The set tables of a dataflow and their columns, as `dlprov sql` exposes them."""
    store = as_store(store)
    with store.read() as conn:
        spec = choose_dataflow(conn, dataflow)
        return {set_tag: [c.name for c in s.set_table(conn.dialect.name, spec, set_tag).columns]
                for set_tag in spec.sets}

