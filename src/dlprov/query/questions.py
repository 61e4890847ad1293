"""The provenance questions of the DLProv paper's Table 2 (Q1–Q12), asked of any dataflow that
follows its conventions: sets ``itrain``, ``otrain``, ``otrainedmodel``, ``otest`` of the
transformations ``train`` and ``test``.

Each question is a function returning a :class:`QueryResult`; :func:`prepare` gives the SQL it
runs (with bind parameters, never values, in the text) without running it::

    import dlprov.query as q
    q.q1(0.001).records()                   # models trained with learning rate 0.001
    print(q.prepare("q10", model="mlp-adam"))  # the recursive query behind Q10

A MODEL is a model id, a model name or the path of the model's file (see
:func:`dlprov.query.models.resolve_model`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from dlprov.errors import QueryError
from dlprov.query import lineage, selection
from dlprov.query.building import Built, Context, Statement
from dlprov.query.models import model_context
from dlprov.query.sql import QueryResult
from dlprov.store.store import Store


@dataclass(frozen=True)
class Question:
    """One row of Table 2: its id, its wording, its parameters and the builder of its SQL."""

    id: str
    title: str
    parameters: tuple[str, ...]
    build: Callable[..., Built]


# The parameters choosing the metric Q3–Q6 rank trainings by (see dlprov.query.choice).
_RANKED = ("metric", "mode", "set_tag")

QUESTIONS: dict[str, Question] = {q.id: q for q in (
    Question("q1", "Find all trained models with a specific value for the learning rate.",
             ("learning_rate",), selection.q1),
    Question("q2", "What was the epoch's average processing time of the model training?",
             ("learning_rate", "batch_size", "model"), selection.q2),
    Question("q3", "What is the hyperparameter configuration used to train the model with the "
             "highest average training accuracy?", _RANKED, selection.q3),
    Question("q4", "What is the hyperparameter configuration used to train the model with the "
             "highest test accuracy?", _RANKED, selection.q4),
    Question("q5", "For a given experiment, which data contributed to the run with the highest "
             "test accuracy?", _RANKED, lineage.q5),
    Question("q6", "Given a training set, what are the values for hyperparameters and evaluation "
             "measure associated with the trained model with the least loss?",
             ("training_set", *_RANKED), lineage.q6),
    Question("q7", "Which hyperparameters were used in this model?", ("model",), selection.q7),
    Question("q8", "What was the computational environment used to train a given model?",
             ("model",), selection.q8),
    Question("q9", "Who was responsible for training a given model?", ("model",), selection.q9),
    Question("q10", "Find the process that led to a given model / everything that caused "
             "model M to produce these results.", ("model",), lineage.q10),
    Question("q11", "Which data was used to train this model?", ("model",), lineage.q11),
    Question("q12", "What feature transformations have been applied to the data?", ("model",),
             lineage.q12),
)}


def prepare(question: str, *, store: Store | str | None = None, dataflow: str | None = None,
            **params: Any) -> Statement:
    """The SQL of ``question`` ("q1" … "q12") for ``dataflow`` (default: the only or most
    recent one), with its bind parameters; ``.run()`` answers it, ``str()`` prints it.

    Raises :class:`QueryError` for an unknown question or parameter, a missing parameter or an
    ambiguous model, and :class:`NotFound` for an unknown dataflow or model."""
    found = QUESTIONS.get(str(question).lower())
    if found is None:
        raise QueryError(f"no question {question!r}: ask one of {', '.join(QUESTIONS)}")
    unknown = sorted(set(params) - set(found.parameters))
    if unknown:
        takes = ", ".join(found.parameters) or "no parameters"
        raise QueryError(f"{found.id.upper()} takes {takes}; not {', '.join(unknown)}")
    model = params.get("model")
    ctx = (model_context(store, str(model)) if dataflow is None and model is not None
           else Context.open(store, dataflow))
    built = found.build(ctx, **params)
    used = dict(built.params, dataflow=ctx.spec.tag)
    used = {name: value for name, value in used.items()
            if re.search(rf":{name}\b", built.sql)}
    return Statement(found.id, found.title, ctx.spec.tag, built.sql.strip("\n"), used,
                     built.notes, ctx.store, ctx.spec)


def ask(question: str, *, store: Store | str | None = None, dataflow: str | None = None,
        **params: Any) -> QueryResult:
    """The answer to ``question`` (see :func:`prepare`)."""
    return prepare(question, store=store, dataflow=dataflow, **params).run()


# -- one function per question ------------------------------------------------------------
def q1(learning_rate: float, *, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q1: the trained models (id, name, file, training task) with this learning rate."""
    return ask("q1", learning_rate=learning_rate, store=store, dataflow=dataflow)


def q2(*, learning_rate: float | None = None, batch_size: float | None = None,
       model: str | None = None, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q2: the number of epochs and average elapsed time of an epoch of each training, or of
    those with this learning rate and batch size, or of one model."""
    return ask("q2", learning_rate=learning_rate, batch_size=batch_size, model=model,
               store=store, dataflow=dataflow)


def q3(*, metric: str | None = None, mode: str | None = None, set_tag: str | None = None,
       store: Store | str | None = None, dataflow: str | None = None) -> QueryResult:
    """Q3: the hyperparameters of the model with the highest average training accuracy (the
    paper's Listing 4, with the model's id and name); or with the best average of another
    ``metric`` of a set the training produced, ``mode`` "max" or "min" (default: "min" for a
    loss- or error-like name; see :mod:`dlprov.query.choice`)."""
    return ask("q3", metric=metric, mode=mode, set_tag=set_tag, store=store, dataflow=dataflow)


def q4(*, metric: str | None = None, mode: str | None = None, set_tag: str | None = None,
       store: Store | str | None = None, dataflow: str | None = None) -> QueryResult:
    """Q4: the hyperparameters (and test measures) of the model with the highest test accuracy,
    or the best ``metric`` (``q4(metric="val_acc")``: of a set the training produced, its last
    value; see :func:`q3` for ``mode`` and ``set_tag``)."""
    return ask("q4", metric=metric, mode=mode, set_tag=set_tag, store=store, dataflow=dataflow)


def q5(*, metric: str | None = None, mode: str | None = None, set_tag: str | None = None,
       store: Store | str | None = None, dataflow: str | None = None) -> QueryResult:
    """Q5: the data that contributed to the run with the highest test accuracy (or the best
    ``metric``, as in :func:`q4`): each element used by its training and test tasks or by any
    task upstream of them, with its files."""
    return ask("q5", metric=metric, mode=mode, set_tag=set_tag, store=store, dataflow=dataflow)


def q6(training_set: str, *, metric: str | None = None, mode: str | None = None,
       set_tag: str | None = None, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q6: hyperparameters and test measures of the model with the least test loss (or the best
    ``metric``, as in :func:`q4`) among those trained on ``training_set`` (a file path, its last
    part, or a dataset name)."""
    return ask("q6", training_set=training_set, metric=metric, mode=mode, set_tag=set_tag,
               store=store, dataflow=dataflow)


def q7(model: str, *, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q7: the hyperparameters of ``model``, with its framework and parameter and layer counts."""
    return ask("q7", model=model, store=store, dataflow=dataflow)


def q8(model: str, *, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q8: the computational environment ``model`` was trained in (host, OS, CPU, memory,
    GPUs, Python, packages, git, command line)."""
    return ask("q8", model=model, store=store, dataflow=dataflow)


def q9(model: str, *, store: Store | str | None = None,
       dataflow: str | None = None) -> QueryResult:
    """Q9: who trained ``model``: user, email, organization, host of its execution."""
    return ask("q9", model=model, store=store, dataflow=dataflow)


def q10(model: str, *, store: Store | str | None = None,
        dataflow: str | None = None) -> QueryResult:
    """Q10: every task that led to ``model`` (upstream of its training, at any depth, and the
    tests that evaluated it) with status, times and the sets each used and produced."""
    return ask("q10", model=model, store=store, dataflow=dataflow)


def q11(model: str, *, store: Store | str | None = None,
        dataflow: str | None = None) -> QueryResult:
    """Q11: the elements of the data sets ``model``'s training used, with their files."""
    return ask("q11", model=model, store=store, dataflow=dataflow)


def q12(model: str, *, store: Store | str | None = None,
        dataflow: str | None = None) -> QueryResult:
    """Q12: the transformations applied to the data ``model`` was trained on, step by step
    from the raw input to the training."""
    return ask("q12", model=model, store=store, dataflow=dataflow)
