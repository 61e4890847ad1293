"""The metric summary (table ``metric_summary``): per task, per metric set and per numeric
attribute, the count, sum, lowest, highest and latest of its finite values.

The writer adds each block of elements it stores to the summary in the same transaction
(:class:`Summarizer`), from the values it already holds: ranking or filtering 10,000 runs by a
metric then reads 10,000 summary rows instead of aggregating a million elements. A store made
before the table existed is summarized once when a writer first opens it (:func:`backfill`).

A reader trusts the summary of a set only while it adds up (:func:`trusted`): the row of
attribute ``''`` of each task counts its elements, and their sum must equal the set's rows. A
store written by something that bypasses the writer (an older dlprov, a hand-made INSERT, a
package extract) fails the test, and readers aggregate the elements instead: never a wrong
answer, only a slower one.
"""
from __future__ import annotations

import math
import sys
from operator import itemgetter
from typing import Any, Callable, Sequence

from sqlalchemy import Connection, Double, Table, case, func, select

from dlprov.model.names import task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.store import schema as s
from dlprov.store.statements import run

#: The sets summarized: the training and test metrics that runs are ranked by.
SUMMARIZED_SETS = ("otest", "otrain")
#: The attribute name of a task's element count.
COUNT = ""
#: The largest finite double: a value between -FINITE_MAX and FINITE_MAX is a finite number
#: (NaN compares false, NULL is unknown). What the summary counts; readers that aggregate the
#: elements themselves filter with the same bound, so both answer alike.
FINITE_MAX = sys.float_info.max
_COLUMNS = ("task_id", "set_tag", "attribute", "exec_id", "n", "total", "lowest", "highest",
            "latest", "latest_id")


def upsert_sql(dialect_name: str) -> str:
    """The driver-level statement adding one block's figures to a summary row."""
    low, high = ("min", "max") if dialect_name == "sqlite" else ("LEAST", "GREATEST")
    marker = "?" if dialect_name == "sqlite" else "%s"
    old = "metric_summary"
    return (f"INSERT INTO metric_summary ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join([marker] * len(_COLUMNS))}) "
            f"ON CONFLICT (task_id, set_tag, attribute) DO UPDATE SET "
            f"n = {old}.n + excluded.n, total = {old}.total + excluded.total, "
            f"lowest = {low}({old}.lowest, excluded.lowest), "
            f"highest = {high}({old}.highest, excluded.highest), "
            f"latest = CASE WHEN excluded.latest_id >= {old}.latest_id "
            f"THEN excluded.latest ELSE {old}.latest END, "
            f"latest_id = {high}({old}.latest_id, excluded.latest_id)")


def figures(values: list) -> tuple[int, float, float, float, float] | None:
    """(count, sum, lowest, highest, latest) of the finite numbers in ``values`` (None and
    anything not a number left out); None when there is none."""
    try:  # the usual block: every value a finite float, summed at C speed
        total = sum(values)
        if math.isfinite(total):
            return (len(values), float(total), float(min(values)), float(max(values)),
                    float(values[-1]))
    except TypeError:
        pass
    finite = [float(v) for v in values
              if isinstance(v, (int, float)) and not isinstance(v, bool)
              and -FINITE_MAX <= v <= FINITE_MAX]
    if not finite:
        return None
    return len(finite), math.fsum(finite), min(finite), max(finite), finite[-1]


class Summarizer:
    """Adds the elements the writer stores in the summarized sets to ``metric_summary``.

    A task's newest element (``latest_id``) is the id of its last row in the block: told by the
    insert where the backend says (SQLite), else sought among the ids above a bound below the
    block's (:meth:`lower_bound`), not among all of the task's elements (the index on a task
    column of ``otrain`` also holds its measures, so it does not keep a task's ids in order: the
    seek read every element of the task, once per block, a cost growing with the run)."""

    def __init__(self, dialect_name: str) -> None:
        self.sql = upsert_sql(dialect_name)
        self._layouts: dict[tuple, tuple[list[int], list[tuple[int, str]], dict, str]] = {}
        self._below: dict[str, int] = {}  # table -> the highest element id this writer saw

    def newest_id(self, conn: Connection, table: Table, position: dict[str, int]) -> int:
        """The highest element id of ``table`` now (0 when it is empty)."""
        return run(conn, self._layout(conn, table, position)[3]).fetchone()[0] or 0

    def lower_bound(self, conn: Connection, table: Table, position: dict[str, int]) -> int:
        """An id below those of the rows to be inserted next: the highest this summarizer has
        seen in ``table`` (ids only grow), else the table's :meth:`newest_id`."""
        found = self._below.get(table.fullname)
        return found if found is not None else self.newest_id(conn, table, position)

    def forget(self) -> None:
        """Drop the bounds (after a failed transaction: the store may have been replaced)."""
        self._below.clear()

    def add(self, conn: Connection, table: Table, position: dict[str, int], set_tag: str,
            flat: list, exec_of: dict[int, int], after_id: int = 0,
            ids: Sequence[int] | None = None) -> None:
        """Add the rows whose values ``flat`` holds, row after row (just inserted into ``table``
        of set ``set_tag``, in column order ``position``), to the summary: a column of a block
        of one task is then one slice. ``exec_of``: task id -> execution id; ``after_id``: the
        table's :meth:`newest_id` before the rows were inserted (0: not known); ``ids``: the
        ids the rows were given, in order, where the insert told them (no query then)."""
        if set_tag not in SUMMARIZED_SETS or not flat:
            return
        tasks, numeric, newest_sql, _ = self._layout(conn, table, position)
        params: list[tuple] = []
        highest = 0
        for (at, task_id), (column_of, count, last) in _by_task(flat, len(position),
                                                                 tasks).items():
            exec_id = exec_of[task_id]
            # the task's newest element: its last row here (the block's rows are the newest)
            latest_id = ids[last] if ids is not None else self._newest(conn, newest_sql[at],
                                                                       task_id, after_id)
            highest = max(highest, latest_id or 0)
            params.append((task_id, set_tag, COUNT, exec_id, count, None, None, None, None,
                           latest_id))
            for column, name in numeric:
                found = figures(column_of(column))
                if found is not None:
                    params.append((task_id, set_tag, name, exec_id, *found, latest_id))
        if params:
            run(conn, self.sql, params, many=True)
        self._below[table.fullname] = max(highest, self._below.get(table.fullname, 0))

    @staticmethod
    def _newest(conn: Connection, sql: str, task_id: int, after_id: int) -> int | None:
        found = run(conn, sql, (task_id, after_id)).fetchone()[0]
        if found is None and after_id:  # a bound too high (a store replaced): every element
            found = run(conn, sql, (task_id, 0)).fetchone()[0]
        return found

    def _layout(self, conn: Connection, table: Table, position: dict[str, int]):
        key = (table.fullname, tuple(position))
        found = self._layouts.get(key)
        if found is None:
            tasks = [i for name, i in position.items() if name.endswith("_task_id")]
            numeric = [(position[c.name], c.name) for c in table.columns
                       if c.name in position and isinstance(c.type, Double)]
            quote = conn.dialect.identifier_preparer
            marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            # A task's newest element among the ids above the block's lower bound: a range of
            # the primary key, filtered by task (in SQLite, ``+`` keeps the planner off the
            # task column's index, which would read every element of the task).
            plus = "+" if conn.dialect.name == "sqlite" else ""
            newest = {i: f"SELECT max(id) FROM {quote.format_table(table)} "
                         f"WHERE {plus}{quote.quote(name)} = {marker} AND id > {marker}"
                      for name, i in position.items() if name.endswith("_task_id")}
            highest = f"SELECT max(id) FROM {quote.format_table(table)}"
            found = self._layouts[key] = (tasks, numeric, newest, highest)
        return found


def _by_task(flat: list, width: int, tasks: list[int]
             ) -> dict[tuple[int, int], tuple[Callable[[int], list], int, int]]:
    """The rows of ``flat`` (``width`` values a row) grouped by (task column, task id) of their
    first task column holding one: each group's column getter (position -> its values), its
    row count and the position of its last row."""
    count = len(flat) // width
    if tasks:  # the usual block: every row of one task, in the first task column
        first = set(flat[tasks[0]::width])
        if len(first) == 1 and None not in first:
            return {(tasks[0], first.pop()): (lambda at: flat[at::width], count, count - 1)}
    groups: dict[tuple[int, int], tuple[list, int]] = {}
    for position, row in enumerate(zip(*[iter(flat)] * width)):
        at = next((i for i in tasks if row[i] is not None), None)
        if at is not None:
            block = groups.get((at, row[at]))
            groups[at, row[at]] = ((block[0] if block else []), position)
            groups[at, row[at]][0].append(row)
    return {key: ((lambda at, block=block: list(map(itemgetter(at), block))), len(block), last)
            for key, (block, last) in groups.items()}


def _owner(spec: DataflowSpec, table: Table, set_tag: str):
    """The task an element of the set belongs to: its producer's column first."""
    names = [*spec.producers(set_tag), *spec.transformations_of(set_tag)]
    columns = [table.c[task_column(t)] for t in dict.fromkeys(names)
               if task_column(t) in table.c]
    if not columns:
        return None
    return func.coalesce(*columns) if len(columns) > 1 else columns[0]


def summarize_set(conn: Connection, spec: DataflowSpec, set_tag: str) -> list[tuple]:
    """The summary rows of one set, aggregated from its elements (for :func:`backfill`)."""
    table = s.set_table(conn.dialect.name, spec, set_tag)
    owner = _owner(spec, table, set_tag)
    if owner is None:
        return []
    numeric = [a.name for a in spec.sets[set_tag].attributes.values()
               if a.type == AttributeType.NUMERIC]
    aggregates: list[Any] = [func.count(), func.max(table.c.id)]
    for name in numeric:
        finite = case((table.c[name].between(-FINITE_MAX, FINITE_MAX), table.c[name]))
        aggregates += [func.count(finite), func.sum(finite), func.min(finite), func.max(finite),
                       func.max(case((table.c[name].between(-FINITE_MAX, FINITE_MAX), table.c.id)))]
    query = (select(owner, s.task.c.exec_id, *aggregates).join(s.task, s.task.c.id == owner)
             .group_by(owner, s.task.c.exec_id))
    rows: list[tuple] = []
    wanted: dict[int, list[tuple[int, str]]] = {}
    for task_id, exec_id, count, newest, *found in conn.execute(query):
        rows.append((task_id, set_tag, COUNT, exec_id, count, None, None, None, None, newest))
        for i, name in enumerate(numeric):
            n, total, low, high, last_id = found[5 * i:5 * i + 5]
            if n:
                wanted.setdefault(last_id, []).append((len(rows), name))
                rows.append((task_id, set_tag, name, exec_id, n, total, low, high, None, newest))
    ids = list(wanted)
    for start in range(0, len(ids), 500):
        for element in conn.execute(select(table.c.id, *(table.c[n] for n in numeric))
                                    .where(table.c.id.in_(ids[start:start + 500]))):
            for at, name in wanted[element.id]:
                rows[at] = (*rows[at][:8], element._mapping[name], rows[at][9])
    return rows


def backfill(conn: Connection) -> int:
    """Summarize every summarized set of every dataflow from its elements, replacing what the
    summary held; returns the summary rows written. Run by a writer opening a store made before
    the summary existed, in its schema transaction."""
    from dlprov.store.specs import read_spec  # specs imports this module's neighbours

    conn.execute(s.metric_summary.delete())
    written = 0
    for tag in conn.execute(select(s.dataflow.c.tag)).scalars().all():
        found = read_spec(conn, tag)
        if found is None:
            continue
        spec = found[2]
        for set_tag in (t for t in SUMMARIZED_SETS if t in spec.sets):
            rows = summarize_set(conn, spec, set_tag)
            for start in range(0, len(rows), 1000):
                conn.execute(s.metric_summary.insert(),
                             [dict(zip(_COLUMNS, row)) for row in rows[start:start + 1000]])
            written += len(rows)
    return written


def trusted(conn: Connection, spec: DataflowSpec, set_tag: str) -> bool:
    """Whether the summary of the set holds every element of it (see the module)."""
    table = s.set_table(conn.dialect.name, spec, set_tag)
    summary, e = s.metric_summary, s.dataflow_execution
    elements = conn.execute(select(func.count()).select_from(table)).scalar() or 0
    summarized = conn.execute(
        select(func.coalesce(func.sum(summary.c.n), 0))
        .join(e, e.c.id == summary.c.exec_id)
        .join(s.dataflow, s.dataflow.c.id == e.c.df_id)
        .where(summary.c.set_tag == set_tag, summary.c.attribute == COUNT,
               s.dataflow.c.tag == spec.tag)).scalar()
    return int(summarized) == int(elements)
