"""The runs table: one row per execution with its hyperparameters, metrics and tags, filtered,
sorted and cut to the columns asked for (``dlprov runs``).

Column names:

- the execution's own: ``id``, ``exec_tag``, ``df_tag``, ``status``, ``start_time``,
  ``end_time``, ``duration_s``, ``tasks``, ``failed_tasks``, ``hostname``, ``username``,
  ``pid``, ``notes``, ``tags`` (a dict; text ``k=v, ...`` in tables);
- ``tag.KEY``: one tag;
- ``SET.NAME``: a hyperparameter, the first value of an input set of the training
  transformation (the one producing ``otrain``; else the set ``itrain``), e.g.
  ``itrain.learning_rate``;
- ``SET.NAME:AGG``: a numeric metric of ``otrain`` or ``otest`` over the run's elements in the
  order they were recorded, AGG being ``last``, ``best`` (the lowest for names meaning an error:
  loss, error, mse, mae, perplexity; else the highest) or ``mean``, e.g. ``otest.accuracy:last``.

Shorter names resolve too: ``otest.accuracy`` is ``otest.accuracy:last``; a bare ``NAME`` (or
``NAME:AGG``) is the first of the hyperparameter, ``otest`` and ``otrain`` columns of that name.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Connection, case, func, select

from dlprov.errors import QueryError
from dlprov.model.names import task_column
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.catalogue import dataflow_tags, list_runs
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store, as_store
from dlprov.store.summary import FINITE_MAX

METRIC_SETS = ("otest", "otrain")
AGGREGATES = ("last", "best", "mean")
BASE_COLUMNS = ("id", "exec_tag", "df_tag", "status", "start_time", "end_time", "duration_s",
                "tasks", "failed_tasks", "hostname", "username", "pid", "tags", "notes")
_LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity")
# Counters and clocks, left out of the default columns: not what runs are compared by.
_BOOKKEEPING = frozenset({"epoch", "epochs", "step", "steps", "batch", "iteration",
                          "timestamp", "time", "elapsed_time", "duration"})
_DEFAULT_PARAMETERS = 2
_DEFAULT_METRICS = 2


@dataclass
class RunsTable:
    """The rows (dicts holding every column) and the column names in a useful order."""
    rows: list[dict[str, Any]]
    columns: list[str]
    #: The compact selection ``dlprov runs`` shows in a table unless asked for others.
    default_columns: list[str]


def runs_table(store: Store | str | None = None, df_tag: str | None = None) -> RunsTable:
    """Every execution (of dataflow ``df_tag`` if given), newest first, with its tags,
    hyperparameters and metrics as columns (see the module for the names). Over an ``http://``
    store, the server's ``GET /v1/runs`` answers it."""
    store = as_store(store)
    if store.remote:
        from urllib.parse import urlencode
        from dlprov.store import http
        query = f"?{urlencode({'dataflow': df_tag})}" if df_tag else ""
        rows = http.get_json(store.url, f"/v1/runs{query}") or []
    else:
        rows = runs_rows(store, df_tag)
    return _table(rows)


def runs_rows(store: Store, df_tag: str | None = None) -> list[dict[str, Any]]:
    """The rows of :func:`runs_table` read from a database store (the server's answer)."""
    rows = list_runs(store, df_tag)
    if not rows:
        return rows
    by_id = {row["id"]: row for row in rows}
    with store.read() as conn:
        tags = [df_tag.lower()] if df_tag else dataflow_tags(conn)
        for tag in tags:
            found = read_spec(conn, tag)
            if found is not None:
                add_set_columns(conn, found[2], by_id)
    return rows


def add_set_columns(conn: Connection, spec: DataflowSpec, by_id: dict[int, dict]) -> None:
    """Add to the rows ``by_id`` (execution id -> row) of dataflow ``spec`` their hyperparameter
    and metric columns, read for those executions only when they are a few (a page, or the
    runs still going), else for the whole dataflow."""
    for set_tag in parameter_sets(spec):
        for exec_id, values in _set_values(conn, spec, set_tag, by_id):
            row = by_id[exec_id]
            for name, value in values.items():
                row.setdefault(f"{set_tag}.{name}", value)  # the first element's
    for set_tag in (t for t in METRIC_SETS if t in spec.sets):
        _add_metric_columns(conn, spec, set_tag, by_id)


# The largest finite double: comparisons with it keep a value only if it is finite (NaN, which
# PostgreSQL orders above every number, and infinities are left out, as from a curve's best).


def _add_metric_columns(conn: Connection, spec: DataflowSpec, set_tag: str,
                        by_id: dict[int, dict]) -> None:
    """``SET.NAME:last|best|mean`` of every numeric attribute of a metric set, per execution,
    over its finite values: aggregated by the database (a million epochs are not sent to
    Python), the last value read by the id of the last element holding one."""
    numeric = [a.name for a in spec.sets[set_tag].attributes.values()
               if a.type == AttributeType.NUMERIC]
    table = s.set_table(conn.dialect.name, spec, set_tag)
    task_ids = [table.c[task_column(t)] for t in spec.transformations_of(set_tag)]
    if not numeric or not task_ids:
        return
    owner = func.coalesce(*task_ids) if len(task_ids) > 1 else task_ids[0]
    aggregates = []
    for name in numeric:
        is_finite = table.c[name].between(-FINITE_MAX, FINITE_MAX)
        finite = case((is_finite, table.c[name]))
        aggregates += [func.count(finite), func.avg(finite), func.min(finite), func.max(finite),
                       func.max(case((is_finite, table.c.id)))]
    query = _of_executions(select(s.task.c.exec_id, *aggregates)
                           .join(s.task, s.task.c.id == owner), by_id).group_by(s.task.c.exec_id)
    last_of: dict[int, list[tuple[int, str]]] = {}
    for exec_id, *found in conn.execute(query):
        row = by_id.get(exec_id)
        if row is None:
            continue
        for i, name in enumerate(numeric):
            count, mean, lowest, highest, last_id = found[5 * i:5 * i + 5]
            if not count:
                continue
            row.update({f"{set_tag}.{name}:last": None,  # filled below, first in the order
                        f"{set_tag}.{name}:best": lowest if lower_is_better(name) else highest,
                        f"{set_tag}.{name}:mean": mean})
            last_of.setdefault(last_id, []).append((exec_id, name))
    ids = list(last_of)
    for start in range(0, len(ids), 500):
        query = (select(table.c.id, *(table.c[n] for n in numeric))
                 .where(table.c.id.in_(ids[start:start + 500])))
        for element in conn.execute(query):
            for exec_id, name in last_of[element.id]:
                by_id[exec_id][f"{set_tag}.{name}:last"] = element._mapping[name]


# Up to this many executions are read by id (through the task table's exec_id index); more
# are read with the whole dataflow, which is cheaper than a long IN list.
_BY_ID = 500


def _of_executions(query, by_id: dict[int, dict]):
    """``query`` (joined to ``task``) kept to the executions ``by_id`` when they are few."""
    return query.where(s.task.c.exec_id.in_(list(by_id))) if len(by_id) <= _BY_ID else query


def parameter_sets(spec: DataflowSpec) -> list[str]:
    """The sets holding a dataflow's hyperparameters: the input sets of the transformations
    that produce ``otrain``, else ``itrain`` where the dataflow has it."""
    found = [t for producer in spec.producers("otrain") for t in spec.sets_of(producer, "input")]
    if not found and "itrain" in spec.sets:
        found = ["itrain"]
    return list(dict.fromkeys(t for t in found if spec.sets[t].attributes))


def lower_is_better(metric: str) -> bool:
    """Whether the best value of ``metric`` is its lowest (a loss or an error)."""
    words = re.split(r"[^a-z]+", metric.lower())
    return any(w in _LOWER_IS_BETTER for w in words) or "loss" in metric.lower()


def _set_values(conn: Connection, spec: DataflowSpec, set_tag: str,
                by_id: dict[int, dict]) -> Iterable[tuple[int, dict[str, Any]]]:
    """(exec id, attribute values) of every element of the set, in the order recorded."""
    table = s.set_table(conn.dialect.name, spec, set_tag)
    task_ids = [table.c[task_column(t)] for t in spec.transformations_of(set_tag)]
    if not task_ids:
        return
    names = list(spec.sets[set_tag].attributes)
    owner = func.coalesce(*task_ids) if len(task_ids) > 1 else task_ids[0]
    query = _of_executions(select(s.task.c.exec_id, *(table.c[n] for n in names))
                           .join(s.task, s.task.c.id == owner), by_id).order_by(table.c.id)
    for exec_id, *values in conn.execute(query):
        if exec_id in by_id:
            yield exec_id, dict(zip(names, values))


def _table(rows: list[dict[str, Any]]) -> RunsTable:
    tags: dict[str, None] = {}
    for row in rows:
        row["tags"] = row.get("tags") or {}
        for key, value in row["tags"].items():
            row[f"tag.{key}"] = value
            tags.setdefault(f"tag.{key}")
    found = dict.fromkeys(c for row in rows for c in row)  # parameters in the spec's order
    parameters = [c for c in found if _is_parameter(c)]
    metrics = sorted((c for c in found if ":" in c),
                     key=lambda c: (_set_rank(c), c.rsplit(":", 1)[0], _aggregate_rank(c)))
    columns = list(dict.fromkeys([*BASE_COLUMNS, *sorted(tags), *parameters, *metrics,
                                  *found]))
    return RunsTable(rows, columns, _default_columns(rows, columns))


def _is_parameter(column: str) -> bool:
    return "." in column and ":" not in column and not column.startswith("tag.")


def _set_rank(column: str) -> int:
    set_tag = column.split(".", 1)[0]
    return METRIC_SETS.index(set_tag) if set_tag in METRIC_SETS else len(METRIC_SETS)


def _aggregate_rank(column: str) -> int:
    aggregate = column.rsplit(":", 1)[-1]
    return AGGREGATES.index(aggregate) if aggregate in AGGREGATES else len(AGGREGATES)


def _default_columns(rows: list[dict], columns: list[str]) -> list[str]:
    chosen = ["id", "exec_tag"]
    if len({row.get("df_tag") for row in rows}) > 1:
        chosen.append("df_tag")
    chosen += ["status", "start_time", "duration_s"]
    if any(row.get("tags") for row in rows):
        chosen.append("tags")
    chosen += [c for c in columns if _is_parameter(c)][:_DEFAULT_PARAMETERS]
    metrics = [c for c in columns if c.endswith(":last")
               and c.split(".", 1)[1].split(":")[0] not in _BOOKKEEPING]
    chosen += metrics[:_DEFAULT_METRICS]
    return chosen


# -- naming, filtering, sorting ---------------------------------------------------------------
def resolve_column(name: str, table: RunsTable) -> str:
    """The full column name that ``name`` stands for (see the module), or a :class:`QueryError`
    listing the available columns."""
    name = name.strip()
    if name in table.columns:
        return name
    if re.fullmatch(r"tag\.[A-Za-z][A-Za-z0-9_-]*", name):
        return name  # a tag no run has: matches nothing, but is no mistake
    base, _, aggregate = name.partition(":")
    if aggregate and aggregate not in AGGREGATES:
        raise QueryError(f"unknown aggregate {aggregate!r} in column {name!r}: use one of "
                         f"{', '.join(AGGREGATES)}")
    if "." in base:
        candidates = [f"{base}:{aggregate or 'last'}"]
    else:
        parameters = [c for c in table.columns
                      if _is_parameter(c) and c.split(".", 1)[1] == base]
        candidates = ([] if aggregate else parameters) + [
            f"{t}.{base}:{aggregate or 'last'}" for t in METRIC_SETS]
    for candidate in candidates:
        if candidate in table.columns:
            return candidate
    raise QueryError(f"unknown column {name!r}; available: {', '.join(table.columns)}")


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq,
    "<": operator.lt, ">": operator.gt, "~": lambda cell, text: text.lower() in cell.lower(),
}
_EXPRESSION = re.compile(r"\s*([^\s<>=!~]+)\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*\Z", re.S)


@dataclass(frozen=True)
class Condition:
    """One filter: ``column op value`` (see :func:`parse_condition`)."""
    column: str
    op: str
    value: str

    def __call__(self, row: dict[str, Any]) -> bool:
        cell = row.get(self.column)
        if cell is None:  # a run without the value is no match, but differs from any value
            return self.op == "!="
        if isinstance(cell, bool):
            cell = str(cell).lower()
        if self.op != "~":
            number, wanted = _number(cell), _number(self.value)
            if number is not None and wanted is not None:
                return _OPERATORS[self.op](number, wanted)
            if isinstance(cell, (int, float)) and self.op not in ("=", "!="):
                raise QueryError(f"{self.column} is a number: {self.value!r} is not one")
        return _OPERATORS[self.op](_text(cell), self.value)


def parse_condition(expression: str, table: RunsTable) -> Condition:
    """``COLUMN OP VALUE`` with OP one of ``= != < <= > >= ~`` (``~``: contains, ignoring
    case), e.g. ``learning_rate=0.001``, ``otest.accuracy:best>0.9``, ``tag.team=vision``.
    Numbers compare as numbers, anything else as text."""
    found = _EXPRESSION.match(expression)
    if found is None or not found.group(3) or found.group(3)[0] in "<>=!":
        raise QueryError(f"bad filter {expression!r}: write COLUMN OP VALUE with OP one of "
                         f"= != < <= > >= ~ (e.g. status=failed); columns: "
                         f"{', '.join(table.columns)}")
    column, op, value = found.groups()
    return Condition(resolve_column(column, table), op, value)


def select_runs(table: RunsTable, where: Sequence[str] = (), sort: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``table`` that meet every ``where`` expression (:func:`parse_condition`),
    sorted by ``sort`` (``COLUMN`` or ``COLUMN:desc``; runs lacking the value last; default:
    newest first), at most ``limit`` of them."""
    conditions = [parse_condition(expression, table) for expression in where]
    rows = [row for row in table.rows if all(c(row) for c in conditions)]
    if sort:
        rows = sort_rows(rows, sort, table)
    return rows[:limit] if limit is not None else rows


def sort_rows(rows: list[dict], sort: str, table: RunsTable) -> list[dict]:
    """``rows`` sorted by ``COLUMN[:asc|:desc]``; numbers before text, missing values last."""
    column, descending = sort, False
    for suffix in (":desc", ":asc"):
        if sort.lower().endswith(suffix):
            column, descending = sort[:-len(suffix)], suffix == ":desc"
    column = resolve_column(column, table)
    present = [row for row in rows if row.get(column) is not None]
    missing = [row for row in rows if row.get(column) is None]
    present.sort(key=lambda row: _sort_key(row[column]), reverse=descending)
    return present + missing


def _sort_key(value: Any) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _text(value))


def _number(value: Any) -> float | None:
    """``value`` as a finite number (a number, or text that writes one), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shown_columns(table: RunsTable, columns: Iterable[str] | None, *,
                  everything: bool) -> list[str]:
    """The columns to show: those named (comma-separated items; ``all``: every column), else
    every column (``everything``) or the compact default."""
    names = [n.strip() for item in columns or () for n in item.split(",") if n.strip()]
    if not names:
        return list(table.columns if everything else table.default_columns)
    if names == ["all"]:
        return list(table.columns)
    return list(dict.fromkeys(resolve_column(n, table) for n in names))


def display_value(value: Any) -> Any:
    """A cell as a table shows it: tags as ``k=v, ...``."""
    return _text(value) if isinstance(value, dict) else value
