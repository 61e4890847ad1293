"""The runs page (``/``): every execution, filtered, sorted, cut to the columns asked for and
paginated by the database (:mod:`dlprov.query.runs_sql`: the column names and filters of
``dlprov runs``), so that a page of 10,000 runs reads the page's rows, not every run's sets.
Over a dlprov server, its ``/v1/runs`` answers and the page is cut here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import select

from dlprov.query.runs import (
    AGGREGATES,
    RunsTable,
    display_value,
    resolve_column,
    runs_table,
    select_runs,
)
from dlprov.query.runs_sql import catalogue, rows_for, select_page
from dlprov.store import schema as s
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


def table(store: Store) -> RunsTable:
    """The whole runs table of ``store`` (every row, every column): what compare and a
    dlprov server's runs read; the runs page reads one page (:func:`runs_page`)."""
    return runs_table(store)


def rows_of(store: Store, runs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The runs-table rows of the executions ``runs`` (exec tags or ids), by exec tag."""
    if store.remote:
        return {r["exec_tag"]: r for r in runs_table(store).rows}
    e = s.dataflow_execution
    tags = [r for r in runs if not r.isdigit()]
    numbers = [int(r) for r in runs if r.isdigit()]
    with store.read() as conn:
        ids = conn.execute(select(e.c.id).where(e.c.tag.in_(tags) | e.c.id.in_(numbers))
                           ).scalars().all()
        found = catalogue(conn)
        rows = rows_for(store, conn, found, list(ids))
    return {r["exec_tag"]: r for r in rows}


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
    where = [w for w in where if w.strip()]
    names = [n.strip() for item in columns for n in item.split(",") if n.strip()]
    page = max(1, page)
    start = (page - 1) * size
    if store.remote:  # a dlprov server: its /v1/runs answers, filtered here
        found = runs_table(store)
        rows = select_runs(found, where, sort or None)
        total, matched, rows = len(found.rows), len(rows), rows[start:start + size]
    else:
        with store.read() as conn:
            columns_of = catalogue(conn)
        found = columns_of.as_table()
        chosen = select_page(store, columns_of, where, sort or None, start, size)
        total, matched, rows = chosen.total, len(chosen.ids), chosen.rows
    shown = (list(dict.fromkeys(resolve_column(n, found) for n in names)) if names
             else default_columns(found, aggregate))
    shown = [c for c in shown if c in found.columns or c.startswith("tag.")]
    return RunsPage(rows, shown, list(found.columns), total, matched, page, size,
                    sort or None, where, aggregate)
