"""An SQLite extract of a store holding exactly one model's derivation trace, so that the
questions about that model (Q7–Q12) can be answered from a package alone.

The extract has the store's schema (:class:`dlprov.store.store.Store` makes the core tables,
:func:`dlprov.store.specs.save_spec` the set tables) and the store's rows with their ids: the
dataflow's catalogue and spec versions, the executions of the trace's tasks and their
environments, the tasks, the dependencies and usages among them, the set elements they
produced or used, and their trained models. The questions then run unchanged on it.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, or_, select
from sqlalchemy.types import NullType

from dlprov.errors import DlprovError
from dlprov.model.names import task_column
from dlprov.query.building import Context
from dlprov.query.lineage import trace_tasks
from dlprov.query.models import ModelRef
from dlprov.store import schema as s
from dlprov.store.specs import save_spec
from dlprov.store.store import Store

# Catalogue rows save_spec writes with its own ids; they are replaced by the store's.
_CATALOGUE = (s.data_dependency, s.attribute, s.data_set, s.data_transformation,
              s.dataflow_version, s.dataflow)


def write_extract(ctx: Context, model: str, path: str | os.PathLike) -> tuple[ModelRef, int]:
    """Write the extract of ``model``'s trace (see the module) to the new SQLite file ``path``.
    Returns the model and how many tasks the trace has."""
    found, task_ids = trace_tasks(ctx, model)
    path = Path(path)
    if path.exists():
        path.unlink()
    target = Store(path)
    try:
        with ctx.store.read() as src, target.engine().begin() as dst:
            save_spec(dst, ctx.spec)
            for table in _CATALOGUE:
                dst.execute(table.delete())
            _copy_catalogue(src, dst, ctx.spec.tag)
            tasks = _copy(src, dst, s.task, s.task.c.id.in_(task_ids))
            exec_ids = sorted({row["exec_id"] for row in tasks})
            _copy(src, dst, s.dataflow_execution, s.dataflow_execution.c.id.in_(exec_ids))
            _copy(src, dst, s.environment, s.environment.c.exec_id.in_(exec_ids))
            for table, a, b in ((s.task_dependency, "task_id", "depends_on_id"),
                                (s.task_usage, "task_id", "producer_task_id")):
                _copy(src, dst, table, table.c[a].in_(task_ids) & table.c[b].in_(task_ids))
            _copy(src, dst, s.trained_model, s.trained_model.c.task_id.in_(task_ids))
            # the summary of the traced tasks' metrics (a reader checks that it adds up)
            _copy(src, dst, s.metric_summary, s.metric_summary.c.task_id.in_(task_ids))
            for set_tag in ctx.spec.sets:
                source = s.set_table(src.dialect.name, ctx.spec, set_tag)
                columns = [source.c[task_column(t)]
                           for t in ctx.spec.transformations_of(set_tag)]
                if columns:
                    _copy(src, dst, source, or_(*(c.in_(task_ids) for c in columns)),
                          into=s.set_table("sqlite", ctx.spec, set_tag))
    finally:
        target.dispose()
    # one self-contained file: no write-ahead log beside it
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    return found, len(task_ids)


def _copy_catalogue(src: Connection, dst: Connection, df_tag: str) -> None:
    df_ids = [row["id"] for row in _copy(src, dst, s.dataflow, s.dataflow.c.tag == df_tag)]
    _copy(src, dst, s.dataflow_version, s.dataflow_version.c.df_id.in_(df_ids))
    _copy(src, dst, s.data_transformation, s.data_transformation.c.df_id.in_(df_ids))
    sets = _copy(src, dst, s.data_set, s.data_set.c.df_id.in_(df_ids))
    ds_ids = [row["id"] for row in sets]
    _copy(src, dst, s.attribute, s.attribute.c.ds_id.in_(ds_ids))
    _copy(src, dst, s.data_dependency, s.data_dependency.c.ds_id.in_(ds_ids))


def _raw(table: Table) -> Table:
    """``table`` with untyped columns: values pass as the driver stores them (JSON text, times
    as text in SQLite), so that the extract holds the very values of the store."""
    return Table(table.name, MetaData(), *(Column(c.name, NullType()) for c in table.columns),
                 schema=table.schema)


def _copy(src: Connection, dst: Connection, table: Table, where: Any, *,
          into: Table | None = None) -> list[dict[str, Any]]:
    """Copy the rows of ``table`` matching ``where`` (a condition on ``table``'s columns) into
    ``into`` (default: the same table) in ``dst``; returns them."""
    source = _raw(table)
    condition = where
    for column in table.columns:  # the condition names the typed table: point it at the raw one
        condition = _replace(condition, column, source.c[column.name])
    rows = [dict(row._mapping) for row in src.execute(select(source).where(condition))]
    if rows:
        dst.execute(_raw(into if into is not None else table).insert(),
                    [{name: _plain(v) for name, v in row.items()} for row in rows])
    return rows


def _replace(clause: Any, old: Column, new: Column) -> Any:
    from sqlalchemy.sql.visitors import replacement_traverse
    return replacement_traverse(clause, {}, lambda element: new if element is old else None)


def _plain(value: Any) -> Any:
    """A value read from another backend (PostgreSQL gives objects) as SQLite stores it."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def model_ids(conn: Connection) -> Iterable[tuple[str, str | None]]:
    """(model_id, sha256) of the trained models an extract holds."""
    return conn.execute(select(s.trained_model.c.model_id, s.trained_model.c.sha256)).all()


# -- reading an extract that came from elsewhere ---------------------------------------------
class ExtractRefused(DlprovError, ValueError):
    """An extract holds what dlprov never writes (a view, a trigger, a virtual table), or a
    query on it ran out of time."""


def open_untrusted(path: str | os.PathLike, seconds: float) -> sqlite3.Connection:
    """A read-only connection to the extract at ``path`` whose statements are interrupted after
    ``seconds`` (see :func:`time_limit`), once :func:`refuse_foreign_objects` found nothing."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        time_limit(conn, seconds)
        refuse_foreign_objects(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def refuse_foreign_objects(conn: sqlite3.Connection) -> None:
    """Raise :class:`ExtractRefused` if the database holds a view, a trigger or a virtual table:
    dlprov's extracts hold none, and a view (one named like a table, say) runs whatever query it
    was given as soon as a reader selects from it. Reading the schema runs nothing."""
    try:
        found = conn.execute("SELECT type, name FROM sqlite_master WHERE type IN "
                             "('view', 'trigger') OR (type = 'table' AND "
                             "upper(sql) LIKE 'CREATE VIRTUAL TABLE%') LIMIT 5").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ExtractRefused(f"the extract is not a readable SQLite database: {exc}") from None
    if found:
        named = ", ".join(f"{kind} {name!r}" for kind, name in found)
        raise ExtractRefused(f"the extract holds {named}, which dlprov never writes: refused "
                             f"(its queries would run whatever the package's author wrote)")


def time_limit(dbapi_connection: sqlite3.Connection, seconds: float) -> None:
    """Interrupt any statement on the connection that runs past ``seconds`` from now (SQLite's
    progress handler; the statement fails with "interrupted")."""
    deadline = time.monotonic() + seconds
    dbapi_connection.set_progress_handler(lambda: time.monotonic() > deadline, 1000)


def compare_extracts(packaged: sqlite3.Connection, fresh: sqlite3.Connection,
                     ) -> tuple[list[str], int]:
    """How the package's extract differs from one made now from the store: a line per table
    whose records the store lacks or holds otherwise (the first one shown), and how many records
    the store holds beyond the package's (recorded later: a test of the model, say)."""
    problems: list[str] = []
    extra = 0
    present = _columns(fresh)
    for table, columns in _columns(packaged).items():
        if table not in present:
            problems.append(f"table {table} is not in the store's trace")
            continue
        lacking = [c for c in columns if c not in present[table]]
        if lacking:
            problems.append(f"table {table}: the store has no column {lacking[0]}")
            continue
        select_all = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {_quote(table)}"
        ours = set(packaged.execute(select_all).fetchall())
        theirs = set(fresh.execute(select_all).fetchall())
        missing = ours - theirs
        if missing:
            first = dict(zip(columns, sorted(missing, key=repr)[0]))
            problems.append(f"table {table}: {len(missing)} of the package's {len(ours)} "
                            f"records are not the store's (first: {first})")
        extra += len(theirs - ours)
    return problems, extra


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [name for name, in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    return {table: [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]
            for table in tables}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
