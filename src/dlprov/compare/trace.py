"""One side of a comparison: the trace of a model (or of an execution) as plain data.

:func:`read_trace` reads, from a database store (SQLite, PostgreSQL, a package's extract), the
tasks of a model's trace (those of Q10: its training, the tests of it and every task upstream)
or of one execution, and returns a JSON-ready dict:

- ``model``: the ``trained_model`` row (id, name, path, sha256, size, framework, counts);
- ``execution``: exec tag, status, start and end;
- ``training``: the training task (id, transformation, workspace) and its ``hyperparameters``;
- ``metrics``: ``{set: {metric: [values in recording order]}}`` of the training and its tests;
- ``data``: the datasets the training used, ``{set: [element, ...]}``;
- ``steps``: every task but the training and its tests (the preparation chain), in order, with
  its parameters, the sets it used (and which step produced them) and the elements it produced;
- ``environment`` and ``code``: the execution's environment row, split in two.

Nothing is written. Values are JSON values (times as ISO text).
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from sqlalchemy import Connection, or_, select

from dlprov.errors import NotFound
from dlprov.model.names import task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.building import Context
from dlprov.query.catalogue import dataflow_tags
from dlprov.query.lineage import trace_tasks
from dlprov.query.runs import parameter_sets
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store, as_store

#: environment fields that describe the code rather than the machine
CODE_FIELDS = ("command_line", "git_commit", "git_dirty", "git_repository", "git_patch")
_METRIC_SETS = ("otrain", "otest")


def read_trace(store: Store | str | None, name: str, *, runs: bool = False,
               dataflow: str | None = None) -> dict[str, Any]:
    """The trace of model ``name`` (an id, a name or a file path), or with ``runs`` of the
    execution ``name`` (exec tag or id), as plain data (see the module). Raises
    :class:`NotFound` for an unknown model or execution."""
    store = as_store(store)
    if runs:
        spec, exec_id = _execution(store, str(name), dataflow)
        with store.read() as conn:
            task_ids = list(conn.execute(select(s.task.c.id).where(s.task.c.exec_id == exec_id)
                                         .order_by(s.task.c.id)).scalars())
            return _read(conn, spec, task_ids, None, label=str(name))
    ctx = _model_context(store, str(name), dataflow)
    found, task_ids = trace_tasks(ctx, str(name))
    with store.read() as conn:
        return _read(conn, ctx.spec, task_ids, found.train_task_id, label=str(name),
                     model_id=found.model_id)


def _model_context(store: Store, name: str, dataflow: str | None) -> Context:
    from dlprov.query.models import model_context
    return model_context(store, name, dataflow)


def _execution(store: Store, run: str, dataflow: str | None) -> tuple[DataflowSpec, int]:
    x, df = s.dataflow_execution, s.dataflow
    where = x.c.tag == run
    if run.isdigit():
        where = or_(where, x.c.id == int(run))
    with store.read() as conn:
        row = conn.execute(select(x.c.id, df.c.tag).join(df, df.c.id == x.c.df_id)
                           .where(where)).first()
        if row is None or (dataflow and row.tag.lower() != dataflow.lower()):
            known = conn.execute(select(x.c.tag).order_by(x.c.id.desc()).limit(8)).scalars()
            raise NotFound(f"no execution {run!r} in the store: give an exec tag or id "
                           f"(recent: {', '.join(known) or 'none'})")
        found = read_spec(conn, row.tag)
        if found is None:
            raise NotFound(f"execution {run!r} has no dataflow spec (of {dataflow_tags(conn)})")
    return found[2], row.id


def _read(conn: Connection, spec: DataflowSpec, task_ids: list[int], train_id: int | None,
          *, label: str, model_id: str | None = None) -> dict[str, Any]:
    tasks = _tasks(conn, task_ids)
    produced, used = _elements(conn, spec, task_ids)
    usage = _usage(conn, task_ids)
    if train_id is None:  # an execution: its training is the task that made a model or otrain
        train_id = _training_of(conn, spec, tasks, produced)
    evaluators = {t for t, producers in usage.items() if train_id in producers}
    evaluators |= {t for t, task in tasks.items() if train_id in task["depends_on"]}
    for task_id, by_set in usage.items():  # elements used by every consumer, not only the first
        for producer_id, set_tags in by_set.items():
            for set_tag in set_tags:
                used.setdefault(task_id, {}).setdefault(set_tag, []).extend(
                    produced.get(producer_id, {}).get(set_tag, []))
    trace: dict[str, Any] = {"label": label, "dataflow": spec.tag}
    trace["model"] = _model(conn, train_id, model_id) if train_id else None
    exec_id = tasks[train_id]["exec_id"] if train_id in tasks else (
        next(iter(tasks.values()))["exec_id"] if tasks else None)
    trace["execution"] = _execution_row(conn, exec_id)
    environment = _environment(conn, exec_id)
    trace["code"] = {k: environment.pop(k, None) for k in CODE_FIELDS}
    trace["code"]["cwd"] = tasks[train_id]["workspace"] if train_id in tasks else None
    trace["environment"] = environment
    hyper_sets = set(parameter_sets(spec))
    inputs = used.get(train_id, {})
    trace["training"] = None if train_id not in tasks else {
        "task_id": train_id, "transformation": tasks[train_id]["transformation"],
        "hyperparameters": _parameters(spec, inputs, prefer=hyper_sets)}
    trace["data"] = {t: els for t, els in sorted(inputs.items()) if _is_data(spec, t, els)}
    trace["metrics"] = _metrics(spec, produced, [train_id, *sorted(evaluators)])
    producer_of = {(set_tag, el["_id"]): task_id for task_id, sets in produced.items()
                   for set_tag, els in sets.items() for el in els}
    trace["steps"] = [_step(spec, task, used.get(tid, {}), produced.get(tid, {}), producer_of,
                            tasks) for tid, task in tasks.items()
                      if tid != train_id and tid not in evaluators]
    trace["data_sources"] = {t: sorted({tasks[producer_of[(t, el["_id"])]]["transformation"]
                                        for el in els if (t, el["_id"]) in producer_of})
                             for t, els in trace["data"].items()}
    return plain(trace)


def _tasks(conn: Connection, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    t, dt = s.task, s.data_transformation
    rows = conn.execute(select(t.c.id, dt.c.tag, t.c.status, t.c.exec_id, t.c.workspace,
                               t.c.start_time).join(dt, dt.c.id == t.c.dt_id)
                        .where(t.c.id.in_(task_ids)).order_by(t.c.start_time, t.c.id)).all()
    found = {r.id: {"task_id": r.id, "transformation": r.tag, "status": r.status,
                    "exec_id": r.exec_id, "workspace": r.workspace, "depends_on": set()}
             for r in rows}
    d = s.task_dependency
    for task_id, on in conn.execute(select(d.c.task_id, d.c.depends_on_id)
                                    .where(d.c.task_id.in_(task_ids))):
        if task_id in found:
            found[task_id]["depends_on"].add(on)
    return found


def _elements(conn: Connection, spec: DataflowSpec, task_ids: list[int]
              ) -> tuple[dict[int, dict[str, list]], dict[int, dict[str, list]]]:
    """({task: {set: elements it produced}}, {task: {set: unproduced elements it used}})."""
    produced: dict[int, dict[str, list]] = {}
    used: dict[int, dict[str, list]] = {}
    for set_tag in spec.sets:
        transformations = spec.transformations_of(set_tag)
        if not transformations:
            continue
        table = s.set_table(conn.dialect.name, spec, set_tag)
        producers = set(spec.producers(set_tag))
        columns = [table.c[task_column(x)] for x in transformations]
        names = list(spec.sets[set_tag].attributes)
        query = (select(table.c.id, *columns, *(table.c[n] for n in names))
                 .where(or_(*(c.in_(task_ids) for c in columns))).order_by(table.c.id))
        for row in conn.execute(query):
            element = {"_id": row[0], **dict(zip(names, row[1 + len(columns):]))}
            owners = dict(zip(transformations, row[1:1 + len(columns)]))
            made_by = [owners[x] for x in transformations if x in producers and owners[x]]
            for x, task_id in owners.items():
                if task_id is None or task_id not in task_ids:
                    continue
                if x in producers:
                    produced.setdefault(task_id, {}).setdefault(set_tag, []).append(element)
                elif not made_by:  # consumer columns of produced elements: see task_usage
                    used.setdefault(task_id, {}).setdefault(set_tag, []).append(element)
    return produced, used


def _usage(conn: Connection, task_ids: list[int]) -> dict[int, dict[int, list[str]]]:
    u, ds = s.task_usage, s.data_set
    found: dict[int, dict[int, list[str]]] = {}
    for task_id, producer, set_tag in conn.execute(
            select(u.c.task_id, u.c.producer_task_id, ds.c.tag).join(ds, ds.c.id == u.c.ds_id)
            .where(u.c.task_id.in_(task_ids)).order_by(u.c.task_id, ds.c.tag)):
        found.setdefault(task_id, {}).setdefault(producer, []).append(set_tag)
    return found


def _training_of(conn: Connection, spec: DataflowSpec, tasks: dict[int, dict],
                 produced: dict[int, dict]) -> int | None:
    m = s.trained_model
    with_model = conn.execute(select(m.c.task_id).where(m.c.task_id.in_(list(tasks)))
                              .order_by(m.c.id)).scalars().first()
    if with_model is not None:
        return with_model
    return next((t for t in tasks if "otrain" in produced.get(t, {})), None)


def _model(conn: Connection, train_id: int, model_id: str | None) -> dict[str, Any] | None:
    m = s.trained_model
    query = select(m.c.model_id, m.c.name, m.c.path, m.c.sha256, m.c.size_bytes, m.c.framework,
                   m.c.parameter_count, m.c.layer_count).where(m.c.task_id == train_id)
    if model_id:
        query = query.where(m.c.model_id == model_id)
    row = conn.execute(query.order_by(m.c.id)).first()
    return dict(row._mapping) if row else None


def _execution_row(conn: Connection, exec_id: int | None) -> dict[str, Any] | None:
    if exec_id is None:
        return None
    x = s.dataflow_execution
    row = conn.execute(select(x.c.tag, x.c.status, x.c.start_time, x.c.end_time, x.c.username)
                       .where(x.c.id == exec_id)).first()
    return {"exec_tag": row.tag, "status": row.status, "start_time": row.start_time,
            "end_time": row.end_time, "username": row.username} if row else None


def _environment(conn: Connection, exec_id: int | None) -> dict[str, Any]:
    if exec_id is None:
        return {}
    e = s.environment
    row = conn.execute(select(e).where(e.c.exec_id == exec_id)).first()
    if row is None:
        return {}
    found = dict(row._mapping)
    found.pop("exec_id", None)
    for key in ("packages", "gpus"):  # JSON read back as text on some paths
        if isinstance(found.get(key), str):
            try:
                found[key] = json.loads(found[key])
            except ValueError:
                pass
    return found


def _is_data(spec: DataflowSpec, set_tag: str, elements: list[dict] = ()) -> bool:
    """A dataset (a file, a digest or a shape), as opposed to parameters."""
    attributes = spec.sets[set_tag].attributes.values()
    return any(a.type == AttributeType.FILE or a.name in ("digest", "shape")
               for a in attributes)


def _parameters(spec: DataflowSpec, inputs: dict[str, list], prefer: set[str] = frozenset()
                ) -> dict[str, Any]:
    """The first element's values of every parameter set used (not datasets), keyed by
    attribute name (``set.attribute`` where two sets share a name)."""
    found: dict[str, Any] = {}
    chosen = [t for t in inputs if t in prefer] or [t for t in inputs
                                                     if not _is_data(spec, t, inputs[t])]
    for set_tag in sorted(chosen):
        if _is_data(spec, set_tag, inputs[set_tag]) or not inputs[set_tag]:
            continue
        for key, value in inputs[set_tag][0].items():
            if key.startswith("_"):
                continue
            found[f"{set_tag}.{key}" if key in found else key] = value
    return found


def _metrics(spec: DataflowSpec, produced: dict[int, dict], task_ids: list[int | None]
             ) -> dict[str, dict[str, list[float]]]:
    found: dict[str, dict[str, list[float]]] = {}
    for task_id in task_ids:
        for set_tag, elements in produced.get(task_id, {}).items():
            if set_tag not in _METRIC_SETS and _is_data(spec, set_tag, elements):
                continue
            numeric = [a.name for a in spec.sets[set_tag].attributes.values()
                       if a.type == AttributeType.NUMERIC]
            for name in numeric:
                values = [el[name] for el in elements if isinstance(el.get(name), (int, float))
                          and not isinstance(el.get(name), bool) and math.isfinite(el[name])]
                if values:
                    found.setdefault(set_tag, {}).setdefault(name, []).extend(values)
    return found


def _step(spec: DataflowSpec, task: dict, used: dict[str, list], produced: dict[str, list],
          producer_of: dict, tasks: dict) -> dict[str, Any]:
    inputs = {}
    for set_tag, elements in sorted(used.items()):
        if not _is_data(spec, set_tag, elements) and not any(
                (set_tag, el["_id"]) in producer_of for el in elements):
            continue
        sources = sorted({tasks[producer_of[(set_tag, el["_id"])]]["transformation"]
                          for el in elements if (set_tag, el["_id"]) in producer_of})
        inputs[set_tag] = {"produced_by": sources, "elements": elements}
    return {"task_id": task["task_id"], "transformation": task["transformation"],
            "status": task["status"], "parameters": _parameters(spec, used),
            "inputs": inputs, "outputs": dict(sorted(produced.items()))}


def plain(value: Any) -> Any:
    """``value`` with JSON types only: times as ISO text, paths as text, sets as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Decimal):  # PostgreSQL NUMERIC: a number, as SQLite gives it
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)

