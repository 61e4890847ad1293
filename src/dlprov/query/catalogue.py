"""Reading what a store holds: dataflows, their specs, executions and tasks."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import Connection, case, func, select

from dlprov.errors import NotFound
from dlprov.model import records as r
from dlprov.model.spec import DataflowSpec
from dlprov.query.liveness import observed_status
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store, as_store


def dataflow_tags(conn: Connection) -> list[str]:
    """Dataflow tags, most recently executed (or created) first."""
    latest = (select(s.dataflow_execution.c.df_id,
                     func.max(s.dataflow_execution.c.start_time).label("last"))
              .group_by(s.dataflow_execution.c.df_id).subquery())
    rows = conn.execute(
        select(s.dataflow.c.tag)
        .outerjoin(latest, latest.c.df_id == s.dataflow.c.id)
        .order_by(func.coalesce(latest.c.last, s.dataflow.c.created_at).desc(),
                  s.dataflow.c.id.desc()))
    return list(rows.scalars())


def choose_dataflow(conn: Connection, df_tag: str | None) -> DataflowSpec:
    """The spec of ``df_tag``, or of the only or most recent dataflow when it is None."""
    if df_tag is not None:
        # Named: one indexed lookup. Ranking every dataflow (a scan of all executions) is only
        # needed to choose one, or to list them in the error.
        found = read_spec(conn, df_tag.lower())
        if found is not None:
            return found[2]
    tags = dataflow_tags(conn)
    if not tags:
        raise NotFound("the store holds no dataflow yet: capture a run first (e.g. `dlprov demo`)")
    if df_tag is None:
        df_tag = tags[0]
    elif df_tag.lower() not in tags:
        raise NotFound(f"no dataflow {df_tag!r} in the store; it has: {', '.join(tags)}")
    found = read_spec(conn, df_tag.lower())
    assert found is not None
    return found[2]


def list_runs(store: Store | str | None = None, df_tag: str | None = None, *,
              ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Executions with dataflow, status, host, user, duration, task counts, tags (a dict) and
    notes, newest first; with ``ids``, only those executions."""
    store = as_store(store)
    e, t = s.dataflow_execution, s.task
    ids = None if ids is None else list(ids)
    counted = (select(t.c.exec_id, func.count().label("tasks"),
                      func.sum(case((t.c.status == "failed", 1), else_=0)).label("failed"))
               .group_by(t.c.exec_id))
    if ids is not None:  # the tasks of these executions only
        counted = counted.where(t.c.exec_id.in_(ids))
    counts = counted.subquery()
    # The tag as the user first wrote it; matched case-insensitively below.
    shown = func.coalesce(s.dataflow.c.label, s.dataflow.c.tag)
    query = (select(e.c.id, e.c.tag.label("exec_tag"), shown.label("df_tag"),
                    e.c.status, e.c.start_time, e.c.end_time, e.c.hostname, e.c.pid,
                    e.c.username, e.c.notes,
                    func.coalesce(counts.c.tasks, 0).label("tasks"),
                    func.coalesce(counts.c.failed, 0).label("failed_tasks"))
             .join(s.dataflow, s.dataflow.c.id == e.c.df_id)
             .outerjoin(counts, counts.c.exec_id == e.c.id)
             .order_by(e.c.start_time.desc(), e.c.id.desc()))
    tag_query = (select(s.execution_tag.c.exec_id, s.execution_tag.c.key,
                        s.execution_tag.c.value)
                 .order_by(s.execution_tag.c.exec_id, s.execution_tag.c.key))
    if df_tag:
        query = query.where(s.dataflow.c.tag == df_tag.lower())
    if ids is not None:
        query = query.where(e.c.id.in_(ids))
        tag_query = tag_query.where(s.execution_tag.c.exec_id.in_(ids))
    tags: dict[int, dict[str, str]] = {}
    with store.read() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        for exec_id, key, value in conn.execute(tag_query):
            tags.setdefault(exec_id, {})[key] = value
    for row in rows:
        row["tags"] = tags.get(row["id"], {})
        row["duration_s"] = _seconds(row["start_time"], row["end_time"])
        row["status"] = observed_status(row["status"], row["hostname"], row["pid"])
    return rows


def list_tasks(run: str | int, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Tasks of one execution (given by exec tag or id), with their dependencies and, under
    torchrun, the rank that ran each."""
    store, run = as_store(store), str(run)
    e, t, dep = s.dataflow_execution, s.task, s.task_dependency
    with store.read() as conn:
        where = e.c.id == int(run) if run.isdigit() else e.c.tag == run
        execution = conn.execute(select(e.c.id, e.c.hostname, e.c.pid).where(where)).first()
        if execution is None:
            raise NotFound(f"no execution {run!r} in the store: see `dlprov runs`")
        exec_id = execution.id
        # The client's task identifiers (task.identifier), as the original showed them, not
        # the store's row ids.
        upstream = t.alias("upstream")
        deps: dict[int, list[int]] = {}
        for task_id, depends_on in conn.execute(
                select(dep.c.task_id, upstream.c.identifier)
                .join(t, t.c.id == dep.c.task_id)
                .join(upstream, upstream.c.id == dep.c.depends_on_id)
                .where(t.c.exec_id == exec_id)):
            deps.setdefault(task_id, []).append(depends_on)
        rows = [dict(row._mapping) for row in conn.execute(
            select(t.c.id, t.c.identifier, s.data_transformation.c.tag.label("transformation"),
                   t.c.status, t.c.start_time, t.c.end_time, t.c.workspace,
                   t.c.computing_resource, t.c.rank, t.c.pid, t.c.error_msg, t.c.output_msg)
            .join(s.data_transformation, s.data_transformation.c.id == t.c.dt_id)
            .where(t.c.exec_id == exec_id).order_by(t.c.identifier, t.c.id))]
    for row in rows:
        row["duration_s"] = _seconds(row.pop("start_time"), row.pop("end_time"))
        row["depends_on"] = ",".join(str(d) for d in sorted(set(deps.get(row["id"], []))))
        # tasks stored before task.pid existed ran in their execution's process
        pid = row["pid"] if row["pid"] is not None else (
            execution.pid if row["computing_resource"] == execution.hostname else None)
        row["status"] = observed_status(row["status"], row["computing_resource"], pid)
        error = row.pop("error_msg")
        row["error"] = error.strip().splitlines()[-1] if error else None
        row["warnings"] = _warnings(row.pop("output_msg"))
    return rows


def _warnings(output: str | None) -> str | None:
    """The warnings kept in a task's output (what the lenient DfAnalyzer protocol assumed)."""
    found = [line[len(r.TASK_WARNING):] for line in (output or "").splitlines()
             if line.startswith(r.TASK_WARNING)]
    return "; ".join(found) or None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
