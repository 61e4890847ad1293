"""A run's curves: every numeric metric of one of its sets, in recording order.

``curves("mnist-1")`` reads the ``otrain`` elements the run's tasks produced (or used, for a
set no task produces) and orders them by the set's finest ordering column: ``step``, then
``batch``, then ``epoch``, else insertion (the element id). Every other numeric attribute is a
metric. Works on SQLite, PostgreSQL and a ``dlprov serve`` server (``http://``, through its
``/v1/runs``, ``/v1/dataflows/…/spec`` and ``/v1/sets/…`` endpoints).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import select

from dlprov.errors import NotFound, QueryError
from dlprov.model.names import OTRAIN, task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.catalogue import choose_dataflow
from dlprov.query.choice import ORDERINGS, default_mode
from dlprov.query.sql import builtin_sql
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store

_BARS = "▁▂▃▄▅▆▇█"
_PAGE = 10_000  # the server's largest page of set rows


@dataclass
class Curves:
    """The points of a run's curves: ``rows`` under ``columns`` (``task_id``, the ordering
    column, the other ordering columns the set has, then ``metrics``), ordered by task and
    ``order``. Integral numbers of a column holding only such are ints."""

    run: str
    dataflow: str
    set_tag: str
    order: str
    metrics: list[str]
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def series(self, metric: str) -> dict[int, list[tuple[Any, float]]]:
        """``{task_id: [(order value, metric value), ...]}`` for ``metric``, numbers only."""
        if metric not in self.metrics:
            raise QueryError(f"no metric {metric!r} in set {self.set_tag!r} of run "
                             f"{self.run!r}; it has: {', '.join(self.metrics) or 'none'}")
        at, x = self.columns.index(metric), self.columns.index(self.order)
        found: dict[int, list[tuple[Any, float]]] = {}
        for row in self.rows:
            value = row[at]
            if isinstance(value, (int, float)) and math.isfinite(value):
                found.setdefault(row[0], []).append((row[x], value))
        return found


def curves(run: str | int, set_tag: str = OTRAIN, *,
           store: Store | str | None = None) -> Curves:
    """The curves of ``run`` (its exec tag or id) in ``set_tag``: see the module.

    Raises :class:`NotFound` for an unknown run and :class:`QueryError` for a set the run's
    dataflow lacks or one without numbers, naming the sets there are."""
    store, run, set_tag = as_store(store), str(run), str(set_tag).strip().lower()
    exec_tag, spec, read = (_remote if store.backend == "http" else _local)(store, run)
    _check_set(spec, set_tag, exec_tag)
    order = next((c for c in ORDERINGS if _numeric(spec, set_tag, c)), "id")
    others = [c for c in ORDERINGS if c != order and _numeric(spec, set_tag, c)]
    metrics = [a for a in _numbers(spec, set_tag) if a not in ORDERINGS]
    columns = ["task_id", order, *others, *metrics]
    rows = read(set_tag, _task_columns(spec, set_tag), columns)
    return Curves(exec_tag, spec.tag, set_tag, order, metrics, columns, _integers(rows))


# -- where the rows come from: (exec tag, spec, reader of the run's rows of a set) --------
_Reader = Callable[[str, list[str], list[str]], list[tuple]]


def _local(store: Store, run: str) -> tuple[str, DataflowSpec, _Reader]:
    e = s.dataflow_execution
    with store.read() as conn:
        where = e.c.id == int(run) if run.isdigit() else e.c.tag == run
        found = conn.execute(select(e.c.id, e.c.tag, s.dataflow.c.tag.label("df_tag"))
                             .join(s.dataflow, s.dataflow.c.id == e.c.df_id)
                             .where(where)).first()
        if found is None:
            raise NotFound(f"no execution {run!r} in the store: see `dlprov runs`")
        spec = choose_dataflow(conn, found.df_tag)

    def read(set_tag: str, task_columns: list[str], columns: list[str]) -> list[tuple]:
        # names come from the stored spec: plain lower-case identifiers, quoted in case of a
        # reserved word
        task = ", ".join(f'x."{c}"' for c in task_columns)
        task = f"COALESCE({task})" if len(task_columns) > 1 else task
        picked = ", ".join(f'x."{c}"' for c in columns[1:])
        statement = (f'SELECT {task} AS task_id, {picked} FROM "{set_tag}" x '
                     f"WHERE {task} IN (SELECT t.id FROM task t WHERE t.exec_id = :exec_id) "
                     f'ORDER BY 1, x."{columns[1]}", x.id')
        # a long run has many points: no row limit
        return builtin_sql(statement, store=store, dataflow=spec.tag,
                           params={"exec_id": found.id}, max_rows=0).rows
    return found.tag, spec, read


def _remote(store: Store, run: str) -> tuple[str, DataflowSpec, _Reader]:
    from dlprov.store import http  # only a server store needs the HTTP client

    runs = http.get_json(store.url, "/v1/runs") or []
    found = next((r for r in runs if r["exec_tag"] == run
                  or (run.isdigit() and r["id"] == int(run))), None)
    if found is None:
        raise NotFound(f"no execution {run!r} in the store: see `dlprov runs`")
    df_tag, exec_tag = str(found["df_tag"]).lower(), found["exec_tag"]
    spec = DataflowSpec.from_dict(
        http.get_json(store.url, f"/v1/dataflows/{http.segment(df_tag)}/spec"))

    def read(set_tag: str, task_columns: list[str], columns: list[str]) -> list[tuple]:
        tasks = http.get_json(store.url, f"/v1/runs/{http.segment(exec_tag)}/tasks") or []
        ids = {t["id"] for t in tasks}
        rows = []
        for record in _pages(store, df_tag, set_tag):
            task = next((record[c] for c in task_columns if record.get(c) is not None), None)
            if task in ids:
                rows.append((task, *(record.get(c) for c in columns[1:]), record["id"]))
        # as the SQL orders them: by task, order (missing last), insertion
        rows.sort(key=lambda r: (r[0], r[1] is None, r[1] if r[1] is not None else 0, r[-1]))
        return [row[:-1] for row in rows]
    return exec_tag, spec, read


def _pages(store: Store, df_tag: str, set_tag: str) -> Iterator[dict]:
    from dlprov.store import http

    offset = 0
    while True:
        page = http.get_json(store.url, f"/v1/sets/{http.segment(df_tag)}/"
                                        f"{http.segment(set_tag)}?limit={_PAGE}&offset={offset}")
        rows = (page or {}).get("rows", [])
        yield from rows
        if len(rows) < _PAGE:
            return
        offset += _PAGE


# -- the set's columns --------------------------------------------------------------------
def _numbers(spec: DataflowSpec, set_tag: str) -> list[str]:
    return [a.name for a in spec.sets[set_tag].attributes.values()
            if a.type == AttributeType.NUMERIC]


def _numeric(spec: DataflowSpec, set_tag: str, name: str) -> bool:
    return name in _numbers(spec, set_tag)


def _check_set(spec: DataflowSpec, set_tag: str, run: str) -> None:
    with_numbers = [t for t in spec.sets if _numbers(spec, t)]
    if set_tag not in spec.sets or not _numbers(spec, set_tag):
        raise QueryError(f"run {run!r} (dataflow {spec.tag!r}) has no set {set_tag!r} with "
                         f"numbers; sets with numbers: {', '.join(with_numbers) or 'none'}")


def _task_columns(spec: DataflowSpec, set_tag: str) -> list[str]:
    """The task columns saying which task an element belongs to: its producers' (or, for a
    set no task produces, its users')."""
    return [task_column(t) for t in (spec.producers(set_tag) or spec.transformations_of(set_tag))]


def _integers(rows: Sequence[tuple]) -> list[tuple]:
    """Columns whose numbers are all integral (epochs, steps, counts) as ints: the store
    keeps every number as a float."""
    if not rows:
        return []
    integral = [all(v is None or isinstance(v, int) or (isinstance(v, float) and v.is_integer())
                    for v in column) and any(v is not None for v in column)
                for column in zip(*rows)]
    return [tuple(int(v) if keep and v is not None else v for v, keep in zip(row, integral))
            for row in rows]


# -- a line per metric --------------------------------------------------------------------
def sparkline(values: Sequence[float], width: int = 40) -> str:
    """``values`` as a line of block characters (at most ``width``: means of equal slices)."""
    if len(values) > width:
        size = len(values) / width
        values = [sum(part) / len(part) for part in
                  (values[int(i * size):max(int((i + 1) * size), int(i * size) + 1)]
                   for i in range(width))]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BARS[round((v - low) / span * (len(_BARS) - 1))] for v in values)


def summaries(found: Curves) -> list[str]:
    """One line per metric (and task, if the run has several): its sparkline, first and last
    values, and its lowest or highest (as :func:`dlprov.query.choice.default_mode` ranks it)
    with where it was reached."""
    width = max((len(m) for m in found.metrics), default=0)
    lines = []
    for metric in found.metrics:
        by_task = found.series(metric)
        for task_id, points in by_task.items():
            values = [v for _, v in points]
            mode = default_mode(metric)
            at, best = (min if mode == "min" else max)(points, key=lambda p: p[1])
            name = metric.ljust(width) + (f" [task {task_id}]" if len(by_task) > 1 else "")
            lines.append(f"{name}  {sparkline(values)}  first {_short(values[0])} → last "
                         f"{_short(values[-1])}, {mode} {_short(best)} ({found.order} "
                         f"{_short(at)})")
        if not by_task:
            lines.append(f"{metric.ljust(width)}  (no numbers)")
    return lines


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot(found: Curves, path: str) -> None:
    """Draw each metric of ``found`` against its order into ``path`` (``.png`` or ``.svg``),
    one panel per metric, one line per task."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    if not found.metrics:
        raise QueryError(f"set {found.set_tag!r} of run {found.run!r} has no metrics to plot")
    figure, axes = plt.subplots(len(found.metrics), 1, squeeze=False, sharex=True,
                                figsize=(7, 2.2 * len(found.metrics) + 0.6))
    try:
        for axis, metric in zip(axes[:, 0], found.metrics):
            by_task = found.series(metric)
            for task_id, points in by_task.items():
                axis.plot([p[0] for p in points], [p[1] for p in points], marker=".",
                          label=f"task {task_id}" if len(by_task) > 1 else None)
            axis.set_ylabel(metric)
            if len(by_task) > 1:
                axis.legend(fontsize="small")
        axes[-1, 0].set_xlabel(found.order)
        figure.suptitle(f"{found.run} · {found.set_tag}")
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
