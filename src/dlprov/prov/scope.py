"""What one export covers, read from the store: a dataflow, one execution, or one model's trace.

The rows are read in one read-only transaction and handed to :mod:`dlprov.prov.mapping` as
plain dicts; nothing here knows PROV, and nothing here writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CompoundSelect, Connection, Select, or_, select, union

from dlprov.errors import NotFound, QueryError
from dlprov.model.names import task_column
from dlprov.model.spec import DataflowSpec
from dlprov.query.catalogue import choose_dataflow
from dlprov.query.lineage import trace_tasks
from dlprov.query.models import ModelRef, model_context
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store, as_store


@dataclass
class Snapshot:
    """The store's rows that one export covers.

    ``tasks`` are the tasks in scope (with ``dt_tag``); ``usage`` is ``(consumer, producer,
    set_tag)`` for consumers in scope; ``elements`` maps a set tag to its rows (``id``, the
    ``<transformation>_task_id`` columns, the attributes) that relate to a task in scope or to
    a producer whose data a task in scope used.
    """

    df_id: int
    spec: DataflowSpec
    executions: list[dict[str, Any]]
    environments: dict[int, dict[str, Any]]
    tasks: list[dict[str, Any]]
    dependencies: list[tuple[int, int]]
    usage: list[tuple[int, int, str]]
    models: list[dict[str, Any]]
    elements: dict[str, list[dict[str, Any]]]
    focus: ModelRef | None = None
    scope: str = "dataflow"
    notes: list[str] = field(default_factory=list)

    @property
    def df_tag(self) -> str:
        return self.spec.tag


def read_snapshot(store: Store | str | None = None, *, dataflow: str | None = None,
                  run: str | int | None = None, model: str | None = None) -> Snapshot:
    """The rows of one scope: a whole dataflow (``dataflow``, default the only or most recent
    one), one execution (``run``: its exec tag or id) or the trace of one model (``model``: its
    id, name or file path; ``dataflow`` narrows the search)."""
    if run is not None and model is not None:
        raise QueryError("export one scope at a time: give a run or a model, not both")
    store = as_store(store)
    if model is not None:
        df_tag, focus, trace = _model_trace(store, str(model), dataflow)
        with store.read() as conn:
            spec, df_id = _spec(conn, df_tag)
            ids = select(s.task.c.id).where(s.task.c.id.in_(trace))
            return _read(conn, df_id, spec, ids, None, focus=focus, scope="model")
    with store.read() as conn:
        if run is None:
            spec = choose_dataflow(conn, dataflow)
            return _read(conn, _spec(conn, spec.tag)[1], spec, None, None)
        execution = _execution(conn, str(run))
        df_tag = conn.execute(select(s.dataflow.c.tag)
                              .where(s.dataflow.c.id == execution.df_id)).scalar_one()
        if dataflow is not None and dataflow.lower() != df_tag:
            raise QueryError(f"execution {execution.tag!r} is of dataflow {df_tag!r}, "
                             f"not {dataflow!r}")
        spec, df_id = _spec(conn, df_tag)
        ids = select(s.task.c.id).where(s.task.c.exec_id == execution.id)
        return _read(conn, df_id, spec, ids, [execution.id], scope="run")


def _spec(conn: Connection, df_tag: str) -> tuple[DataflowSpec, int]:
    found = read_spec(conn, df_tag)
    if found is None:
        raise NotFound(f"no dataflow {df_tag!r} in the store")
    return found[2], found[0]


def _execution(conn: Connection, run: str):
    """The execution tagged ``run``, else (for digits) the one with that id."""
    e = s.dataflow_execution
    row = conn.execute(select(e.c.id, e.c.tag, e.c.df_id).where(e.c.tag == run)).first()
    if row is None and run.isdigit():
        row = conn.execute(select(e.c.id, e.c.tag, e.c.df_id).where(e.c.id == int(run))).first()
    if row is None:
        raise NotFound(f"no execution {run!r} in the store: see `dlprov runs`")
    return row


def _model_trace(store: Store, model: str,
                 dataflow: str | None) -> tuple[str, ModelRef, list[int]]:
    """(dataflow tag, model, task ids of its trace); without ``dataflow``, the one dataflow
    holding a model so named."""
    ctx = model_context(store, model, dataflow)
    return (ctx.spec.tag, *trace_tasks(ctx, model))


def _read(conn: Connection, df_id: int, spec: DataflowSpec, task_ids: Select | None,
          exec_ids: list[int] | None, *, focus: ModelRef | None = None,
          scope: str = "dataflow") -> Snapshot:
    """Read the scope: every task of the dataflow if ``task_ids`` (a SELECT of ids) is None."""
    t, e, dt = s.task, s.dataflow_execution, s.data_transformation
    query = (select(t, dt.c.tag.label("dt_tag")).join(dt, dt.c.id == t.c.dt_id)
             .where(dt.c.df_id == df_id).order_by(t.c.exec_id, t.c.identifier, t.c.id))
    if task_ids is not None:
        query = query.where(t.c.id.in_(task_ids))
    tasks = _dicts(conn, query)
    in_scope = {task["id"] for task in tasks}

    wanted = set(exec_ids or ()) | {task["exec_id"] for task in tasks}
    query = select(e).order_by(e.c.start_time, e.c.id)
    query = query.where(e.c.df_id == df_id) if task_ids is None else \
        query.where(e.c.id.in_(sorted(wanted)))
    executions = _dicts(conn, query)
    tagged = s.execution_tag  # each execution's tags, as dlprov:tag_KEY attributes
    for execution in executions:
        execution["tags"] = {}
    by_id = {x["id"]: x for x in executions}
    for exec_id, key, value in conn.execute(select(tagged.c.exec_id, tagged.c.key, tagged.c.value)
                                            .where(tagged.c.exec_id.in_(list(by_id)))
                                            .order_by(tagged.c.key)):
        by_id[exec_id]["tags"][key] = value
    environments = {row["exec_id"]: row for row in _dicts(conn, select(s.environment).where(
        s.environment.c.exec_id.in_([x["id"] for x in executions])))}

    dep = s.task_dependency
    dependencies = [(a, b) for a, b in conn.execute(
        select(dep.c.task_id, dep.c.depends_on_id).join(t, t.c.id == dep.c.task_id)
        .join(dt, dt.c.id == t.c.dt_id).where(dt.c.df_id == df_id)
        .order_by(dep.c.task_id, dep.c.depends_on_id))
        if a in in_scope and b in in_scope]
    tu = s.task_usage
    query = (select(tu.c.task_id, tu.c.producer_task_id, s.data_set.c.tag)
             .join(s.data_set, s.data_set.c.id == tu.c.ds_id).where(s.data_set.c.df_id == df_id)
             .order_by(tu.c.task_id, tu.c.producer_task_id, s.data_set.c.tag))
    if task_ids is not None:
        query = query.where(tu.c.task_id.in_(task_ids))
    usage = [tuple(row) for row in conn.execute(query)]

    tm = s.trained_model
    query = select(tm).join(t, t.c.id == tm.c.task_id).join(dt, dt.c.id == t.c.dt_id) \
        .where(dt.c.df_id == df_id).order_by(tm.c.task_id, tm.c.id)
    if task_ids is not None:
        query = query.where(tm.c.task_id.in_(task_ids))
    models = _dicts(conn, query)

    related = None
    if task_ids is not None:  # the tasks in scope, and those whose data they used
        related = union(task_ids, select(tu.c.producer_task_id)
                        .where(tu.c.task_id.in_(task_ids)))
    elements = {set_tag: _elements(conn, spec, set_tag, related) for set_tag in spec.sets}
    return Snapshot(df_id, spec, executions, environments, tasks, dependencies, usage, models,
                    elements, focus, scope)


def _elements(conn: Connection, spec: DataflowSpec, set_tag: str,
              related: CompoundSelect | None) -> list[dict[str, Any]]:
    table = s.set_table(conn.dialect.name, spec, set_tag)
    query = select(table).order_by(table.c.id)
    if related is not None:
        columns = [table.c[task_column(t)] for t in spec.transformations_of(set_tag)]
        if not columns:
            return []
        query = query.where(or_(*(c.in_(related) for c in columns)))
    return _dicts(conn, query)


def _dicts(conn: Connection, query) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]
