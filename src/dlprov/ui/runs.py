"""The runs page (``/``): every execution, filtered, sorted, cut to the columns asked for and
paginated, from :mod:`dlprov.query.runs` (the rows and the column names of ``dlprov runs``).

The table of a store is built once and kept while the store is unchanged (its signature: the
number and newest ids of executions, tasks and trained models, the newest ends, the running
tasks), so paging, sorting and filtering the same runs cost no new read of the sets; when the
store changes, only the sets of executions not yet finished are read again.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import func, select

from dlprov.query.catalogue import list_runs
from dlprov.query.runs import (
    AGGREGATES,
    RunsTable,
    display_value,
    resolve_column,
    runs_table,
    select_runs,
)
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store

PAGE_SIZES = (25, 50, 100, 250, 500)
BASE = ("id", "exec_tag", "df_tag", "status", "start_time", "duration_s", "username", "hostname")
# counters and clocks: not what runs are compared by (as in dlprov.query.runs)
BOOKKEEPING = frozenset({"epoch", "epochs", "step", "steps", "batch", "iteration",
                          "timestamp", "time", "elapsed_time", "duration"})
_MAX_DEFAULT = 40  # default columns beyond the base ones: a picker offers the rest


@dataclass
class RunsPage:
    """One page of the runs table."""

    rows: list[dict[str, Any]]
    columns: list[str]
    all_columns: list[str]
    total: int
    matched: int
    page: int
    size: int
    sort: str | None
    where: list[str]
    aggregate: str

    @property
    def pages(self) -> int:
        return max(1, -(-self.matched // self.size))

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": [{c: display_value(r.get(c)) for c in
                                                  self.columns} for r in self.rows],
                "total": self.total, "matched": self.matched, "page": self.page,
                "pages": self.pages, "size": self.size, "sort": self.sort,
                "where": self.where, "aggregate": self.aggregate,
                "available_columns": self.all_columns}


_cache: dict[str, tuple[tuple, RunsTable]] = {}
_lock = threading.Lock()


def _signature(store: Store) -> tuple | None:
    """What changes whenever a run, a task or an element is added (None: cannot tell)."""
    if store.remote:
        return None
    e, t, m = s.dataflow_execution, s.task, s.trained_model
    with store.read() as conn:
        return tuple(conn.execute(select(
            select(func.count()).select_from(e).scalar_subquery(),
            select(func.max(e.c.id)).scalar_subquery(),
            select(func.count()).select_from(t).scalar_subquery(),
            select(func.max(t.c.id)).scalar_subquery(),
            select(func.max(t.c.end_time)).scalar_subquery(),
            select(func.count()).select_from(t).where(t.c.status == "running")
            .scalar_subquery(),
            select(func.count()).select_from(m).scalar_subquery(),
            select(func.max(e.c.end_time)).scalar_subquery(),
        )).one())


def table(store: Store) -> RunsTable:
    """The runs table of ``store``, read again only when the store changed (its signature).
    When it is read again, only the executions not yet finished (new or running) have their
    sets read: a finished execution's hyperparameters and metrics no longer change."""
    signature = _signature(store)
    if signature is None:  # a dlprov server: its /v1/runs answers
        return runs_table(store)
    if signature[5] == 0:
        with _lock:
            found = _cache.get(store.url)
        if found is not None and found[0] == signature:
            return found[1]
    built = _refreshed(store)
    with _lock:
        _cache[store.url] = (signature, built)
    return built


# store -> exec id -> (its tag and start, its set columns): the tag and start tell a store
# made again at the same path
_settled: dict[str, dict[int, tuple[tuple, dict[str, Any]]]] = {}
_FINAL = ("finished", "failed")


def _refreshed(store: Store) -> RunsTable:
    """The table from :func:`dlprov.query.catalogue.list_runs` (every execution's own
    columns, read each time: a status changes) and the set columns, kept for finished
    executions and read for the others."""
    from dlprov.query import runs as q  # the set columns and the table's order of columns
    rows = list_runs(store)
    with _lock:
        settled = dict(_settled.get(store.url, {}))
    stale: dict[int, dict[str, Any]] = {}
    for row in rows:
        kept = settled.get(row["id"])
        if kept is None or kept[0] != (row["exec_tag"], row["start_time"]):
            stale[row["id"]] = row
        else:
            row.update(kept[1])
    if stale:
        with store.read() as conn:
            for tag in sorted({str(r["df_tag"]).lower() for r in stale.values()}):
                found = read_spec(conn, tag)
                if found is not None:
                    q.add_set_columns(conn, found[2], stale)
        fresh = {i: ((r["exec_tag"], r["start_time"]), {k: v for k, v in r.items() if "." in k})
                 for i, r in stale.items() if r["status"] in _FINAL}
        with _lock:
            _settled.setdefault(store.url, {}).update(fresh)
    return q._table(rows)  # pylint: disable=protected-access


def default_columns(found: RunsTable, aggregate: str) -> list[str]:
    """The base columns, then every hyperparameter and one column per metric (its
    ``aggregate``: last, best or mean), clocks and counters left for the picker."""
    parameters = [c for c in found.columns if "." in c and ":" not in c
                  and not c.startswith("tag.")]
    metrics = [c for c in found.columns if c.endswith(f":{aggregate}")
               and c.split(".", 1)[1].split(":")[0] not in BOOKKEEPING]
    return [*BASE, *(parameters + metrics)[:_MAX_DEFAULT]]


def runs_page(store: Store, *, where: Sequence[str] = (), sort: str | None = None,
              columns: Sequence[str] = (), page: int = 1, size: int = 50,
              aggregate: str = "last") -> RunsPage:
    """One page of the runs table (see :func:`dlprov.query.runs.select_runs` for ``where`` and
    ``sort``; ``columns``: names as ``dlprov runs --columns`` takes them, default
    :func:`default_columns`). Raises :class:`dlprov.errors.QueryError` naming a bad filter,
    sort or column."""
    aggregate = aggregate if aggregate in AGGREGATES else "last"
    found = table(store)
    where = [w for w in where if w.strip()]
    rows = select_runs(found, where, sort or None)
    names = [n.strip() for item in columns for n in item.split(",") if n.strip()]
    shown = (list(dict.fromkeys(resolve_column(n, found) for n in names)) if names
             else default_columns(found, aggregate))
    shown = [c for c in shown if c in found.columns or c.startswith("tag.")]
    page = max(1, page)
    start = (page - 1) * size
    return RunsPage(rows[start:start + size], shown, list(found.columns), len(found.rows),
                    len(rows), page, size, sort or None, where, aggregate)
