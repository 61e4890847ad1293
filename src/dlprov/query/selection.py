"""Questions that compare candidate models (Q1–Q4) and describe one of them (Q7–Q9).

Each builder takes the :class:`Context` and the question's parameters and returns a
:class:`Built` statement; :mod:`dlprov.query.questions` turns it into the public functions.
"""
from __future__ import annotations

import math

from dlprov.errors import QueryError
from dlprov.model.names import ITRAIN, OTEST, OTRAIN, TRAIN
from dlprov.query.building import Built, Context, ctes, need
from dlprov.query.choice import available, choose_metric
from dlprov.query.models import models_cte, models_of, resolve_model
from dlprov.query.relations import (
    Ranking,
    best_trainings,
    hyperparameters,
    ranking,
    summary_rows,
)
from dlprov.store.summary import COUNT

# Relative tolerance of Q1/Q2's learning-rate match: 0.1 * 3 is not 0.3 in binary floats.
_RELATIVE_TOLERANCE = 1e-9


def _number(question: str, name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a finite number, not below zero (above it if ``positive``), or a
    :class:`QueryError`: no training has an infinite, NaN or negative learning rate or batch
    size, and a NaN or infinite bound would match every row or none."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueryError(f"{question.upper()}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "a positive" if positive else "a finite, non-negative"
        raise QueryError(f"{question.upper()}: {name} must be {kind} number, got {value!r}")
    return number


def _learning_rate(ctx: Context, question: str, value: float) -> tuple[str, dict]:
    value = _number(question, "learning_rate", value)
    ctx.require(question, ITRAIN, "learning_rate", transformation=TRAIN)
    return (f"ABS(i.{ctx.q('learning_rate')} - :learning_rate) <= :learning_rate_tolerance",
            {"learning_rate": value, "learning_rate_tolerance": abs(value) * _RELATIVE_TOLERANCE})


def q1(ctx: Context, *, learning_rate: float | None = None) -> Built:
    """Trained models with the given learning rate (itrain joined with the trained models)."""
    need("q1", "learning_rate", learning_rate, "0.001")
    condition, params = _learning_rate(ctx, "q1", learning_rate)
    return Built(ctes(models_cte(ctx)) + f"""
SELECT m.model_id, m.model_name, m.model_path, m.train_task_id, m.exec_tag,
       i.{ctx.q('learning_rate')}
FROM _models m
JOIN {ctx.q(ITRAIN)} i ON i.{ctx.task_col(TRAIN)} = m.train_task_id
WHERE {condition}
ORDER BY m.train_task_id, m.model_name""", params)


def q2(ctx: Context, *, learning_rate: float | None = None, batch_size: float | None = None,
       model: str | None = None) -> Built:
    """Average elapsed time of an epoch per training, optionally of the trainings with the given
    learning rate and batch size, or of one model."""
    ctx.require("q2", OTRAIN, "elapsed_time", transformation=TRAIN)
    conditions, params, notes = [], {}, []
    if learning_rate is not None:
        condition, found = _learning_rate(ctx, "q2", learning_rate)
        conditions.append(condition)
        params.update(found)
    if batch_size is not None:
        ctx.require("q2", ITRAIN, "batch_size", transformation=TRAIN)
        conditions.append(f"i.{ctx.q('batch_size')} = :batch_size")
        params["batch_size"] = _number("q2", "batch_size", batch_size, positive=True)
    if model is not None:
        found_model = resolve_model(ctx, model)
        conditions.append("e.train_task_id = :train_task_id")
        params["train_task_id"] = found_model.train_task_id
        notes.append(found_model.describe())
    where = ("WHERE " + "\n  AND ".join(conditions)) if conditions else ""
    hyper, join = hyperparameters(ctx, "e.train_task_id")
    models = models_of(ctx, "e.train_task_id")
    return Built(ctes(_epochs_cte(ctx)) + f"""
SELECT {models.model_id} AS model_id, {models.model_name} AS model_name, e.train_task_id,
       t.df_exec AS exec_tag{hyper}, e.epochs, e.avg_epoch_time
FROM _epochs e
JOIN task t ON t.id = e.train_task_id
{join}{models.joins}
{where}
ORDER BY e.train_task_id, {models.model_name}""", params, notes)


def _epochs_cte(ctx: Context) -> str:
    """``_epochs(train_task_id, epochs, avg_epoch_time)``: per training, its otrain elements
    and the average of their finite elapsed times; from the metric summary where it is whole."""
    if ctx.summarized(OTRAIN):
        # joined on the summary's primary key: a plan that holds with stale statistics
        elapsed = """
  LEFT JOIN metric_summary v ON v.task_id = ms.task_id AND v.set_tag = ms.set_tag
    AND v.attribute = 'elapsed_time'"""
        return f"""_epochs AS (
  SELECT ms.task_id AS train_task_id, ms.n AS epochs, v.total / v.n AS avg_epoch_time
  FROM {summary_rows(ctx, OTRAIN, COUNT, joined=elapsed)}
)"""
    train, elapsed = ctx.task_col(TRAIN), ctx.q("elapsed_time")
    return f"""_epochs AS (
  SELECT o.{train} AS train_task_id, COUNT(*) AS epochs,
         AVG(CASE WHEN {ctx.finite_number('o.' + elapsed)} THEN o.{elapsed} END)
           AS avg_epoch_time
  FROM {ctx.q(OTRAIN)} o
  WHERE o.{train} IS NOT NULL
  GROUP BY o.{train}
)"""


def q3(ctx: Context, *, metric: str | None = None, mode: str | None = None,
       set_tag: str | None = None) -> Built:
    """Hyperparameters of the model with the highest average training accuracy (Listing 4), or
    the best average of another ``metric`` of a set the training produced (``mode`` max or
    min, see :mod:`dlprov.query.choice`)."""
    chosen = choose_metric(ctx, "q3", metric, mode, set_tag, "accuracy", OTRAIN)
    if chosen.producer != TRAIN:
        raise QueryError(f"Q3 averages a metric over a training's epochs: {chosen.name!r} of "
                         f"set {chosen.set_tag!r} is a test's; choose a training metric or ask "
                         f"Q4 (metrics: {available(ctx)})")
    ranked = ranking(ctx, "q3", chosen, "avg")
    best, select = best_trainings(ctx, ranked.source, ranked.measure, chosen.best,
                                  ranked.columns)
    return Built(ctes(*ranked.ctes, *best) + select, notes=_noted(ranked))


def q4(ctx: Context, *, metric: str | None = None, mode: str | None = None,
       set_tag: str | None = None) -> Built:
    """Hyperparameters (and test measures) of the model with the highest test accuracy, or
    the best value of another ``metric`` (``mode`` max or min; of a set the training produced:
    its last value; see :mod:`dlprov.query.choice`)."""
    ranked = ranking(ctx, "q4", choose_metric(ctx, "q4", metric, mode, set_tag, "accuracy",
                                              OTEST))
    best, select = best_trainings(ctx, ranked.source, ranked.measure, ranked.metric.best,
                                  ranked.columns)
    return Built(ctes(*ranked.ctes, *best) + select, notes=_noted(ranked))


def _noted(ranked: Ranking) -> list[str]:
    """The metric's note for ``--sql``, where the user chose it."""
    return [ranked.note] if ranked.metric.chosen else []


def q7(ctx: Context, *, model: str | None = None) -> Built:
    """The hyperparameters the model was trained with, and its size."""
    found = resolve_model(ctx, need("q7", "model", model, "MODEL"))
    hyper, join = hyperparameters(ctx, "t.id")
    return Built(f"""
SELECT t.id AS train_task_id, t.df_exec AS exec_tag{hyper},
       tm.framework, tm.parameter_count, tm.layer_count
FROM task t
{join}
LEFT JOIN trained_model tm ON tm.task_id = t.id AND tm.model_id = :model_id
WHERE t.id = :train_task_id""", {"train_task_id": found.train_task_id,
                                  "model_id": found.model_id}, [found.describe()])


def q8(ctx: Context, *, model: str | None = None) -> Built:
    """The computational environment of the model's training task."""
    found = resolve_model(ctx, need("q8", "model", model, "MODEL"))
    return Built("""
SELECT t.id AS train_task_id, t.df_exec AS exec_tag, t.computing_resource, e.hostname, e.os,
       e.os_version, e.platform, e.architecture, e.processor, e.cpu_count, e.memory_bytes,
       e.in_container, e.gpus, e.python_version, e.python_implementation, e.git_repository,
       e.git_commit, e.git_dirty, e.command_line, e.packages
FROM task t
LEFT JOIN environment e ON e.exec_id = t.exec_id
WHERE t.id = :train_task_id""", {"train_task_id": found.train_task_id}, [found.describe()])


def q9(ctx: Context, *, model: str | None = None) -> Built:
    """The agent responsible for training the model: user, email, organization, host."""
    found = resolve_model(ctx, need("q9", "model", model, "MODEL"))
    return Built("""
SELECT x.username, x.email, x.organization, x.hostname, x.tag AS exec_tag,
       x.start_time, x.end_time, t.id AS train_task_id
FROM task t
JOIN dataflow_execution x ON x.id = t.exec_id
WHERE t.id = :train_task_id""", {"train_task_id": found.train_task_id}, [found.describe()])
