"""What every framework integration records, once: hyperparameters in ``itrain``, per-epoch
metrics in ``otrain``, the trained model in ``otrainedmodel`` (and ``trained_model``), test
metrics in ``otest``, as the DLProv paper's DL dataflow does.

Integrations call this from framework hooks; a provenance problem there is logged once and never
stops training (:func:`guarded`).
"""
from __future__ import annotations

import functools
import logging
import os
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, TypeVar

from dlprov.capture.run import Run
from dlprov.capture.run import run as start_run
from dlprov.capture.task import Task
from dlprov.model.names import (  # noqa: F401  (attribute_name: the integrations' name rule)
    ITRAIN,
    OTEST,
    OTRAIN,
    OTRAINEDMODEL,
    TEST,
    TRAIN,
    attribute_name,
)
from dlprov.model.spec import Attribute, AttributeType

log = logging.getLogger("dlprov.integrations")


# The hyperparameters of the paper's Listing 2, by their Keras-Prov keys.
OPTIMIZER_NAME, LEARNING_RATE, DECAY, MOMENTUM = ("OPTIMIZER_NAME", "LEARNING_RATE", "DECAY",
                                                 "MOMENTUM")
NUM_EPOCHS, BATCH_SIZE, NUM_LAYERS = "NUM_EPOCHS", "BATCH_SIZE", "NUM_LAYERS"
HYPERPARAMETERS = (OPTIMIZER_NAME, LEARNING_RATE, DECAY, MOMENTUM, NUM_EPOCHS, BATCH_SIZE,
                   NUM_LAYERS)

_EPOCH_ATTRIBUTES = (Attribute("timestamp", AttributeType.TIMESTAMP),
                     Attribute("epoch", AttributeType.NUMERIC),
                     Attribute("elapsed_time", AttributeType.NUMERIC))
_TEST_ATTRIBUTES = (Attribute("timestamp", AttributeType.TIMESTAMP),)
F = TypeVar("F", bound=Callable[..., Any])


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are single numbers (Python, NumPy or 0-d tensors), by attribute name."""
    found = {}
    for name, value in metrics.items():
        item = getattr(value, "item", None)
        if item is not None and getattr(value, "ndim", 0) == 0:
            value = item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        found[attribute_name(name)] = float(value)
    return found


def guarded(method: F) -> F:
    """Run a hook; log (once per hook) instead of raising if provenance fails."""
    failed: set[tuple[int | None, str]] = set()

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - provenance must never stop training
            key = (id(args[0]) if args else None, method.__qualname__)
            if key not in failed:
                failed.add(key)
                log.warning("dlprov: %s failed, training goes on: %s: %s",
                            method.__qualname__, type(exc).__name__, exc)
            return None
    return wrapper  # type: ignore[return-value]


class TrainingCapture:
    """One training (and optional test) of a model inside a run.

    Give ``run`` to capture into an existing run (its other tasks, e.g. data preparation, can be
    listed in ``depends_on``), else a run of ``dataflow_tag`` is started and ended here.
    """

    def __init__(self, dataflow_tag: str | None = None, *, run: Run | None = None,
                 depends_on: Iterable[Task] = (), uses: Iterable[str] | None = None,
                 **run_options: Any) -> None:
        if run is None and dataflow_tag is None:
            raise ValueError("give a dataflow tag or a run")
        self._own_run = run is None
        self.run = run or start_run(dataflow_tag, **run_options)
        self.depends_on, self.uses = list(depends_on), uses
        self.train_task: Task | None = None
        self.test_task: Task | None = None
        self.model_id: str | None = None
        self._metrics_declared: set[str] = set()

    # -- training ---------------------------------------------------------------------------
    def start_training(self, hyperparameters: Mapping[str, Any]) -> Task:
        """Start the train task and record ``hyperparameters`` (one ``itrain`` element)."""
        self.train_task = self.run.task(TRAIN, depends_on=self.depends_on, uses=self.uses)
        values = {attribute_name(k): v for k, v in hyperparameters.items() if v is not None}
        if values:
            # a later train task of the run (e.g. L-BFGS after Adam) may bring new keys
            if ITRAIN in self.run.seen_sets and self.run.book.infer_set(ITRAIN, values):
                self.run.send_spec()
            self.train_task.input(ITRAIN, **values)
        return self.train_task

    def epoch(self, epoch: int, metrics: Mapping[str, Any], elapsed_time: float | None) -> None:
        """Record one epoch: every numeric metric, its elapsed time and a timestamp."""
        values = numeric_metrics(metrics)
        for own in _EPOCH_ATTRIBUTES:
            values.pop(own.name, None)
        self._declare_metrics(OTRAIN, values, _EPOCH_ATTRIBUTES)
        self._task().output(OTRAIN, timestamp=datetime.now(), epoch=epoch,
                            elapsed_time=elapsed_time, **values)

    def trained_model(self, path: str | os.PathLike, model: Any = None,
                      framework: str | None = None, name: str | None = None) -> str:
        """Record the saved model (see :meth:`dlprov.Task.model`); returns its id."""
        self.model_id = self._task().model(path, model, framework=framework, name=name)
        return self.model_id

    def end_training(self, error: BaseException | str | None = None) -> None:
        if self.train_task is not None:
            self.train_task.end(error)

    # -- testing ----------------------------------------------------------------------------
    def test(self, metrics: Mapping[str, Any]) -> None:
        """Record test metrics (``otest``) in a test task that used the trained model."""
        values = numeric_metrics(metrics)
        values.pop("timestamp", None)
        if self.test_task is None:
            produced = self.train_task.produced if self.train_task else set()
            self.test_task = self.run.task(
                TEST, depends_on=[self.train_task] if self.train_task else [],
                uses=[OTRAINEDMODEL] if OTRAINEDMODEL in produced else None)
        self._declare_metrics(OTEST, values, _TEST_ATTRIBUTES)
        self.test_task.output(OTEST, timestamp=datetime.now(), **values)

    def end_test(self, error: BaseException | str | None = None) -> None:
        """End the test task; the next :meth:`test` starts a new one (one per evaluation)."""
        if self.test_task is not None:
            self.test_task.end(error)
            self.test_task = None

    # -- end --------------------------------------------------------------------------------
    def close(self, error: BaseException | str | None = None) -> None:
        """End open tasks, and the run if this object started it."""
        self.end_training(error)
        self.end_test(error)
        if self._own_run:
            self.run.end(error)

    def _task(self) -> Task:
        if self.train_task is None:
            self.start_training({})
        return self.train_task  # type: ignore[return-value]

    def _declare_metrics(self, set_tag: str, values: Mapping[str, float],
                         own: Iterable[Attribute] = ()) -> None:
        # Metrics may be NaN or inf when training diverges: keep them rather than fail.
        new = [name for name in values if (set_tag, name) not in self._metrics_declared]
        if new or (set_tag, None) not in self._metrics_declared:
            self.run.declare_set(set_tag, [*own, *(Attribute(n, AttributeType.NUMERIC,
                                                             allow_nan=True) for n in new)])
            self._metrics_declared.update([(set_tag, None), *((set_tag, n) for n in new)])

