"""The relations several questions share, as common table expressions over a dataflow's spec.

Names start with an underscore: set tags start with a letter, so no set is ever shadowed.

- ``_lineage(root_id, task_id, depth)``: every task upstream of the seeds, at any depth (the
  longest path is the ``MAX(depth)`` of a task's rows).
- ``_evaluations(test_task_id, train_task_id)``: a test task and the training task it evaluated.
- ``_tested(train_task_id, test_task_id, test_<attribute>...)``: the measures of ``otest``.
- ``_produced(set_tag, element_id, task_id, files, data)``: each element and the task making it.
- ``_used(task_id, set_tag, element_id, producer_task_id, files, data)``: each element a task
  used: through ``task_usage`` (every consumer, not only the first one the set table keeps),
  or recorded as its own input (``producer_task_id`` NULL).
- ``_values(set_tag, element_id, value)``: the text and file values of elements.

``files`` is the element's file attributes, ``data`` all its attributes as ``name=value, ...``.

:func:`best_trainings` is the final SELECT that Q3, Q4 and Q6 share; :func:`ranking` the
relations giving the metric they rank trainings by (``_tested``, or ``_measure(train_task_id,
<avg|last>_<metric>)`` for a set the training produced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from dlprov.model.names import ITRAIN, OTEST, TEST, TRAIN
from dlprov.model.spec import AttributeType
from dlprov.query.building import Context
from dlprov.query.choice import Metric

_NO_ELEMENTS = ("SELECT CAST(NULL AS TEXT), CAST(NULL AS INTEGER), CAST(NULL AS INTEGER), "
                "CAST(NULL AS TEXT), CAST(NULL AS TEXT) WHERE 1 = 0")


def edges_of(data_only: bool = False) -> str:
    """A derived table ``(task_id, upstream_id)``: a task and one it depended on or used data of
    (``data_only``: used data of, task_usage alone). Inline and ``UNION ALL``, so that a join on
    either column reaches each table through its index (a CTE, or a ``UNION`` that removes
    duplicates, was scanned whole at every step of a walk: Q10 on PostgreSQL took seconds)."""
    usage = "SELECT task_id, producer_task_id AS upstream_id FROM task_usage"
    if data_only:
        return f"({usage})"
    return f"(SELECT task_id, depends_on_id AS upstream_id FROM task_dependency\n" \
           f"        UNION ALL {usage})"


def lineage_cte(seeds: str, dialect: str = "postgresql", *, data_only: bool = False) -> str:
    """``_seeds`` (``seeds`` selects root_id, task_id, depth) and ``_lineage`` walking up from
    them. SQLite follows each edge table by its ``task_id`` index (one recursive step per table,
    ``data_only``: task_usage alone), so a model's trace reads its own edges only; PostgreSQL
    allows one reference to the recursive table, so it follows their union (:func:`edges_of`)."""
    # no path in a DAG of tasks is longer than the store's tasks: the bound only stops a cycle
    bound = "l.depth < (SELECT COUNT(*) FROM task)"
    if dialect == "sqlite":
        steps = [f"""SELECT l.root_id, tu.producer_task_id, l.depth + 1
  FROM _lineage l JOIN task_usage tu ON tu.task_id = l.task_id WHERE {bound}"""]
        if not data_only:
            steps.insert(0, f"""SELECT l.root_id, td.depends_on_id, l.depth + 1
  FROM _lineage l JOIN task_dependency td ON td.task_id = l.task_id WHERE {bound}""")
    else:
        steps = [f"""SELECT l.root_id, e.upstream_id, l.depth + 1
  FROM _lineage l JOIN {edges_of(data_only)} e ON e.task_id = l.task_id WHERE {bound}"""]
    walk = "\n  UNION\n  ".join(steps)
    return f"""_seeds(root_id, task_id, depth) AS (
  {seeds.strip()}
),
_lineage(root_id, task_id, depth) AS (
  SELECT root_id, task_id, depth FROM _seeds
  UNION
  {walk}
)"""


# The test tasks that evaluated training task :train_task_id (as in _evaluations), read through
# the edge tables' upstream index: one model's tests without a table of every evaluation.
TESTS_OF_MODEL = f"""SELECT td.task_id FROM task_dependency td
  JOIN task c ON c.id = td.task_id
  JOIN data_transformation ct ON ct.id = c.dt_id
  WHERE td.depends_on_id = :train_task_id AND ct.tag = '{TEST}'
  UNION
  SELECT tu.task_id FROM task_usage tu
  JOIN task c ON c.id = tu.task_id
  JOIN data_transformation ct ON ct.id = c.dt_id
  WHERE tu.producer_task_id = :train_task_id AND ct.tag = '{TEST}'"""


# Each test task's edges read through the edge tables' task_id index (no table of every edge).
EVALUATIONS = f"""_evaluations(test_task_id, train_task_id) AS (
  SELECT c.id, td.depends_on_id
  FROM task c
  JOIN data_transformation ct ON ct.id = c.dt_id
  JOIN task_dependency td ON td.task_id = c.id
  JOIN task p ON p.id = td.depends_on_id
  JOIN data_transformation pt ON pt.id = p.dt_id
  WHERE ct.tag = '{TEST}' AND pt.tag = '{TRAIN}'
  UNION
  SELECT c.id, tu.producer_task_id
  FROM task c
  JOIN data_transformation ct ON ct.id = c.dt_id
  JOIN task_usage tu ON tu.task_id = c.id
  JOIN task p ON p.id = tu.producer_task_id
  JOIN data_transformation pt ON pt.id = p.dt_id
  WHERE ct.tag = '{TEST}' AND pt.tag = '{TRAIN}'
)"""


# The edge tables, each with its alias and its upstream task column (its downstream one is
# task_id): a test task depends on its training (task_dependency) or uses its model (task_usage).
_EDGE_TABLES = (("td", "task_dependency", "depends_on_id"), ("tu", "task_usage", "producer_task_id"))


def evaluations_among(trainings: str) -> str:
    """``_evaluations`` of the training tasks of the common table ``trainings`` (which has
    ``train_task_id``) only: each one's tests found through the edge tables' upstream indexes,
    not the test tasks of the whole store joined to them afterwards."""
    branches = [f"""SELECT {e}.task_id, {e}.{upstream}
  FROM {trainings} tr
  JOIN {table} {e} ON {e}.{upstream} = tr.train_task_id
  JOIN task c ON c.id = {e}.task_id
  JOIN data_transformation ct ON ct.id = c.dt_id
  WHERE ct.tag = '{TEST}'""" for e, table, upstream in _EDGE_TABLES]
    return ("_evaluations(test_task_id, train_task_id) AS (\n  "
            + "\n  UNION\n  ".join(branches) + "\n)")


def tested_cte(ctx: Context, question: str, set_tag: str = OTEST) -> str:
    """``_tested``: the measures of every evaluated training task in ``set_tag`` (a set of
    the test transformation, otest by default) (needs _evaluations)."""
    ctx.require(question, set_tag, transformation=TEST)
    measures = ", ".join(ctx.select_attributes("ot", set_tag, prefix="test_"))
    return f"""_tested AS (
  SELECT ev.train_task_id, ot.{ctx.task_col(TEST)} AS test_task_id, {measures}
  FROM {ctx.q(set_tag)} ot
  JOIN _evaluations ev ON ev.test_task_id = ot.{ctx.task_col(TEST)}
)"""


def measure_cte(ctx: Context, question: str, metric: Metric, aggregate: str) -> str:
    """``_measure(train_task_id, <aggregate>_<metric>)``: per training task, the average
    (``aggregate`` "avg") or the last recorded number ("last", by insertion) of ``metric``
    in a set the training produced."""
    ctx.require(question, metric.set_tag, metric.name, transformation=TRAIN)
    train, value, table = ctx.task_col(TRAIN), ctx.q(metric.name), ctx.q(metric.set_tag)
    column = ctx.q(f"{aggregate}_{metric.name}")
    if aggregate == "avg" and ctx.summarized(metric.set_tag):
        return f"""_measure AS (
  SELECT ms.task_id AS train_task_id, ms.total / ms.n AS {column}
  FROM {summary_rows(ctx, metric.set_tag, metric.name)}
)"""
    if aggregate == "avg":
        return f"""_measure AS (
  SELECT o.{train} AS train_task_id, AVG(o.{value}) AS {column}
  FROM {table} o
  WHERE o.{train} IS NOT NULL AND {ctx.finite_number('o.' + value)}
  GROUP BY o.{train}
)"""
    return f"""_measure AS (
  SELECT o.{train} AS train_task_id, o.{value} AS {column}
  FROM {table} o
  WHERE o.id = (SELECT MAX(p.id) FROM {table} p
                WHERE p.{train} = o.{train} AND {ctx.finite('p.' + value)})
)"""


def summary_rows(ctx: Context, set_tag: str, attribute: str, alias: str = "ms",
                 joined: str = "") -> str:
    """A FROM clause: the ``metric_summary`` rows (as ``alias``) of ``attribute`` of
    ``set_tag`` (``''``: the element counts) of this dataflow's training tasks, with the
    ``joined`` clauses after the table. Use it only where :meth:`Context.summarized` says the
    summary is whole."""
    return f"""metric_summary {alias}{joined}
  JOIN task st ON st.id = {alias}.task_id
  JOIN data_transformation sdt ON sdt.id = st.dt_id
  JOIN dataflow sdf ON sdf.id = sdt.df_id
  WHERE {alias}.set_tag = {ctx.literal(set_tag)} AND {alias}.attribute = '{attribute}'
    AND sdt.tag = '{TRAIN}' AND sdf.tag = :dataflow"""


@dataclass
class Ranking:
    """How Q3–Q6 rank trainings by a metric: common table expressions giving ``source``
    (``_tested`` or ``_measure``, one row per training, or per training and test task) with
    the number to rank by in column ``measure``, and the ``columns`` of ``source`` to show."""

    metric: Metric
    ctes: list[str]
    source: str
    measure: str
    columns: list[str]
    note: str


def ranking(ctx: Context, question: str, metric: Metric, aggregate: str = "last",
            among: str | None = None) -> Ranking:
    """The :class:`Ranking` by ``metric``: the test measures of the trainings a test task
    evaluated (``_tested``) where a test produced its set, else per training
    the ``aggregate`` ("avg" or "last") of the numbers the training recorded (``_measure``).
    ``among``: a common table of the only trainings of interest (``train_task_id``), defined
    before the ranking's: their tests are sought from them (the ranking may hold others)."""
    if metric.producer == TEST:
        evaluations = evaluations_among(among) if among else EVALUATIONS
        return Ranking(metric, [evaluations, tested_cte(ctx, question, metric.set_tag)],
                       "_tested", ctx.q("test_" + metric.name),
                       tested_columns(ctx, metric.set_tag),
                       metric.describe("the value of each test task"))
    column = ctx.q(f"{aggregate}_{metric.name}")
    how = "average per training" if aggregate == "avg" else "last value per training"
    return Ranking(metric, [measure_cte(ctx, question, metric, aggregate)], "_measure",
                   column, [column], metric.describe(how))


def _files(ctx: Context, set_tag: str) -> str:
    names = ctx.attributes(set_tag, AttributeType.FILE)
    if not names:
        return "CAST(NULL AS TEXT)"
    if len(names) == 1:
        return f"CAST(x.{ctx.q(names[0])} AS TEXT)"
    return " || ' ' || ".join(f"COALESCE(CAST(x.{ctx.q(n)} AS TEXT), '')" for n in names)


def _data(ctx: Context, set_tag: str) -> str:
    parts = [f"'{', ' if i else ''}{name}=' || COALESCE(CAST(x.{ctx.q(name)} AS TEXT), 'null')"
             for i, name in enumerate(ctx.attributes(set_tag))]
    return " || ".join(parts) or "''"


def _among(column: str, within: str | None) -> str:
    return f" AND {column} IN ({within})" if within else ""


def _description(ctx: Context, set_tag: str, described: bool) -> str:
    """The ``files, data`` columns of an element of ``set_tag`` (NULL, NULL if not described)."""
    if not described:
        return "CAST(NULL AS TEXT), CAST(NULL AS TEXT)"
    return f"{_files(ctx, set_tag)},\n         {_data(ctx, set_tag)}"


def produced_cte(ctx: Context, within: str | None = None,
                 sets: Iterable[str] | None = None, described: bool = True) -> str:
    """``_produced``: one branch per set and transformation producing it. ``within`` (SQL
    selecting task ids) keeps the elements of those tasks only, and ``sets`` those of these
    sets only: a question about a few tasks then reads their rows through the task column's
    index instead of building every element's ``data`` text. Without ``described``, ``files``
    and ``data`` are NULL: for a question that only follows elements."""
    branches = []
    for set_tag in ctx.spec.sets if sets is None else [t for t in ctx.spec.sets if t in sets]:
        for producer in ctx.spec.producers(set_tag):
            column = f"x.{ctx.task_col(producer)}"
            branches.append(
                f"SELECT {ctx.literal(set_tag)}, x.id, {column}, "
                f"{_description(ctx, set_tag, described)}\n"
                f"  FROM {ctx.q(set_tag)} x WHERE {column} IS NOT NULL{_among(column, within)}")
    body = "\n  UNION ALL\n  ".join(branches) or _NO_ELEMENTS
    return f"_produced(set_tag, element_id, task_id, files, data) AS (\n  {body}\n)"


def raw_inputs(ctx: Context, set_tag: str) -> list[tuple[str, str]]:
    """For each transformation taking ``set_tag`` as a raw input (elements no task produced):
    its task column (``x.<t>_task_id``) and the condition `` AND x.<producer>_task_id IS
    NULL ...`` that keeps the elements no producer made."""
    unproduced = "".join(f" AND x.{ctx.task_col(p)} IS NULL"
                         for p in ctx.spec.producers(set_tag))
    consumers = sorted({d.following for d in ctx.spec.dependencies
                        if d.set_tag == set_tag and d.previous is None and d.following})
    return [(f"x.{ctx.task_col(consumer)}", unproduced) for consumer in consumers]


def used_cte(ctx: Context, within: str | None = None,
             sets: Iterable[str] | None = None, described: bool = True) -> str:
    """``_used`` (needs ``_produced``); ``within`` keeps the elements used by those tasks only,
    and ``sets`` the elements of these sets (see :func:`produced_cte`)."""
    where = f"\n  WHERE tu.task_id IN ({within})" if within else ""
    branches = [f"""SELECT tu.task_id, p.set_tag, p.element_id, p.task_id, p.files, p.data
  FROM task_usage tu
  JOIN data_set ds ON ds.id = tu.ds_id
  JOIN _produced p ON p.task_id = tu.producer_task_id AND p.set_tag = ds.tag{where}"""]
    for set_tag in ctx.spec.sets if sets is None else [t for t in ctx.spec.sets if t in sets]:
        for column, unproduced in raw_inputs(ctx, set_tag):
            branches.append(
                f"SELECT {column}, {ctx.literal(set_tag)}, x.id, CAST(NULL AS INTEGER), "
                f"{_description(ctx, set_tag, described)}\n"
                f"  FROM {ctx.q(set_tag)} x WHERE {column} IS NOT NULL{unproduced}"
                f"{_among(column, within)}")
    body = "\n  UNION ALL\n  ".join(branches)
    return (f"_used(task_id, set_tag, element_id, producer_task_id, files, data) AS (\n"
            f"  {body}\n)")


def hyperparameters(ctx: Context, training: str) -> tuple[str, str]:
    """(``, i.attribute ...`` columns, ``LEFT JOIN itrain i``) for the training task id in the
    SQL expression ``training``; both empty where the dataflow has no itrain of train."""
    if not (ctx.has(ITRAIN) and TRAIN in ctx.spec.transformations_of(ITRAIN)):
        return "", ""
    columns = "".join(f", {c}" for c in ctx.select_attributes("i", ITRAIN))
    return columns, f"LEFT JOIN {ctx.q(ITRAIN)} i ON i.{ctx.task_col(TRAIN)} = {training}"


def tested_columns(ctx: Context, set_tag: str = OTEST) -> list[str]:
    """The columns of ``_tested`` (of ``set_tag``) after ``train_task_id``."""
    return ["test_task_id", *(ctx.q("test_" + a) for a in ctx.attributes(set_tag))]


def best_trainings(ctx: Context, source: str, measure: str, best: str,
                   columns: list[str]) -> tuple[list[str], str]:
    """The trainings of the common table ``source`` (which has ``train_task_id``) whose
    ``measure`` is the ``best`` ("MAX" or "MIN") of its numbers, ties included, with their
    models, hyperparameters and the ``columns`` of ``source``: the common tables to add
    after ``source``'s (``_best``, and ``_models`` of those trainings only: not every model of
    the store) and the final SELECT."""
    from dlprov.query.models import models_cte  # models imports this module

    hyper, join = hyperparameters(ctx, "s.train_task_id")
    listed = "".join(f", s.{c}" for c in columns)
    chosen = f"""_best AS (
  SELECT * FROM {source}
  WHERE {measure} = (SELECT {best}({measure}) FROM {source} WHERE {ctx.finite(measure)})
)"""
    return [chosen, models_cte(ctx, among="_best")], f"""
SELECT m.model_id, m.model_name, s.train_task_id, t.df_exec AS exec_tag{hyper}{listed}
FROM _best s
JOIN task t ON t.id = s.train_task_id
{join}
LEFT JOIN _models m ON m.train_task_id = s.train_task_id
ORDER BY s.train_task_id, m.model_name"""
