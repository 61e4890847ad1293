"""The lineage graph of a run or of a model's trace: the tasks, and the data each used and
produced, as nodes and edges for a left-to-right layout in the order data flows
(preparation steps → split → train → model → test).

A task node shows its parameters (the values of the input sets no task produced); a data node
(one set a task produced) shows the first element's values (files, digests, shapes, metrics)
and how many elements there are. An edge goes from a task to the data it produced, and from
the data to each task of the same runs whose transformation takes that set as input.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import select

from dlprov.model.names import task_column
from dlprov.model.spec import DataflowSpec
from dlprov.query.sql import sql
from dlprov.store import schema as s
from dlprov.store.store import Store

_SHOWN = 6  # key values on a node's label
_ROWS = 20  # elements kept per node for the details panel


def lineage(store: Store, spec: DataflowSpec, task_ids: Iterable[int]) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}`` over the tasks ``task_ids`` of ``spec``'s
    dataflow; each node has ``id``, ``kind`` (task, data, parameters), ``label``, ``values``
    and ``rows`` (for the details panel), nodes in data-flow order."""
    ids = sorted(set(int(t) for t in task_ids))
    if not ids:
        return {"nodes": [], "edges": []}
    marks = ", ".join(str(i) for i in ids)  # ints: safe to write into the statement
    tasks = sql(f"SELECT t.id, t.identifier, dt.tag AS transformation, t.status, t.df_exec "
                f"FROM task t JOIN data_transformation dt ON dt.id = t.dt_id "
                f"WHERE t.id IN ({marks}) ORDER BY t.start_time, t.id",
                store=store, dataflow=spec.tag).records()
    elements = _elements(store, spec, ids)
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    produced: dict[str, list[tuple[int, str]]] = {}  # set -> [(producer task, node id)]
    for task in tasks:
        tid, transformation = task["id"], task["transformation"]
        parameters: dict[str, Any] = {}
        for set_tag in spec.sets_of(transformation, "input"):
            if not spec.producers(set_tag):  # given, not made by a task: parameters
                rows = elements.get((set_tag, tid), [])
                if rows:
                    parameters.update({f"{set_tag}.{k}": v for k, v in rows[0].items()})
        nodes.append({"id": f"task-{tid}", "kind": "task", "label": transformation,
                      "task_id": tid, "status": task["status"], "run": task["df_exec"],
                      "values": _short(parameters)})
        for set_tag in spec.sets_of(transformation, "output"):
            rows = elements.get((set_tag, tid), [])
            if not rows:
                continue
            node = f"data-{tid}-{set_tag}"
            values = _summary(rows)
            nodes.append({"id": node, "kind": "data", "label": set_tag, "task_id": tid,
                          "run": task["df_exec"],
                          "count": len(rows), "values": _short(values),
                          "rows": rows[:_ROWS], "set": set_tag})
            edges.append({"source": f"task-{tid}", "target": node})
            produced.setdefault(set_tag, []).append((tid, node))
    by_id = {t["id"]: t for t in tasks}
    for task in tasks:
        for set_tag in spec.sets_of(task["transformation"], "input"):
            # the newest producer before this task, in the same run
            sources = [(p, n) for p, n in produced.get(set_tag, ())
                       if p < task["id"] and by_id[p]["df_exec"] == task["df_exec"]]
            if sources:
                edges.append({"source": sources[-1][1], "target": f"task-{task['id']}"})
    return {"nodes": nodes, "edges": edges}


def _elements(store: Store, spec: DataflowSpec, ids: list[int]
              ) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """``{(set, task id): [element values, ...]}`` of the tasks' elements, in recording
    order, read on one connection (a set's table per query, by the stored spec's names)."""
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with store.read() as conn:
        for set_tag, data in spec.sets.items():
            owners = spec.transformations_of(set_tag)
            if not owners:
                continue
            table = _table(conn.dialect.name, spec, set_tag)
            names = list(data.attributes)
            for transformation in owners:
                column = table.c[task_column(transformation)]
                query = (select(column, *(table.c[n] for n in names))
                         .where(column.in_(ids)).order_by(table.c.id).limit(20_000))
                for task_id, *values in conn.execute(query):
                    kept = found.setdefault((set_tag, task_id), [])
                    kept.append({n: _plain(v) for n, v in zip(names, values) if v is not None})
    return found


_tables: dict[tuple, Any] = {}


def _table(dialect: str, spec: DataflowSpec, set_tag: str) -> Any:
    """The set's Table, kept while the set is unchanged: SQLAlchemy then compiles each query
    once, not on every page."""
    key = (dialect, spec.tag, set_tag, tuple(spec.transformations_of(set_tag)),
           tuple((a.name, a.type) for a in spec.sets[set_tag].attributes.values()))
    found = _tables.get(key)
    if found is None:
        found = _tables[key] = s.set_table(dialect, spec, set_tag)
    return found


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The values a data node shows: the first element's, and the last one's numbers when
    the set has several (a curve's end)."""
    values = dict(rows[0])
    if len(rows) > 1:
        values.update({k: v for k, v in rows[-1].items() if isinstance(v, (int, float))})
        values["elements"] = len(rows)
    return values


def _short(values: dict[str, Any]) -> list[list[str]]:
    out = []
    for name, value in list(values.items())[:_SHOWN]:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if isinstance(value, str) and "/" in text:  # a file: its name (the rows hold the path)
            text = text.rstrip("/").rsplit("/", 1)[-1]
        out.append([name, text if len(text) <= 40 else "…" + text[-39:]])
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_tasks(store: Store, exec_id: int) -> list[int]:
    """The ids of an execution's tasks."""
    with store.read() as conn:
        return list(conn.execute(select(s.task.c.id).where(s.task.c.exec_id == exec_id)
                                 .order_by(s.task.c.id)).scalars())
