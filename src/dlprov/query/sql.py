"""Read-only SQL over a store, with a dataflow's set tables under their bare names.

In PostgreSQL each dataflow is a schema, so ``SET search_path`` does it. SQLite has one
namespace, so the set tables are stored as ``<df_tag>__<set>`` and exposed to one connection
as temporary views named after the sets: the paper's Listing 4 runs as printed. The original's
``SET SCHEMA "tag";`` prefix and ``"tag".set`` names work too (:mod:`dlprov.query.original`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Connection

from dlprov.model.spec import DataflowSpec
from dlprov.query.catalogue import choose_dataflow
from dlprov.query.original import choose_schema, qualify_sets, split_set_schema
from dlprov.query.guard import ReadLimits, run_read_only
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store, as_store


@dataclass
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def sql(statement: str, *, store: Store | str | None = None, dataflow: str | None = None,
        params: dict[str, Any] | None = None, read_url: str | None = None,
        timeout: float | None = None, max_rows: int | None = None) -> QueryResult:
    """Run one read-only SQL statement; the set names of ``dataflow`` (default: the only or most
    recent one) resolve to its tables.

    Only a query is run (see :mod:`dlprov.query.guard`): anything that would write, or reach
    outside the store, raises ReadOnlyViolation. ``timeout`` (seconds; default
    ``$DLPROV_SQL_TIMEOUT`` or 30, 0 for none) and ``max_rows`` (default 100,000; 0 for none)
    bound it: past them, QueryLimitExceeded. ``read_url`` runs it through another URL of the
    same database instead of ``store``, e.g. as a PostgreSQL role that may only read.
    """
    set_schema, statement = split_set_schema(statement)
    return _run(statement, as_store(read_url if read_url is not None else store),
                choose_schema(set_schema, dataflow), params,
                ReadLimits.resolve(timeout, max_rows), user_sql=True)


def builtin_sql(statement: str, *, store: Store | str | None, dataflow: str | None,
                params: dict[str, Any] | None = None, max_rows: int | None = None,
                spec: DataflowSpec | None = None) -> QueryResult:
    """Run a statement dlprov wrote itself (a question's, a curve's): as :func:`sql`, over the
    dataflow's bare set names and read-only, but without parsing it (see
    :func:`~dlprov.query.guard.run_read_only`). Never give it text a user wrote. ``spec``: the
    dataflow's spec the statement was written from (its sets are exposed without reading it
    again)."""
    return _run(statement, as_store(store), dataflow, params, ReadLimits.resolve(None, max_rows),
                user_sql=False, spec=spec)


def _run(statement: str, store: Store, dataflow: str | None, params: dict[str, Any] | None,
         limits: ReadLimits, *, user_sql: bool, spec: DataflowSpec | None = None) -> QueryResult:
    known = spec

    def expose_dataflow(conn: Connection) -> None:
        spec = known if known is not None else choose_dataflow(conn, dataflow)
        preparer = conn.dialect.identifier_preparer
        if store.backend == "postgresql":
            # The dataflow's schema first, then wherever the core tables already resolve.
            current = conn.exec_driver_sql("SHOW search_path").scalar()
            conn.exec_driver_sql(f"SET search_path TO {preparer.quote(spec.tag)}, {current}")
            return
        for statement in set_views(spec, preparer):
            conn.exec_driver_sql(statement)

    with store.read(prepare=expose_dataflow) as conn:
        if user_sql:
            statement = qualify_sets(statement, conn.dialect.name, _set_locator(conn))
        columns, rows = run_read_only(conn, statement, params, limits, parse=user_sql)
    return QueryResult(columns, rows)


def set_views(spec: DataflowSpec, preparer: Any) -> list[str]:
    """SQLite's ``CREATE TEMP VIEW`` statements naming each set table of ``spec`` by its set
    (``preparer``: the dialect's identifier preparer, for quoting)."""
    views = []
    for set_tag in spec.sets:
        # The table's name only: building a Table per set cost more than the query itself.
        _, name = s.set_table_location("sqlite", spec.tag, set_tag)
        views.append(f"CREATE TEMP VIEW {preparer.quote(set_tag)} AS "
                     f"SELECT * FROM main.{preparer.quote(name)}")
    return views


def _set_locator(conn: Connection) -> Callable[[str, str], tuple[str | None, str] | None]:
    """Where ``"tag".set`` is on this connection's backend, for sets of stored dataflows."""
    specs: dict[str, DataflowSpec | None] = {}

    def locate(df_tag: str, set_tag: str) -> tuple[str | None, str] | None:
        key = df_tag.lower()
        if key not in specs:
            found = read_spec(conn, key)
            specs[key] = None if found is None else found[2]
        spec = specs[key]
        if spec is None or set_tag.lower() not in spec.sets:
            return None
        return s.set_table_location(conn.dialect.name, spec.tag, set_tag.lower())
    return locate


def set_tables(store: Store | str | None = None,
               dataflow: str | None = None) -> dict[str, list[str]]:
    """The set tables of a dataflow and their columns, as `dlprov sql` exposes them."""
    store = as_store(store)
    with store.read() as conn:
        spec = choose_dataflow(conn, dataflow)
        return {set_tag: [c.name for c in s.set_table(conn.dialect.name, spec, set_tag).columns]
                for set_tag in spec.sets}

