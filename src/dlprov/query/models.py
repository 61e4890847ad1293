"""Trained models as the questions see them, and finding the one a user names.

A model is a ``trained_model`` row (recorded by ``task.model()``), or, for a training task that
recorded none (stores filled through the ``dfa`` API), an element of ``otrainedmodel`` with its
``model_name`` and ``model_dir``. Either way it belongs to the training task that made it, and
the questions about a model are questions about that task.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from dlprov.errors import NotFound, QueryError
from dlprov.model.names import OTRAINEDMODEL, TRAIN
from dlprov.query.building import Context, ctes
from dlprov.query.catalogue import dataflow_tags
from dlprov.query.sql import builtin_sql
from dlprov.store.store import Store, as_store


@dataclass(frozen=True)
class ModelRef:
    """A model found by :func:`resolve_model`."""

    train_task_id: int
    model_id: str | None
    name: str | None
    path: str | None
    exec_tag: str

    def describe(self) -> str:
        label = repr(self.name) if self.name else f"id {self.model_id}"
        return f"model {label} of {self.exec_tag}, trained by task {self.train_task_id}"


def models_cte(ctx: Context, among: str | None = None, by_id: bool = False) -> str:
    """``_models(model_id, model_name, model_path, train_task_id, exec_tag, workspace)``: the
    dataflow's trained models (bind parameter ``:dataflow``); ``workspace`` is the training
    task's, against which a relative ``model_path`` was written. ``among``: a common table
    (with ``train_task_id``) of the only trainings whose models are wanted; ``by_id``: only
    the models whose id is ``:model`` (found by the id's index, not a scan of every model)."""
    within = f"\n    AND {{task}} IN (SELECT train_task_id FROM {among})" if among else ""
    if by_id:
        within += "\n    AND {model_id} = :model"
    parts = [f"""
  SELECT tm.model_id, tm.name AS model_name, tm.path AS model_path,
         tm.task_id AS train_task_id, t.df_exec AS exec_tag, t.workspace
  FROM trained_model tm
  JOIN task t ON t.id = tm.task_id
  JOIN data_transformation dt ON dt.id = t.dt_id
  JOIN dataflow df ON df.id = dt.df_id
  WHERE df.tag = :dataflow{within.format(task="tm.task_id", model_id="tm.model_id")}"""]
    if _trainings_record_model_elements(ctx):
        model_id, name, path = (_element_column(ctx, a)
                                for a in ("model_id", "model_name", "model_dir"))
        train = ctx.task_col(TRAIN)
        parts.append(f"""
  -- training tasks that recorded no trained_model row: their otrainedmodel elements
  SELECT {model_id}, {name}, {path}, om.{train}, t.df_exec, t.workspace
  FROM {ctx.q(OTRAINEDMODEL)} om
  JOIN task t ON t.id = om.{train}
  WHERE NOT EXISTS (SELECT 1 FROM trained_model tm WHERE tm.task_id = om.{train}){within.format(task="om." + train, model_id=model_id)}""")
    return "_models AS (" + "\n  UNION ALL".join(parts) + "\n)"


@dataclass(frozen=True)
class ModelColumns:
    """The models of one training per row of a query, joined by the indexes of
    ``trained_model`` and ``otrainedmodel`` (see :func:`models_of`)."""

    model_id: str    # SQL expressions of the model's id and name
    model_name: str
    joins: str       # the LEFT JOINs that give them


def models_of(ctx: Context, task: str) -> ModelColumns:
    """The models of the training task ``task`` (an SQL expression of each row's training
    task id), as :func:`models_cte` has them: its ``trained_model`` rows, or, where it recorded
    none, its ``otrainedmodel`` elements; none: NULLs (LEFT JOINs, a row per model). For a
    query over every training: each training's models found by index, where a join with
    ``_models`` builds every model of the dataflow first (and SQLite an index on them)."""
    joins = f"\nLEFT JOIN trained_model tm ON tm.task_id = {task}"
    model_id, model_name = "tm.model_id", "tm.name"
    if _trainings_record_model_elements(ctx):
        joins += (f"\nLEFT JOIN {ctx.q(OTRAINEDMODEL)} om ON tm.task_id IS NULL"
                  f" AND om.{ctx.task_col(TRAIN)} = {task}")
        model_id, model_name = (
            f"CASE WHEN tm.task_id IS NULL THEN {column} ELSE {mine} END"
            for column, mine in ((_element_column(ctx, "model_id"), model_id),
                                 (_element_column(ctx, "model_name"), model_name)))
    return ModelColumns(model_id, model_name, joins)


def _trainings_record_model_elements(ctx: Context) -> bool:
    """Whether the training produces ``otrainedmodel`` elements in this dataflow's spec."""
    return ctx.has(OTRAINEDMODEL) and TRAIN in ctx.spec.transformations_of(OTRAINEDMODEL)


def _element_column(ctx: Context, attribute: str) -> str:
    return f"om.{ctx.q(attribute)}" if ctx.has(OTRAINEDMODEL, attribute) else "CAST(NULL AS TEXT)"


# How a given text matched a model, best first: its id, its file, then its name. A relative
# path is compared as given and as the file it named in the training task's workspace.
_MATCH = """
SELECT CASE WHEN model_id = :model THEN 1
            WHEN model_path IN (:model, :model_abspath)
              OR workspace || '/' || model_path = :model_abspath THEN 2
            ELSE 3 END AS matched_by,
       model_id, model_name, model_path, train_task_id, exec_tag
FROM _models
WHERE model_id = :model OR model_name = :model OR model_path IN (:model, :model_abspath)
   OR workspace || '/' || model_path = :model_abspath
ORDER BY matched_by, train_task_id DESC, model_id"""


def resolve_model(ctx: Context, model: str) -> ModelRef:
    """The model that ``model`` names in the context's dataflow: a model id, a model name, or
    the path of its file. Raises :class:`NotFound` if none matches, and :class:`QueryError` if
    the name is given to models of more than one training task."""
    model = str(model)
    params = {"dataflow": ctx.spec.tag, "model": model, "model_abspath": os.path.abspath(model)}
    # A model id, what the other commands print and the UI links, is found by its index; any
    # other text is matched against every model (a name, a path, a path relative to the
    # training's folder). An id match ranks first, so it answers alone.
    rows = builtin_sql(ctes(models_cte(ctx, by_id=True)) + _MATCH, store=ctx.store,
                       dataflow=ctx.spec.tag, params=params, spec=ctx.spec).rows
    if not rows:
        rows = builtin_sql(ctes(models_cte(ctx)) + _MATCH, store=ctx.store,
                           dataflow=ctx.spec.tag, params=params, spec=ctx.spec).rows
    if not rows:
        known = builtin_sql(ctes(models_cte(ctx)) + "SELECT model_name, model_id FROM _models "
                            "ORDER BY train_task_id", store=ctx.store, dataflow=ctx.spec.tag,
                            params={"dataflow": ctx.spec.tag}).rows
        listed = ", ".join(sorted({str(name or model_id) for name, model_id in known})[:12])
        raise NotFound(f"no model {model!r} in dataflow {ctx.spec.tag!r}: give a model id, name "
                       f"or file path" + (f"; its models: {listed}" if listed else
                                          "; it has no trained model recorded"))
    best = [r for r in rows if r[0] == rows[0][0]]
    found = [ModelRef(train_task_id=r[4], model_id=r[1], name=r[2], path=r[3], exec_tag=r[5])
             for r in best]
    if len({m.train_task_id for m in found}) > 1:
        listed = "; ".join(f"{m.model_id or m.name} ({m.exec_tag}, {m.path})" for m in found)
        instead = ("one of these model ids" if all(m.model_id for m in found)
                   else "a model id or a file path that names one model")
        raise QueryError(f"model {model!r} is ambiguous in dataflow {ctx.spec.tag!r}: it names "
                         f"{len(found)} models: {listed}. Give {instead} instead")
    return found[0]


def model_context(store: Store | str | None, model: str,
                  dataflow: str | None = None) -> Context:
    """The context of the dataflow holding ``model``: ``dataflow`` when given, else the one
    dataflow of the store in which ``model`` names a model (a name unique in the store needs
    no ``--dataflow``). Raises :class:`NotFound` if no dataflow has
    it, and :class:`QueryError`, listing the candidates with their dataflows, if several do."""
    if dataflow is not None:
        return Context.open(store, dataflow)
    store = as_store(store)
    with store.read() as conn:
        tags = dataflow_tags(conn)
    holding: list[tuple[Context, str]] = []  # each dataflow naming it, and what it names there
    missed: list[NotFound] = []
    for tag in tags:
        ctx = Context.open(store, tag)
        try:
            holding.append((ctx, resolve_model(ctx, model).describe()))
        except NotFound as exc:
            missed.append(exc)
        except QueryError:  # several models of that dataflow: its own error will list them
            holding.append((ctx, "several models"))
    if not holding:
        if len(missed) == 1:
            raise missed[0]
        raise NotFound(f"no model {model!r} in any dataflow of the store "
                       f"({', '.join(tags) or 'none'}): give a model id, name or file path")
    if len(holding) > 1:
        listed = "; ".join(f"dataflow {ctx.spec.tag!r}: {what}" for ctx, what in holding)
        raise QueryError(f"model {model!r} names models in {len(holding)} dataflows ({listed}): "
                         f"give --dataflow, or a model id")
    return holding[0][0]


def find_model(model: str, *, store: Store | str | None = None,
               dataflow: str | None = None) -> ModelRef:
    """The model that ``model`` (an id, a name or a file path) names, in ``dataflow`` or, if
    none is given, in the one dataflow that has it: see :func:`resolve_model` and
    :func:`model_context`."""
    return resolve_model(model_context(store, model, dataflow), model)
