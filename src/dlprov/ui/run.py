"""The run page (``/runs/<exec tag or id>``): the execution, its agent and environment, its
tasks with their dependencies, hyperparameters, models, and the points of its curves.

Curves are read by :func:`series`, which returns only the elements recorded after a given
element id (the page polls with the last id it has, so a training run's curves grow without
re-reading what the page holds) and thins each series to at most :data:`MAX_POINTS` points,
keeping every bucket's lowest and highest value.
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select

from dlprov.errors import NotFound, QueryError
from dlprov.model.names import OTRAIN, task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.catalogue import choose_dataflow, list_tasks
from dlprov.query.choice import ORDERINGS, default_mode
from dlprov.query.liveness import observed_status
from dlprov.store import http
from dlprov.store import schema as s
from dlprov.store.store import Store

MAX_POINTS = 2000  # per series, after thinning


def find_run(store: Store, run: str) -> tuple[dict[str, Any], DataflowSpec]:
    """The execution row of ``run`` (exec tag or id) and its dataflow's spec."""
    e = s.dataflow_execution
    with store.read() as conn:
        where = e.c.id == int(run) if run.isdigit() else e.c.tag == run
        found = conn.execute(select(e, s.dataflow.c.tag.label("df_tag"))
                             .join(s.dataflow, s.dataflow.c.id == e.c.df_id)
                             .where(where)).first()
        if found is None:
            raise NotFound(f"no execution {run!r} in the store: see the runs page")
        spec = choose_dataflow(conn, found.df_tag)
        row = dict(found._mapping)
        env = conn.execute(select(s.environment).where(
            s.environment.c.exec_id == row["id"])).first()
        tags = conn.execute(select(s.execution_tag.c.key, s.execution_tag.c.value).where(
            s.execution_tag.c.exec_id == row["id"])).all()
    row["status"] = observed_status(row["status"], row["hostname"], row["pid"])
    row["environment"] = dict(env._mapping) if env is not None else {}
    row["tags"] = {k: v for k, v in tags}
    return row, spec


def _remote_view(store: Store, run: str) -> dict[str, Any]:
    """What a dlprov server's read endpoints tell of a run: its row of ``/v1/runs`` (with
    hyperparameters and metrics) and its tasks; environment and models need the database."""
    from dlprov.query.runs import runs_table
    found = next((r for r in runs_table(store).rows if r["exec_tag"] == run
                  or (run.isdigit() and r["id"] == int(run))), None)
    if found is None:
        raise NotFound(f"no execution {run!r} in the store: see the runs page")
    spec = DataflowSpec.from_dict(http.get_json(
        store.url, f"/v1/dataflows/{http.segment(str(found['df_tag']).lower())}/spec"))
    return {"run": {"id": found["id"], "tag": found["exec_tag"], "df_tag": spec.tag,
                    "status": found["status"], "start_time": found["start_time"],
                    "end_time": found["end_time"], "notes": found.get("notes")},
            "agent": {"username": found.get("username"), "hostname": found.get("hostname"),
                      "pid": found.get("pid")},
            "tags": found.get("tags") or {}, "environment": {}, "packages": {},
            "tasks": _remote_tasks(store, found["exec_tag"]), "models": [],
            "hyperparameters": {k: v for k, v in found.items() if "." in k and ":" not in k
                                and not k.startswith("tag.")},
            "metric_sets": metric_sets(spec), "lineage": {"nodes": [], "edges": []}}


def _remote_tasks(store: Store, exec_tag: str) -> list[dict[str, Any]]:
    return http.get_json(store.url, f"/v1/runs/{http.segment(exec_tag)}/tasks") or []


def run_view(store: Store, run: str) -> dict[str, Any]:
    """Everything the run page shows but the curves' points and the lineage graph."""
    if store.remote:
        return _remote_view(store, run)
    row, spec = find_run(store, run)
    tasks = list_tasks(row["id"], store)
    with store.read() as conn:
        models = [dict(m._mapping) for m in conn.execute(
            select(s.trained_model).join(s.task, s.task.c.id == s.trained_model.c.task_id)
            .where(s.task.c.exec_id == row["id"]).order_by(s.trained_model.c.task_id))]
    env = row.pop("environment")
    packages = env.pop("packages", None) or {}
    agent = {k: row.get(k) for k in ("username", "email", "organization", "hostname", "pid")}
    execution = {k: row.get(k) for k in ("id", "tag", "df_tag", "status", "start_time",
                                         "end_time", "workspace", "notes")}
    return {"run": execution, "agent": agent, "tags": row["tags"], "environment": env,
            "packages": packages if isinstance(packages, dict) else {"packages": packages},
            "tasks": tasks, "hyperparameters": hyperparameters(store, spec, row["id"]),
            "models": models, "metric_sets": metric_sets(spec)}


def hyperparameters(store: Store, spec: DataflowSpec, exec_id: int) -> dict[str, Any]:
    """``{"SET.NAME": value}``: the first values of the run's parameter sets (the input sets
    of the training transformation that no task produced), as ``dlprov runs`` shows them."""
    from sqlalchemy import func

    from dlprov.query.runs import parameter_sets
    from dlprov.ui.lineage import _table
    found: dict[str, Any] = {}
    with store.read() as conn:
        # sets some task produced are data (a training set), not parameters
        for set_tag in (t for t in parameter_sets(spec) if not spec.producers(t)):
            table = _table(conn.dialect.name, spec, set_tag)
            owners = [table.c[task_column(t)] for t in spec.transformations_of(set_tag)]
            if not owners:
                continue
            owner = func.coalesce(*owners) if len(owners) > 1 else owners[0]
            names = list(spec.sets[set_tag].attributes)
            row = conn.execute(
                select(*(table.c[n] for n in names))
                .where(owner.in_(select(s.task.c.id).where(s.task.c.exec_id == exec_id)))
                .order_by(table.c.id).limit(1)).first()
            if row is not None:
                for name, value in zip(names, row):
                    found.setdefault(f"{set_tag}.{name}", value)
    return found


def metric_sets(spec: DataflowSpec) -> list[str]:
    """The sets that hold numbers besides their ordering columns: curves to draw, ``otrain``
    first."""
    found = [t for t in spec.sets if _metrics(spec, t)]
    return sorted(found, key=lambda t: (t != OTRAIN, t != "otest", t))


def _numbers(spec: DataflowSpec, set_tag: str) -> list[str]:
    return [a.name for a in spec.sets[set_tag].attributes.values()
            if a.type == AttributeType.NUMERIC]


def _metrics(spec: DataflowSpec, set_tag: str) -> list[str]:
    return [a for a in _numbers(spec, set_tag) if a not in ORDERINGS]


def series(store: Store, run: str, set_tag: str = OTRAIN, *, after: int = 0,
           max_points: int = MAX_POINTS) -> dict[str, Any]:
    """The points of ``run``'s curves in ``set_tag`` recorded after element id ``after``:
    ``{"order": x name, "last_id": newest element id, "series": {metric: {"x": [...], "y":
    [...], "mode": "min"|"max"}}, "status": ...}``, each series thinned to ``max_points``."""
    if store.remote:
        return _remote_series(store, run, set_tag, after, max_points)
    row, spec = find_run(store, run)
    set_tag = set_tag.strip().lower()
    if set_tag not in spec.sets or not _metrics(spec, set_tag):
        raise QueryError(f"run {row['tag']!r} has no set {set_tag!r} with metrics; it has: "
                         f"{', '.join(metric_sets(spec)) or 'none'}")
    numbers = _numbers(spec, set_tag)
    order = next((c for c in ORDERINGS if c in numbers), "id")
    metrics = _metrics(spec, set_tag)
    from sqlalchemy import func

    from dlprov.ui.lineage import _table
    with store.read() as conn:
        # names from the stored spec, read directly: this is no user SQL for the guard
        table = _table(conn.dialect.name, spec, set_tag)
        owners = [table.c[task_column(t)] for t in (spec.producers(set_tag)
                                                    or spec.transformations_of(set_tag))]
        owner = func.coalesce(*owners) if len(owners) > 1 else owners[0]
        tasks_of_run = select(s.task.c.id).where(s.task.c.exec_id == row["id"])
        rows = conn.execute(
            select(table.c.id, owner, table.c[order], *(table.c[m] for m in metrics))
            .where(table.c.id > int(after), owner.in_(tasks_of_run))
            .order_by(owner, table.c[order], table.c.id)).all()
    last_id = max((r[0] for r in rows), default=int(after))
    by_task: dict[int, list] = {}
    for r in rows:
        if r[1] is not None and r[2] is not None:
            by_task.setdefault(r[1], []).append(r)
    found: dict[str, Any] = {}
    for at, metric in enumerate(metrics, start=3):
        for task, task_rows in sorted(by_task.items()):
            points = [(r[2], r[at]) for r in task_rows if r[at] is not None
                      and math.isfinite(r[at])]
            if not points:
                continue
            points = thin(points, max_points)
            name = metric if len(by_task) == 1 else f"{metric} [task {task}]"
            found[name] = {"x": [_number(p[0]) for p in points], "y": [p[1] for p in points],
                           "mode": default_mode(metric), "metric": metric, "task": task}
    return {"run": row["tag"], "set": set_tag, "order": order, "last_id": last_id,
            "status": row["status"], "series": found, "points": len(rows)}


def _number(value: Any) -> Any:
    """An ordering value as the page plots it: integral floats (epochs, steps) as ints."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _remote_series(store: Store, run: str, set_tag: str, after: int,
                   max_points: int) -> dict[str, Any]:
    """:func:`series` over a dlprov server, through :func:`dlprov.query.metrics.curves` (the
    server's set pages): ``after`` counts the points already sent."""
    from dlprov.query.metrics import curves
    found = curves(run, set_tag, store=store)
    rows = found.rows[int(after):]
    status = next((t["status"] for t in _remote_tasks(store, found.run)
                   if t["status"] == "running"), "finished")
    shown: dict[str, Any] = {}
    x_at = found.columns.index(found.order)
    for metric in found.metrics:
        at = found.columns.index(metric)
        points = thin([(r[x_at], r[at]) for r in rows if isinstance(r[at], (int, float))
                       and r[x_at] is not None and math.isfinite(r[at])], max_points)
        if points:
            shown[metric] = {"x": [p[0] for p in points], "y": [p[1] for p in points],
                             "mode": default_mode(metric), "metric": metric}
    return {"run": found.run, "set": found.set_tag, "order": found.order,
            "last_id": int(after) + len(rows), "status": status, "series": shown,
            "points": len(rows)}


def thin(points: list[tuple[Any, float]], limit: int) -> list[tuple[Any, float]]:
    """At most ``limit`` of ``points`` (in order): in ``limit // 2`` equal buckets, each
    bucket's lowest and highest point, so spikes survive; the first and last always stay."""
    if len(points) <= limit or limit < 4:
        return points
    buckets = limit // 2 - 1
    size = (len(points) - 2) / buckets
    kept = [points[0]]
    for b in range(buckets):
        part = points[1 + int(b * size):1 + int((b + 1) * size)]
        if not part:
            continue
        low = min(range(len(part)), key=lambda i: part[i][1])
        high = max(range(len(part)), key=lambda i: part[i][1])
        kept += [part[i] for i in sorted({low, high})]
    kept.append(points[-1])
    return kept
