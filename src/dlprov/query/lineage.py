"""Questions that follow the derivation trace (Q5, Q6, Q10–Q12), at any depth.

They walk ``task_dependency`` and ``task_usage`` upstream with a recursive common table
expression (:func:`dlprov.query.relations.lineage_cte`), so a chain of preprocessing steps of any
length is followed. The hyperparameters (``itrain``) are not counted as data.
"""
from __future__ import annotations

from dlprov.model.names import ITRAIN, OTEST, TRAIN
from dlprov.query.choice import choose_metric
from dlprov.model.spec import AttributeType
from dlprov.query.building import Built, Context, ctes, need
from dlprov.query.models import ModelRef, resolve_model
from dlprov.query.relations import (
    EVALUATIONS,
    TESTS_OF_MODEL,
    best_trainings,
    edges_of,
    lineage_cte,
    produced_cte,
    raw_inputs,
    ranking,
    used_cte,
)
from dlprov.query.sql import builtin_sql

# The longest path from the seeds, per task: its place in the trace (raw inputs deepest).
_STEPS = """_steps(root_id, task_id, depth) AS (
  SELECT root_id, task_id, MAX(depth) FROM _lineage GROUP BY root_id, task_id
)"""

_NOT_HYPERPARAMETERS = f"u.set_tag <> '{ITRAIN}'"

# The tasks whose elements a question about the tasks of ``_steps`` reads: those tasks and the
# producers of the data they used. _produced and _used are kept to them (see produced_cte).
_SCOPE = """_scope(task_id) AS (
  SELECT task_id FROM _steps
  UNION
  SELECT producer_task_id FROM task_usage WHERE task_id IN (SELECT task_id FROM _steps)
)"""
_IN_SCOPE = "SELECT task_id FROM _scope"
_IN_STEPS = "SELECT task_id FROM _steps"


# The model's training task (depth 0) and the test tasks that evaluated it (depth -1).
_MODEL_SEEDS = f"""SELECT CAST(:train_task_id AS INTEGER), CAST(:train_task_id AS INTEGER), 0
  UNION
  SELECT CAST(:train_task_id AS INTEGER), tests.task_id, -1 FROM (
  {TESTS_OF_MODEL}
  ) tests"""


def q5(ctx: Context, *, metric: str | None = None, mode: str | None = None,
       set_tag: str | None = None) -> Built:
    """The data that contributed to the run with the highest test accuracy (or the best value
    of another ``metric``, see :mod:`dlprov.query.choice`): every element used by its training
    task, its test task and every task upstream of them."""
    ranked = ranking(ctx, "q5", choose_metric(ctx, "q5", metric, mode, set_tag, "accuracy",
                                              OTEST))
    measure, evaluations = ranked.measure, ranked.ctes
    # ranked by a test's numbers: that test task; by the training's own: each test of it
    tests, test_task = "", "s.test_task_id"
    if EVALUATIONS not in evaluations:
        evaluations = [EVALUATIONS, *evaluations]
        tests = "\n  LEFT JOIN _evaluations ev ON ev.train_task_id = s.train_task_id"
        test_task = "ev.test_task_id"
    best = f"""_best AS (
  SELECT DISTINCT s.train_task_id, {test_task} AS test_task_id FROM {ranked.source} s{tests}
  WHERE s.{measure} = (SELECT {ranked.metric.best}({measure}) FROM {ranked.source}
                       WHERE {ctx.finite(measure)})
)"""
    seeds = """SELECT train_task_id, train_task_id, 0 FROM _best
  UNION
  SELECT train_task_id, test_task_id, -1 FROM _best WHERE test_task_id IS NOT NULL"""
    return Built(ctes(*evaluations, best, lineage_cte(seeds, ctx.dialect),
                      _STEPS, _SCOPE, produced_cte(ctx, _IN_SCOPE),
                      used_cte(ctx, _IN_STEPS)) + f"""
SELECT s.root_id AS train_task_id, t.df_exec AS exec_tag, s.depth, t.id AS task_id,
       dt.tag AS transformation, u.set_tag, u.element_id, u.files, u.data
FROM _steps s
JOIN task t ON t.id = s.task_id
JOIN data_transformation dt ON dt.id = t.dt_id
JOIN _used u ON u.task_id = s.task_id
WHERE {_NOT_HYPERPARAMETERS}
ORDER BY s.root_id, s.depth DESC, t.start_time, t.id, u.set_tag, u.element_id""",
                 notes=[ranked.note] if ranked.metric.chosen else [])


def _suffix_pattern(name: str) -> str:
    """A LIKE pattern for paths ending in ``/name`` (with ``\\`` escaping LIKE's wildcards)."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%/" + escaped


def q6(ctx: Context, *, training_set: str | None = None, metric: str | None = None,
       mode: str | None = None, set_tag: str | None = None) -> Built:
    """Hyperparameters and test measures of the model with the least test loss (or the best
    value of another ``metric``, see :mod:`dlprov.query.choice`) among those trained on
    ``training_set``: a file or text value (a path, or the last part of one; a dataset name)
    of the data their training used, directly or upstream."""
    need("q6", "training_set", training_set, "train.npz")
    ranked = ranking(ctx, "q6", choose_metric(ctx, "q6", metric, mode, set_tag, "loss", OTEST),
                     among="_matched")
    # Walked down from the few tasks that used a matching value to the trainings they led
    # to, not up from every training: the same trainings (reachability is symmetric), without
    # the lineage of every training in the store. Each set is filtered by value first, then
    # joined to its users through task_usage's index: never a table of every element.
    # SQLite, which has no statistics, would scan all of task_usage and index the matches;
    # CROSS JOIN keeps the matches outside and reaches their users by the producer's index.
    users = ("CROSS JOIN task_usage tu ON tu.producer_task_id = m.producer_task_id\n"
             "  JOIN data_set ds ON ds.id = tu.ds_id AND ds.tag = m.set_tag"
             if ctx.dialect == "sqlite" else
             "JOIN data_set ds ON ds.tag = m.set_tag\n"
             "  JOIN task_usage tu ON tu.producer_task_id = m.producer_task_id "
             "AND tu.ds_id = ds.id")
    training = [_matching_cte(ctx), f"""_hits(task_id) AS (
  SELECT tu.task_id
  FROM _matching m
  {users}
  UNION
  SELECT m.consumer_task_id FROM _matching m WHERE m.consumer_task_id IS NOT NULL
)""", _downstream_cte(ctx), f"""_matched AS (
  SELECT t.id AS train_task_id
  FROM task t
  JOIN data_transformation dt ON dt.id = t.dt_id
  JOIN dataflow df ON df.id = dt.df_id
  WHERE dt.tag = '{TRAIN}' AND df.tag = :dataflow
    AND t.id IN (SELECT task_id FROM _downstream)
)""", *ranked.ctes]
    candidates = ranked.source
    if candidates != "_tested":  # tests are sought from _matched; other rankings hold all
        candidates = "_candidates"
        training.append(f"""_candidates AS (
  SELECT s.* FROM {ranked.source} s JOIN _matched mt ON mt.train_task_id = s.train_task_id
)""")
    best, select = best_trainings(ctx, candidates, ranked.measure, ranked.metric.best,
                                  ranked.columns)
    return Built(ctes(*training, *best) + select,
                 {"training_set": training_set,
                  "training_set_suffix": _suffix_pattern(training_set)},
                 [ranked.note] if ranked.metric.chosen else [])


def _matching_cte(ctx: Context) -> str:
    """``_matching``: the elements with a text or file value equal to ``:training_set`` or
    ending in ``/`` and it (hyperparameters aside), with the task that produced each, or, for
    an input element nobody produced, the task that consumed it."""
    branches = []
    for set_tag in ctx.spec.sets:
        names = ctx.attributes(set_tag, AttributeType.TEXT, AttributeType.FILE)
        if set_tag == ITRAIN or not names:
            continue
        matches = " OR ".join(
            f"CAST(x.{ctx.q(name)} AS TEXT) = :training_set OR CAST(x.{ctx.q(name)} AS TEXT) "
            f"LIKE :training_set_suffix ESCAPE '\\'" for name in names)
        for producer in ctx.spec.producers(set_tag):
            column = f"x.{ctx.task_col(producer)}"
            branches.append(f"SELECT {ctx.literal(set_tag)}, {column}, CAST(NULL AS INTEGER)\n"
                            f"  FROM {ctx.q(set_tag)} x WHERE {column} IS NOT NULL AND ({matches})")
        for column, unproduced in raw_inputs(ctx, set_tag):
            branches.append(f"SELECT {ctx.literal(set_tag)}, CAST(NULL AS INTEGER), {column}\n"
                            f"  FROM {ctx.q(set_tag)} x WHERE {column} IS NOT NULL{unproduced} "
                            f"AND ({matches})")
    body = "\n  UNION ALL\n  ".join(branches) or (
        "SELECT CAST(NULL AS TEXT), CAST(NULL AS INTEGER), CAST(NULL AS INTEGER) WHERE 1 = 0")
    return f"_matching(set_tag, producer_task_id, consumer_task_id) AS (\n  {body}\n)"


def _downstream_cte(ctx: Context) -> str:
    """``_downstream``: the tasks that ``_hits`` lead to by task order or use of data. SQLite
    follows each edge table by its index (two recursive steps); PostgreSQL allows one
    reference to the recursive table, so it follows their union (:func:`edges_of`)."""
    if ctx.dialect == "sqlite":
        return """_downstream(task_id) AS (
  SELECT task_id FROM _hits
  UNION
  SELECT td.task_id FROM _downstream d JOIN task_dependency td ON td.depends_on_id = d.task_id
  UNION
  SELECT tu.task_id FROM _downstream d JOIN task_usage tu ON tu.producer_task_id = d.task_id
)"""
    return f"""_downstream(task_id) AS (
  SELECT task_id FROM _hits
  UNION
  SELECT e.task_id FROM _downstream d JOIN {edges_of()} e ON e.upstream_id = d.task_id
)"""


def q10(ctx: Context, *, model: str | None = None) -> Built:
    """The process that led to the model: its training task, the test tasks that evaluated it
    and every task upstream of them, with status, times and the sets each used and produced
    (and how many elements)."""
    found = resolve_model(ctx, need("q10", "model", model, "MODEL"))
    data = """_data(task_id, role, set_tag, elements) AS (
  SELECT task_id, 'used', set_tag, COUNT(*) FROM _used
  WHERE task_id IN (SELECT task_id FROM _steps) GROUP BY task_id, set_tag
  UNION ALL
  SELECT task_id, 'produced', set_tag, COUNT(*) FROM _produced
  WHERE task_id IN (SELECT task_id FROM _steps) GROUP BY task_id, set_tag
)"""
    return Built(ctes(lineage_cte(_MODEL_SEEDS, ctx.dialect), _STEPS, _SCOPE,
                      produced_cte(ctx, _IN_SCOPE), used_cte(ctx, _IN_STEPS), data) + """
SELECT s.depth, t.id AS task_id, dt.tag AS transformation, t.status, t.start_time,
       t.end_time, t.df_exec AS exec_tag, d.role, d.set_tag, d.elements
FROM _steps s
JOIN task t ON t.id = s.task_id
JOIN data_transformation dt ON dt.id = t.dt_id
LEFT JOIN _data d ON d.task_id = s.task_id
ORDER BY s.depth DESC, t.start_time, t.id, CASE d.role WHEN 'used' THEN 0 ELSE 1 END,
         d.set_tag""", {"train_task_id": found.train_task_id}, [found.describe()])


def q11(ctx: Context, *, model: str | None = None) -> Built:
    """The data the model was trained on: the elements of every set its training task used
    (but the hyperparameters), with the task that produced them and their files."""
    found = resolve_model(ctx, need("q11", "model", model, "MODEL"))
    producers = "SELECT producer_task_id FROM task_usage WHERE task_id = :train_task_id"
    return Built(ctes(produced_cte(ctx, producers),
                      used_cte(ctx, "SELECT CAST(:train_task_id AS INTEGER)")) + f"""
SELECT u.set_tag, u.element_id, pt.tag AS produced_by, u.producer_task_id, u.files, u.data
FROM _used u
LEFT JOIN task p ON p.id = u.producer_task_id
LEFT JOIN data_transformation pt ON pt.id = p.dt_id
WHERE u.task_id = :train_task_id AND {_NOT_HYPERPARAMETERS}
ORDER BY u.set_tag, u.element_id""", {"train_task_id": found.train_task_id},
                 [found.describe()])


def q12(ctx: Context, *, model: str | None = None) -> Built:
    """The transformations applied to the data the model was trained on, in order from the raw
    input to the training: each step's task, the elements it used (its parameters and the data
    before it) and produced, following data derivation (task_usage) at any depth."""
    found = resolve_model(ctx, need("q12", "model", model, "MODEL"))
    seed = "SELECT CAST(:train_task_id AS INTEGER), CAST(:train_task_id AS INTEGER), 0"
    data = """_data(task_id, role, set_tag, element_id, files, data) AS (
  -- of the training itself, only the data it was given (not its hyperparameters or outputs)
  SELECT task_id, 'used', set_tag, element_id, files, data FROM _used
  WHERE task_id IN (SELECT task_id FROM _steps)
    AND (task_id <> :train_task_id OR producer_task_id IS NOT NULL)
  UNION ALL
  SELECT task_id, 'produced', set_tag, element_id, files, data FROM _produced
  WHERE task_id IN (SELECT task_id FROM _steps) AND task_id <> :train_task_id
)"""
    return Built(ctes(lineage_cte(seed, ctx.dialect, data_only=True), _STEPS, _SCOPE,
                      produced_cte(ctx, _IN_SCOPE), used_cte(ctx, _IN_STEPS), data) + """
SELECT DENSE_RANK() OVER (ORDER BY s.depth DESC) AS step, t.id AS task_id,
       dt.tag AS transformation, d.role, d.set_tag, d.element_id, d.files, d.data
FROM _steps s
JOIN task t ON t.id = s.task_id
JOIN data_transformation dt ON dt.id = t.dt_id
JOIN _data d ON d.task_id = s.task_id
ORDER BY s.depth DESC, t.start_time, t.id, CASE d.role WHEN 'used' THEN 0 ELSE 1 END,
         d.set_tag, d.element_id""", {"train_task_id": found.train_task_id},
                 [found.describe()])


def trace_tasks(ctx: Context, model: str) -> tuple[ModelRef, list[int]]:
    """The model that ``model`` names and the ids of the tasks of its trace, those of
    :func:`q10`: its training task, the test tasks that evaluated it and every task upstream
    of them (by task dependency or use of data), at any depth."""
    found = resolve_model(ctx, model)
    rows = builtin_sql(ctes(lineage_cte(_MODEL_SEEDS, ctx.dialect))
                       + "\nSELECT DISTINCT task_id FROM _lineage ORDER BY task_id",
                       store=ctx.store, dataflow=ctx.spec.tag,
                       params={"train_task_id": found.train_task_id}).rows
    return found, [row[0] for row in rows]
