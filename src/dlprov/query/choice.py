"""Which metric a question compares candidates by, in which set, and whether more is better.

Q3–Q6 of the paper compare trainings by ``accuracy`` (Q6: by ``loss``), a column of ``otrain``
or ``otest``. Frameworks name their metrics otherwise (``val_acc``, ``test_acc``, ``val/loss``
stored as ``val_loss``), so each of these questions takes ``metric``, ``mode`` and ``set_tag``:

- ``metric``: a numeric attribute; default the paper's (``accuracy``; ``loss`` for Q6).
- ``set_tag``: the set it lives in; default the question's own set (Q3 ``otrain``, Q4–Q6
  ``otest``) when that set has the metric, else the one set produced by ``train`` or ``test``
  that has it (when several do, ``set_tag`` must say which).
- ``mode``: ``max`` or ``min``; default ``min`` for a name that reads as a loss or an error
  (one of its words is ``loss``, ``error``, ``err``, ``mse``, ``mae``, ``rmse``, ``mape``,
  ``nll``, ``perplexity``, ``ppl``, ``wer``, ``cer``), else ``max``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dlprov.errors import QueryError
from dlprov.model.names import OTEST, TEST, TRAIN
from dlprov.model.spec import AttributeType
from dlprov.query.building import Context

MODES = ("max", "min")
ORDERINGS = ("step", "batch", "epoch")  # the columns that order a set's elements, finest first
_LOWER_IS_BETTER = frozenset({"loss", "error", "err", "mse", "mae", "rmse", "mape", "nll",
                              "perplexity", "ppl", "wer", "cer"})


def default_mode(metric: str) -> str:
    """``"min"`` for a loss- or error-like name (``val_loss``, ``test_mae``), else ``"max"``."""
    words = re.split(r"[^a-z]+", metric.lower())
    return "min" if _LOWER_IS_BETTER.intersection(words) else "max"


@dataclass(frozen=True)
class Metric:
    """The measure a question ranks trainings by."""

    name: str
    set_tag: str
    mode: str
    producer: str  # the transformation producing set_tag: "train" or "test"
    chosen: bool   # metric, set or mode given by the user (else the paper's question)

    @property
    def best(self) -> str:
        """The SQL aggregate picking the best value: ``MAX`` or ``MIN``."""
        return self.mode.upper()

    def describe(self, aggregate: str) -> str:
        """A note for ``--sql``: the metric, its set, how it is taken per training, the mode."""
        return f"metric: {self.name} of set {self.set_tag} ({aggregate}), best = {self.mode}"


def _numeric(ctx: Context, set_tag: str) -> list[str]:
    return ctx.attributes(set_tag, AttributeType.NUMERIC)


def _metric_sets(ctx: Context) -> list[str]:
    """Sets whose numbers can rank trainings: those produced by ``train`` or ``test``."""
    return [t for t in ctx.spec.sets
            if set(ctx.spec.producers(t)) & {TRAIN, TEST} and _numeric(ctx, t)]


def available(ctx: Context) -> str:
    """``set: metric, ...; set: ...`` for every set a metric can be chosen from (not its
    ordering columns: epoch, step, batch)."""
    listed = {t: [a for a in _numeric(ctx, t) if a not in ORDERINGS] for t in _metric_sets(ctx)}
    return "; ".join(f"{t}: {', '.join(names)}" for t, names in listed.items() if names) \
        or "none"


def choose_metric(ctx: Context, question: str, metric: str | None, mode: str | None,
                  set_tag: str | None, default_metric: str, default_set: str) -> Metric:
    """The :class:`Metric` the user's ``metric``/``mode``/``set_tag`` name (see the module's
    rules), or :class:`QueryError` naming the metrics there are."""
    label = question.upper()
    if mode is not None and str(mode).lower() not in MODES:
        raise QueryError(f"{label}: mode must be max or min, got {mode!r}")
    if metric is None and set_tag is None:
        # the paper's question as printed, with its own message if the dataflow lacks it
        try:
            ctx.require(question, default_set, default_metric)
        except QueryError as exc:
            raise QueryError(f"{exc}; rank by another metric with metric=NAME (--metric): "
                             f"{available(ctx)}") from None
        name, found_set, chosen = default_metric, default_set, mode is not None
    else:
        name = str(metric if metric is not None else default_metric).strip().lower()
        found_set = _find_set(ctx, label, name, None if set_tag is None
                              else str(set_tag).strip().lower(), default_set)
        chosen = True
    producers = ctx.spec.producers(found_set)
    # a set of neither (a paper default the dataflow lacks): its question's own, whose
    # requirement then names what is missing
    producer = TEST if TEST in producers else TRAIN if TRAIN in producers else (
        TEST if default_set == OTEST else TRAIN)
    return Metric(name, found_set, str(mode).lower() if mode is not None else default_mode(name),
                  producer, chosen)


def _find_set(ctx: Context, label: str, name: str, set_tag: str | None,
              default_set: str) -> str:
    tag = ctx.spec.tag
    if set_tag is not None:
        if set_tag not in _metric_sets(ctx):
            raise QueryError(f"{label}: set {set_tag!r} of dataflow {tag!r} holds no metric of "
                             f"a training or test; metrics: {available(ctx)}")
        if name not in _numeric(ctx, set_tag):
            raise QueryError(f"{label}: no metric {name!r} in set {set_tag!r} of dataflow "
                             f"{tag!r}; metrics: {available(ctx)}")
        return set_tag
    if default_set in ctx.spec.sets and name in _numeric(ctx, default_set) \
            and default_set in _metric_sets(ctx):
        return default_set
    holding = [t for t in _metric_sets(ctx) if name in _numeric(ctx, t)]
    if not holding:
        raise QueryError(f"{label}: no metric {name!r} in dataflow {tag!r}; metrics: "
                         f"{available(ctx)}")
    if len(holding) > 1:
        raise QueryError(f"{label}: metric {name!r} is in sets {', '.join(holding)} of dataflow "
                         f"{tag!r}: say which with set_tag (--set on the command line)")
    return holding[0]
