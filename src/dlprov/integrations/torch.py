"""Provenance of a hand-written PyTorch training loop, which has no framework hooks to attach to.

    with track_training("mnist", model=model, optimizer=optimizer, epochs=3,
                        batch_size=32) as log:
        for epoch in range(3):
            ...                                   # your loop, unchanged
            log.epoch_end(epoch, loss=loss, accuracy=accuracy, val_loss=val_loss)
        log.save_model("model.pt")
        log.test(loss=test_loss, accuracy=test_accuracy)

What is recorded (through :class:`~dlprov.integrations.common.TrainingCapture`): the
hyperparameters (``itrain``) read from the optimizer, the model and the arguments; the data
given as ``data=`` (``itraindataset``); one ``otrain`` element per :meth:`TrainingLog.epoch_end`
with its elapsed time and the optimizer's learning rate (``lr``); optionally one ``otrainbatch``
element per :meth:`TrainingLog.batch_end`; the saved model (``otrainedmodel`` and
``trained_model``); the test metrics (``otest``) of a test task that used that model.

Errors: mistakes in the arguments of :func:`track_training` raise at once (nothing has been
trained yet; a store that cannot be reached is not a mistake: it is logged); so do
:meth:`TrainingLog.save_model` when the model cannot be saved (the file is yours, not
provenance) and :meth:`TrainingLog.record_model` given no file. The calls made in the loop
(``epoch_end``, ``batch_end``, ``test``) and the recording itself never raise: a provenance
failure is logged, every time but rate-limited (logger ``dlprov.integrations``), and training
goes on. An exception leaving the ``with`` block fails the train task with its traceback, and
propagates.

PyTorch is imported only to save a model; :func:`optimizer_hyperparameters` and
:class:`TorchCapture` serve the Lightning integration too.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import time
import weakref
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from dlprov.capture.models import layer_count
from dlprov.capture.run import Run
from dlprov.capture.task import RUNNING, Task
from dlprov.integrations.common import (
    BATCH_SIZE,
    LEARNING_RATE,
    MOMENTUM,
    NUM_EPOCHS,
    NUM_LAYERS,
    OPTIMIZER_NAME,
    OTRAINEDMODEL,
    TEST,
    TrainingCapture,
    guarded,
    log,
    merge_names,
)
from dlprov.model.names import check_name, task_column
from dlprov.model.spec import Attribute, AttributeType

__all__ = ["track_training", "TrainingLog", "TorchCapture", "optimizer_hyperparameters",
           "current_learning_rate", "check_arguments", "OTRAINBATCH", "WEIGHT_DECAY"]

OTRAINBATCH = "otrainbatch"
WEIGHT_DECAY = "WEIGHT_DECAY"
_MAX_TEXT = 1000
_TASK_COLUMN = task_column("")  # "_task_id", the end of a set table's task columns
_BATCH_ATTRIBUTES = (Attribute("timestamp", AttributeType.TIMESTAMP),
                     Attribute("epoch", AttributeType.NUMERIC),
                     Attribute("step", AttributeType.NUMERIC))


def optimizer_hyperparameters(optimizer: Any) -> dict[str, Any]:
    """``OPTIMIZER_NAME``, ``LEARNING_RATE`` and, where the optimizer has them, ``MOMENTUM`` and
    ``WEIGHT_DECAY`` of a ``torch.optim`` optimizer (or Lightning's wrapper of one), read from its
    first parameter group. The learning rate is the one a scheduler started from, if one is
    attached (schedulers keep it as ``initial_lr``)."""
    if optimizer is None:
        return {}
    inner = getattr(optimizer, "optimizer", None)  # LightningOptimizer wraps the real one
    if inner is not None and hasattr(inner, "param_groups"):
        optimizer = inner
    groups = getattr(optimizer, "param_groups", None) or [{}]
    group = groups[0]
    return {OPTIMIZER_NAME: type(optimizer).__name__.lower(),
            LEARNING_RATE: group.get("initial_lr", group.get("lr")),
            MOMENTUM: group.get("momentum"), WEIGHT_DECAY: group.get("weight_decay")}


def current_learning_rate(optimizer: Any) -> float | None:
    """The learning rate the first parameter group of a ``torch.optim`` optimizer (or
    Lightning's wrapper of one) uses now: a scheduler's current one, not where it started."""
    inner = getattr(optimizer, "optimizer", None)
    if inner is not None and hasattr(inner, "param_groups"):
        optimizer = inner
    groups = getattr(optimizer, "param_groups", None)
    rate = groups[0].get("lr") if groups else None
    rate = plain_value(rate) if rate is not None else None
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None


def plain_value(value: Any) -> Any:
    """A hyperparameter as a value the store takes: numbers, text, paths and times as they are,
    0-d tensors as numbers, JSON-able lists and dicts as JSON, anything else as its text."""
    if value is None or isinstance(value, (str, bool, int, os.PathLike, datetime, date)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN is refused as a number
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return plain_value(item())
        except Exception:  # noqa: BLE001 - fall back to the text
            return str(value)
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.loads(json.dumps(value, default=str, allow_nan=False))
        except (TypeError, ValueError):
            pass
    text = str(value)  # a module, a class, a function: its text, not a whole network's repr
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "..."


class TorchCapture(TrainingCapture):
    """:class:`TrainingCapture` for the PyTorch family (plain loops and Lightning): plain
    hyperparameter values, per-batch elements (``otrainbatch``), a test task started before its
    metrics are known, and a run it started ended (finished) at interpreter exit if nothing
    ended it before."""

    def __init__(self, dataflow_tag: str | None = None, **options: Any) -> None:
        super().__init__(dataflow_tag, **options)
        if self._own_run:
            _OPEN.add(self)

    def start_training(self, hyperparameters: Mapping[str, Any], data: Any = None) -> Task:
        return super().start_training(_plain_hyperparameters(hyperparameters), data)

    def batch(self, step: int, epoch: int | None, metrics: Mapping[str, Any]) -> None:
        """Record one batch (``otrainbatch``): its metrics, epoch, step and timestamp."""
        own = {"timestamp": datetime.now(), "epoch": epoch, "step": step}
        row = self.metric_row(OTRAINBATCH, metrics, _BATCH_ATTRIBUTES, own)
        self._task().output(OTRAINBATCH, **own, **row)

    def start_test(self) -> Task:
        """Start the test task (if not started yet): it used the trained model, if recorded.
        Frameworks start it when testing starts, so that a failing test is a failed task."""
        if self.test_task is None:
            produced = self.train_task.produced if self.train_task else set()
            self.test_task = self.run.task(
                TEST, depends_on=[self.train_task] if self.train_task else [],
                uses=[OTRAINEDMODEL] if OTRAINEDMODEL in produced else None)
        return self.test_task

    @property
    def open(self) -> bool:
        """Whether the run still takes records."""
        return self.run.status == RUNNING

    @property
    def owns_run(self) -> bool:
        """Whether this capture started the run (and ends it)."""
        return self._own_run


def check_arguments(dataflow_tag: str | None, run: Run | None, run_options: Mapping[str, Any],
                    hyperparameters: Any, **counts: int | None) -> None:
    """The mistakes an integration's constructor raises at once, before anything is trained:
    neither a tag nor a run, a bad tag, options of a new run next to ``run``, hyperparameters
    that are not a dict, counts (``epochs``, ...) that are not positive integers."""
    if run is None and dataflow_tag is None:
        raise ValueError("give a dataflow tag or a run")
    if dataflow_tag is not None:
        check_name("dataflow", dataflow_tag)
    if run is not None and run_options:
        raise TypeError(f"{', '.join(sorted(run_options))}: options of a new run, but run= was "
                        f"given; set them where that run was started")
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        raise TypeError(f"hyperparameters must be a dict, got {type(hyperparameters).__name__}")
    for name, count in counts.items():
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 1):
            raise ValueError(f"{name} must be a positive integer, got {count!r}")


def _plain_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    found = {k: plain_value(v) for k, v in hyperparameters.items()}
    return {k: v for k, v in found.items() if v is not None}


def derived_hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters dlprov derives (``LEARNING_RATE``, ...) by their column names, so that
    one given under any case (``learning_rate``) replaces them (see :func:`merge_names`)."""
    return {name.lower(): value for name, value in values.items()}


_OPEN: "weakref.WeakSet[TorchCapture]" = weakref.WeakSet()


def _end_open_runs() -> None:
    for capture in list(_OPEN):
        if capture.open:
            guarded(capture.close)()


# Registered after the recorder's own exit hook (imported above), so it runs before it.
atexit.register(_end_open_runs)


class TrainingLog:
    """The provenance of one training in a plain PyTorch loop; make it with
    :func:`track_training` (its arguments are documented there) and use it as a context
    manager, or call :meth:`close` yourself."""

    def __init__(self, dataflow_tag: str | None = None, *, model: Any = None,
                 optimizer: Any = None, epochs: int | None = None, batch_size: int | None = None,
                 hyperparameters: Mapping[str, Any] | None = None, run: Run | None = None,
                 depends_on: Iterable[Task] = (), uses: Iterable[str] | None = None,
                 data: Any = None, log_every_n_steps: int = 1, **run_options: Any) -> None:
        check_arguments(dataflow_tag, run, run_options, hyperparameters, epochs=epochs,
                        batch_size=batch_size, log_every_n_steps=log_every_n_steps)
        self.model, self.optimizer, self.log_every_n_steps = model, optimizer, log_every_n_steps
        derived = {**optimizer_hyperparameters(optimizer), NUM_EPOCHS: epochs,
                   BATCH_SIZE: batch_size, NUM_LAYERS: layer_count(model)}
        #: The hyperparameters recorded in ``itrain``, by the names given: derived ones,
        #: replaced by those given under the same name in any case.
        self.hyperparameters: dict[str, Any] = _plain_hyperparameters(
            merge_names(derived_hyperparameters(derived), hyperparameters))
        self.capture: TorchCapture | None = None
        self._mark = time.perf_counter()
        self._epoch_started: float | None = None
        self._epoch: int | None = None
        self._epoch_rate: float | None = None
        self._epochs_done = self._batches = 0
        self._closed = False
        try:
            self.capture = TorchCapture(dataflow_tag, run=run, depends_on=depends_on, uses=uses,
                                        **run_options)
        except (TypeError, ValueError):  # a mistake in the arguments (exec_tag taken, ...)
            raise
        except Exception as exc:  # noqa: BLE001 - the store's trouble never stops training
            log.warning("dlprov: cannot start capturing %r, training goes on: %s: %s",
                        dataflow_tag, type(exc).__name__, exc)
            return
        self._start_training(data)

    @guarded
    def _start_training(self, data: Any) -> None:
        self.capture.start_training(self.hyperparameters, data)  # type: ignore[union-attr]

    # -- what the loop calls ----------------------------------------------------------------
    @property
    def run(self) -> Run | None:
        """The run recorded into (``None`` if capture could not start)."""
        return None if self.capture is None else self.capture.run

    def epoch_start(self, epoch: int | None = None) -> None:
        """Optional: start timing an epoch here (else it is timed from the previous
        :meth:`epoch_end`, or the start of training); ``epoch`` numbers its batches."""
        self._epoch_started = time.perf_counter()
        self._epoch = epoch
        self._epoch_rate = current_learning_rate(self.optimizer)

    def epoch_end(self, epoch: int, /, *, elapsed_time: float | None = None,
                  **metrics: Any) -> None:
        """Record epoch ``epoch`` (numbered as you like) with its metrics, under any name
        (``val/acc@1`` is stored as ``val_acc_1``; names that clean alike get columns of their
        own, see ``dlprov schema``): numbers and 0-d tensors, text, small tensors element by
        element; what cannot be stored is left out with a warning
        (:mod:`dlprov.integrations.metrics`). ``elapsed_time`` (seconds) is measured if not
        given. The optimizer's learning rate is recorded as ``lr`` (unless a metric of that
        name is given): the one read by :meth:`epoch_start` if it was called, else the one
        now, so call this before ``scheduler.step()``, or call :meth:`epoch_start`."""
        now = time.perf_counter()
        if elapsed_time is None:
            elapsed_time = now - (self._epoch_started if self._epoch_started is not None
                                  else self._mark)
        rate = self._epoch_rate if self._epoch_rate is not None \
            else current_learning_rate(self.optimizer)
        self._mark, self._epoch_started, self._epoch, self._epoch_rate = now, None, None, None
        self._epochs_done += 1
        self._record_epoch(epoch, metrics, elapsed_time, rate)

    def batch_end(self, step: int | None = None, /, *, epoch: int | None = None,
                  **metrics: Any) -> None:
        """Record one batch in ``otrainbatch``: every ``log_every_n_steps``-th call is kept.
        ``step`` defaults to the count of earlier calls; ``epoch`` to the one given to
        :meth:`epoch_start`, else the count of epochs ended so far."""
        count, self._batches = self._batches, self._batches + 1
        if count % self.log_every_n_steps:
            return
        if epoch is None:
            epoch = self._epoch if self._epoch is not None else self._epochs_done
        self._record_batch(count if step is None else step, epoch, metrics)

    def save_model(self, path: str | os.PathLike, *, whole_model: bool = False,
                   name: str | None = None) -> str | None:
        """``torch.save`` the model's ``state_dict`` (or, with ``whole_model``, the model) at
        ``path``, then record it; returns the model's id (``None`` if recording failed).
        Save before :meth:`test`, so that the test task is linked to the model."""
        if self.model is None:
            raise ValueError("no model to save: give track_training(model=...), or save it "
                             "yourself and call record_model(path)")
        try:
            import torch
        except ImportError as exc:
            raise ImportError("saving a model needs PyTorch: pip install 'dlprov[torch]'") \
                from exc
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.model if whole_model else self.model.state_dict(), path)
        return self.record_model(path, name=name)

    def record_model(self, path: str | os.PathLike, *, name: str | None = None) -> str | None:
        """Record a model file you saved yourself (its sha256 and size are computed by the
        recorder); returns its id, ``None`` if recording failed."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no model file at {os.fspath(path)!r}: save it first")
        return self._record_model(path, name)

    def test(self, **metrics: Any) -> None:
        """Record test metrics (``otest``) in a test task that used the trained model; the
        training is over once you test (its task ends)."""
        self._record_test(metrics)

    def close(self, error: BaseException | str | None = None) -> None:
        """End the tasks (failed with ``error`` if given) and the run, if this log started it."""
        if not self._closed:
            self._closed = True
            self._close(error)

    def __enter__(self) -> "TrainingLog":
        self._mark = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)

    # -- each guarded on its own: one failing leaves the others to run -----------------------
    @guarded
    def _record_epoch(self, epoch: int, metrics: Mapping[str, Any], elapsed: float,
                      rate: float | None) -> None:
        if self._capturing():
            self.capture.epoch(epoch, metrics, elapsed, rate)  # type: ignore[union-attr]

    @guarded
    def _record_batch(self, step: int, epoch: int, metrics: Mapping[str, Any]) -> None:
        if self._capturing():
            self.capture.batch(step, epoch, metrics)  # type: ignore[union-attr]

    @guarded
    def _record_model(self, path: str | os.PathLike, name: str | None) -> str | None:
        if not self._capturing():
            return None
        if self.capture.test_task is not None:  # type: ignore[union-attr]
            log.warning("dlprov: model %s recorded after test(): the test task is not linked "
                        "to it; call save_model() before test()", os.fspath(path))
        return self.capture.trained_model(path, self.model, framework="torch",  # type: ignore
                                          name=name)

    @guarded
    def _record_test(self, metrics: Mapping[str, Any]) -> None:
        if self._capturing():
            self.capture.end_training()  # type: ignore[union-attr]
            self.capture.test(metrics)  # type: ignore[union-attr]

    @guarded
    def _close(self, error: BaseException | str | None) -> None:
        if self.capture is not None:
            self.capture.close(error)

    def _capturing(self) -> bool:
        if self._closed:
            raise RuntimeError("this training log is closed; record inside its with block")
        return self.capture is not None

    def __repr__(self) -> str:
        return f"<dlprov TrainingLog of {self.run!r}>"


def track_training(dataflow_tag: str | None = None, **options: Any) -> TrainingLog:
    """Record a plain PyTorch training; use the result as a context manager.

    ``dataflow_tag``: the dataflow of the run started here (ended when the ``with`` block is
    left); or give ``run=`` to record into a run of yours, with ``depends_on``/``uses`` naming
    the tasks and sets the training used. The hyperparameters (``itrain``) are derived from
    ``optimizer`` (``optimizer_name``, ``learning_rate``, ``momentum``, ``weight_decay``),
    ``model`` (``num_layers``: modules with weights of their own), ``epochs`` (``num_epochs``)
    and ``batch_size``; ``hyperparameters`` adds to and overrides them (``lr`` is recorded as
    ``learning_rate``). ``data`` names the data the training used, e.g. ``{"train": x_train,
    "val": val_loader}`` (arrays, tensors, paths, datasets, data loaders: see
    :mod:`dlprov.integrations.data`): each is an element of ``itraindataset`` with its shape,
    record count, digest and path, or, if a step of ``run`` produced it, the train task uses
    that step's output; ``dlprov.query.q11(model)`` lists them. Each epoch's learning rate is
    recorded in ``otrain`` as ``lr`` (see :meth:`TrainingLog.epoch_end`). ``log_every_n_steps``
    thins :meth:`TrainingLog.batch_end`. Other options (``store``, ``exec_tag``, ``user``,
    ``capture_environment``, ...) start the run as :func:`dlprov.run` does.
    """
    return TrainingLog(dataflow_tag, **options)
