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
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, or_, select
from sqlalchemy.types import NullType

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
