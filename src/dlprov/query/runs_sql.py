"""The runs table filtered, sorted and paginated by the database: what the web UI's runs page
asks of a store of 10,000 executions without reading all of them.

Columns and filters are those of :mod:`dlprov.query.runs` (``itrain.learning_rate = 0.001``,
``otest.accuracy:best > 0.9``, ``tag.team = vision``). Each column a filter or the sort names
becomes one value per execution (a subquery correlated on it): a hyperparameter is the first
element of its set in each run; a metric is read from the metric summary
(:mod:`dlprov.store.summary`) where the summary holds every element of the set, else aggregated
from the elements. The rows of the page alone are then read in full
(:func:`dlprov.query.runs.add_set_columns`, by execution id).

Differences from the in-memory filters of ``dlprov runs``: ``status`` (which needs the process
table to tell running from unknown) is filtered and sorted on the page's candidates in Python;
text columns compare as text (``<``, ``>``), numeric ones as numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import (
    Connection,
    String,
    and_,
    case,
    cast,
    false,
    func,
    null,
    or_,
    select,
)

from dlprov.errors import QueryError
from dlprov.model.names import task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.catalogue import dataflow_tags, list_runs
from dlprov.query.runs import (
    AGGREGATES,
    BASE_COLUMNS,
    METRIC_SETS,
    RunsTable,
    _aggregate_rank,
    _set_rank,
    add_set_columns,
    lower_is_better,
    parameter_sets,
    parse_condition,
    resolve_column,
)
from dlprov.query.runs import _table as as_table
from dlprov.query.runs import _default_columns
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store
from dlprov.store.summary import FINITE_MAX, trusted

_NUMERIC_BASE = {"id", "pid", "tasks", "failed_tasks", "duration_s"}
_TIME_BASE = {"start_time", "end_time"}
_PYTHON_ONLY = {"status", "tags"}  # need the process table, or are dicts


@dataclass
class Catalogue:
    """Every column the runs of a store can have, from the dataflows' specs and the tags."""
    specs: dict[int, DataflowSpec]  # df id -> spec
    columns: list[str]
    numeric: set[str] = field(default_factory=set)
    trusted: dict[tuple[int, str], bool] = field(default_factory=dict)

    def as_table(self) -> RunsTable:
        """A rowless :class:`RunsTable` for name resolution (:func:`resolve_column`)."""
        return RunsTable([], self.columns, [])


def catalogue(conn: Connection) -> Catalogue:
    """The columns of every dataflow's runs, in the order of :func:`dlprov.query.runs._table`:
    the execution's own, tags, hyperparameters, metrics (last, best, mean)."""
    specs: dict[int, DataflowSpec] = {}
    for tag in reversed(dataflow_tags(conn)):
        found = read_spec(conn, tag)
        if found is not None:
            specs[found[0]] = found[2]
    tags = conn.execute(select(s.execution_tag.c.key).distinct()).scalars().all()
    parameters: dict[str, None] = {}
    metrics: dict[str, None] = {}
    numeric: set[str] = set(_NUMERIC_BASE)
    for spec in specs.values():
        for set_tag in parameter_sets(spec):
            for attribute in spec.sets[set_tag].attributes.values():
                name = f"{set_tag}.{attribute.name}"
                parameters.setdefault(name)
                if attribute.type == AttributeType.NUMERIC:
                    numeric.add(name)
        for set_tag in (t for t in METRIC_SETS if t in spec.sets):
            for attribute in spec.sets[set_tag].attributes.values():
                if attribute.type == AttributeType.NUMERIC:
                    for aggregate in AGGREGATES:
                        metrics.setdefault(f"{set_tag}.{attribute.name}:{aggregate}")
    numeric.update(metrics)
    ordered = sorted(metrics, key=lambda c: (_set_rank(c), c.rsplit(":", 1)[0],
                                             _aggregate_rank(c)))
    columns = list(dict.fromkeys([*BASE_COLUMNS, *sorted(f"tag.{t}" for t in tags),
                                  *parameters, *ordered]))
    return Catalogue(specs, columns, numeric)


@dataclass
class Selection:
    """The ids of the runs that meet the filters, in the order asked, and the page's rows."""
    ids: list[int]
    rows: list[dict[str, Any]]
    total: int


def select_page(store: Store, found: Catalogue, where: Sequence[str], sort: str | None,
                start: int, count: int) -> Selection:
    """The runs meeting every ``where`` expression, sorted by ``sort`` (``COLUMN[:asc|:desc]``,
    default newest first), and the full rows of ``count`` of them from ``start``."""
    table = found.as_table()
    conditions = [parse_condition(w, table) for w in where]
    column, descending = _sort_of(sort, table)
    e = s.dataflow_execution
    with store.read() as conn:
        query = (select(e.c.id, e.c.status, e.c.hostname, e.c.pid)
                 .join(s.dataflow, s.dataflow.c.id == e.c.df_id))
        values = {name: _value_of(conn, found, name)
                  for name in {c.column for c in conditions} | ({column} if column else set())
                  if name not in _PYTHON_ONLY}
        for condition in conditions:
            if condition.column not in _PYTHON_ONLY:
                query = query.where(_sql_condition(condition, values[condition.column],
                                                   condition.column in found.numeric,
                                                   condition.column in _TIME_BASE))
        if column is not None and column in values:
            value = values[column]
            query = query.order_by(case((value.is_(None), 1), else_=0),
                                   value.desc() if descending else value.asc())
        query = query.order_by(e.c.start_time.desc(), e.c.id.desc())
        total = conn.execute(select(func.count()).select_from(e)).scalar() or 0
        candidates = conn.execute(query).all()
        ids = _python_filters(candidates, conditions, column, descending)
        page = ids[start:start + count]
        rows = rows_for(store, conn, found, page)
    return Selection(ids, rows, total)


def _sort_of(sort: str | None, table: RunsTable) -> tuple[str | None, bool]:
    if not sort:
        return None, False
    column, descending = sort, False
    for suffix in (":desc", ":asc"):
        if sort.lower().endswith(suffix):
            column, descending = sort[:-len(suffix)], suffix == ":desc"
    return resolve_column(column, table), descending


def _python_filters(candidates: list, conditions: list, column: str | None,
                    descending: bool) -> list[int]:
    """The candidates' ids after the status filters and sort, which need the process table."""
    from dlprov.query.liveness import observed_status
    python = [c for c in conditions if c.column in _PYTHON_ONLY]
    if not python and column not in _PYTHON_ONLY:
        return [row.id for row in candidates]
    rows = [{"id": row.id, "status": observed_status(row.status, row.hostname, row.pid),
             "tags": {}} for row in candidates]
    if any(c.column == "tags" for c in python):
        raise QueryError("filter on tag.KEY, not on tags")
    rows = [row for row in rows if all(c(row) for c in python)]
    if column == "status":
        rows.sort(key=lambda row: (row["status"] is None, str(row["status"])),
                  reverse=descending)
    return [row["id"] for row in rows]


def rows_for(store: Store, conn: Connection, found: Catalogue, ids: list[int]
             ) -> list[dict[str, Any]]:
    """The full rows of the executions ``ids``, in that order."""
    if not ids:
        return []
    rows = list_runs(store, ids=ids)
    by_id = {row["id"]: row for row in rows}
    for spec in found.specs.values():
        mine = {row["id"]: row for row in rows if str(row["df_tag"]).lower() == spec.tag}
        if mine:
            add_set_columns(conn, spec, mine)
    as_table(rows)  # tag.KEY columns
    return [by_id[i] for i in ids if i in by_id]


# -- one column's values ------------------------------------------------------------------------
# Each value is a scalar subquery correlated on the execution: one index seek per run (SQLite
# does not index a derived table on the right of a LEFT JOIN, and scans it once per run).
def _value_of(conn: Connection, found: Catalogue, name: str):
    """The SQL value of column ``name`` for each execution (of ``dataflow_execution``)."""
    e, t = s.dataflow_execution, s.task
    if name in ("tasks", "failed_tasks"):
        counted = func.count() if name == "tasks" else func.count(case((t.c.status == "failed",
                                                                         1)))
        return select(counted).where(t.c.exec_id == e.c.id).scalar_subquery()
    base = _base_value(conn, name)
    if base is not None:
        return base
    if name.startswith("tag."):
        tags = s.execution_tag
        return (select(tags.c.value).where(tags.c.exec_id == e.c.id, tags.c.key == name[4:])
                .scalar_subquery())
    per_dataflow = (_metric_values(conn, found, name) if ":" in name
                    else _parameter_values(conn, found, name))
    if not per_dataflow:
        return null()
    if len(per_dataflow) == 1 and len(found.specs) == 1:
        return next(iter(per_dataflow.values()))
    return case(*((e.c.df_id == df_id, value) for df_id, value in per_dataflow.items()))


def _base_value(conn: Connection, name: str):
    e = s.dataflow_execution
    direct = {"id": e.c.id, "exec_tag": e.c.tag, "start_time": e.c.start_time,
              "end_time": e.c.end_time, "hostname": e.c.hostname, "username": e.c.username,
              "pid": e.c.pid, "notes": e.c.notes,
              "df_tag": func.coalesce(s.dataflow.c.label, s.dataflow.c.tag)}
    if name in direct:
        return direct[name]
    if name == "duration_s":
        if conn.dialect.name == "postgresql":
            return func.extract("epoch", e.c.end_time - e.c.start_time)
        return (func.julianday(e.c.end_time) - func.julianday(e.c.start_time)) * 86400.0
    return None


def _owner(spec: DataflowSpec, table, set_tag: str):
    columns = [table.c[task_column(t)] for t in spec.transformations_of(set_tag)
               if task_column(t) in table.c]
    if not columns:
        return None
    return func.coalesce(*columns) if len(columns) > 1 else columns[0]


def _parameter_values(conn: Connection, found: Catalogue, name: str) -> dict[int, Any]:
    """Per dataflow having hyperparameter ``SET.NAME``: its value in a run, that of the first
    element of the set (as text where the dataflows' types differ)."""
    set_tag, attribute = name.split(".", 1)
    holders = {df_id: spec for df_id, spec in found.specs.items()
               if set_tag in parameter_sets(spec) and attribute in spec.sets[set_tag].attributes}
    kinds = {spec.sets[set_tag].attributes[attribute].type for spec in holders.values()}
    values = {}
    for df_id, spec in holders.items():
        table = s.set_table(conn.dialect.name, spec, set_tag)
        owner = _owner(spec, table, set_tag)
        if owner is None:
            continue
        value = table.c[attribute]
        if len(kinds) > 1:
            value = cast(value, String)
        values[df_id] = (select(value).join(s.task, s.task.c.id == owner)
                         .where(s.task.c.exec_id == s.dataflow_execution.c.id)
                         .order_by(table.c.id).limit(1).scalar_subquery())
    return values


def _metric_values(conn: Connection, found: Catalogue, name: str) -> dict[int, Any]:
    """Per dataflow having metric ``SET.NAME:AGG``: its value in a run, from the metric summary
    where it holds every element of the set, else aggregated from the elements."""
    column, aggregate = name.rsplit(":", 1)
    set_tag, attribute = column.split(".", 1)
    values = {}
    for df_id, spec in found.specs.items():
        if set_tag not in spec.sets or attribute not in spec.sets[set_tag].attributes:
            continue
        key = (df_id, set_tag)
        if key not in found.trusted:
            found.trusted[key] = _trusted(conn, spec, set_tag)
        values[df_id] = (_summary_value(set_tag, attribute, aggregate) if found.trusted[key]
                         else _element_value(conn, spec, set_tag, attribute, aggregate))
    return {k: v for k, v in values.items() if v is not None}


def _trusted(conn: Connection, spec: DataflowSpec, set_tag: str) -> bool:
    try:
        return trusted(conn, spec, set_tag)
    except Exception:  # noqa: BLE001 - a store made before the summary: read the elements
        return False


def _summary_value(set_tag: str, attribute: str, aggregate: str):
    m = s.metric_summary
    query = select().where(m.c.exec_id == s.dataflow_execution.c.id, m.c.set_tag == set_tag,
                           m.c.attribute == attribute)
    if aggregate == "last":  # the latest of the run's latest task
        return (query.add_columns(m.c.latest).order_by(m.c.latest_id.desc()).limit(1)
                .scalar_subquery())
    if aggregate == "mean":
        value = func.sum(m.c.total) / func.sum(m.c.n)
    elif lower_is_better(attribute):
        value = func.min(m.c.lowest)
    else:
        value = func.max(m.c.highest)
    return query.add_columns(value).scalar_subquery()


def _element_value(conn: Connection, spec: DataflowSpec, set_tag: str, attribute: str,
                   aggregate: str):
    """A metric of a run aggregated from the set's elements (no summary to trust)."""
    table = s.set_table(conn.dialect.name, spec, set_tag)
    owner = _owner(spec, table, set_tag)
    if owner is None:
        return None
    value = table.c[attribute]
    is_finite = value.between(-FINITE_MAX, FINITE_MAX)
    query = (select().join_from(table, s.task, s.task.c.id == owner)
             .where(s.task.c.exec_id == s.dataflow_execution.c.id, is_finite))
    if aggregate == "last":
        return query.add_columns(value).order_by(table.c.id.desc()).limit(1).scalar_subquery()
    if aggregate == "mean":
        found = func.avg(value)
    elif lower_is_better(attribute):
        found = func.min(value)
    else:
        found = func.max(value)
    return query.add_columns(found).scalar_subquery()


# -- one condition ------------------------------------------------------------------------------
def _sql_condition(condition, value, numeric: bool, timestamp: bool):
    """The SQL form of one filter (see :class:`dlprov.query.runs.Condition`): a run without the
    value matches ``!=`` only."""
    op, wanted = condition.op, condition.value
    missing = value.is_(None)
    if op == "~":
        return and_(~missing, cast(value, String).icontains(wanted, autoescape=True))
    operand: Any = wanted
    if numeric:
        number = _number(wanted)
        if number is None:
            if op in ("=", "!="):
                return or_(missing, ~missing) if op == "!=" else false()
            raise QueryError(f"{condition.column} is a number: {wanted!r} is not one")
        operand = number
    elif timestamp:
        try:
            operand = datetime.fromisoformat(wanted)
        except ValueError:
            value = cast(value, String)
    compared = {"=": value == operand, "!=": value != operand, "<": value < operand,
                "<=": value <= operand, ">": value > operand, ">=": value >= operand}[op]
    return or_(missing, compared) if op == "!=" else compared


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if -FINITE_MAX <= number <= FINITE_MAX else None


def default_columns(found: Catalogue) -> list[str]:
    """The compact selection of ``dlprov runs`` for these columns."""
    return _default_columns([], found.columns)

