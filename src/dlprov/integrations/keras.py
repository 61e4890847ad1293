"""Keras 3 integration: the DLProv paper's Keras specialization (Keras-Prov, Listing 2).

Two ways in, both recording through :class:`~dlprov.integrations.common.TrainingCapture`:

* :class:`ProvenanceCallback`, a ``keras.callbacks.Callback`` given to ``model.fit`` and
  ``model.evaluate``;
* :func:`provenance`, the paper's ``model.provenance(...)``: it attaches such a callback to one
  model so that its later ``fit`` and ``evaluate`` calls record without being told.

What is recorded: the hyperparameters chosen (``itrain``), the data ``fit`` was given
(``itraindataset``: ``x``, ``y``, ``validation_data``, as fit trains on them after
``validation_split``; see :mod:`dlprov.integrations.data`), one ``otrain`` element per epoch with
every metric in Keras' logs (training and ``val_*``), the epoch's learning rate (``lr``: the
rate of its first step, after a ``LearningRateScheduler`` set it; Keras' own ``learning_rate``
log entry is not stored twice) and elapsed time, the model saved
as ``.keras`` at the end of training (``otrainedmodel`` and ``trained_model``), the metrics of
``evaluate`` (``otest``) and, with ``adaptation=True``, learning-rate changes (``oadaptation``).
Epochs are numbered from 1, as Keras' progress bar shows them.

Keras is imported on first use, not with this module: the hyperparameter keys can be imported
without it, and ``ProvenanceCallback`` without Keras raises an ImportError naming the extra.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dlprov.capture.run import Run
from dlprov.capture.task import RUNNING, Task
from dlprov.integrations.common import (
    BATCH_SIZE,
    DECAY,
    HYPERPARAMETERS,
    LEARNING_RATE,
    MOMENTUM,
    NUM_EPOCHS,
    NUM_LAYERS,
    OPTIMIZER_NAME,
    TrainingCapture,
    guarded,
    merge_names,
)
from dlprov.model.names import check_name

__all__ = ["BATCH_SIZE", "DECAY", "LEARNING_RATE", "MOMENTUM", "NUM_EPOCHS",
           "NUM_LAYERS", "OADAPTATION", "OPTIMIZER_NAME", "ProvenanceCallback", "detach",
           "provenance"]  # ProvenanceCallback is made on first access (__getattr__)

OADAPTATION = "oadaptation"
_ATTACHED = "_dlprov_provenance"
_UNFINISHED = ("training did not finish: the process exited while model.fit was running "
               "(use the callback as a context manager to record the error)")


def _keras():
    try:
        import keras
    except ImportError as exc:
        raise ImportError("dlprov.integrations.keras needs Keras 3: "
                          "pip install 'dlprov[keras]'") from exc
    return keras


def select(hyperparameters: Mapping[str, bool] | None) -> dict[str, bool]:
    """Which of the paper's hyperparameters to capture: ``None`` means all of them; a dict
    (keys such as ``LEARNING_RATE``, any case) captures those mapped to True, as in Listing 2."""
    if hyperparameters is None:
        return dict.fromkeys(HYPERPARAMETERS, True)
    chosen = {}
    for key, wanted in hyperparameters.items():
        name = str(key).upper()
        if name not in HYPERPARAMETERS:
            raise ValueError(f"unknown hyperparameter {key!r}: choose among "
                             f"{', '.join(HYPERPARAMETERS)}; give other values in "
                             f"extra_hyperparameters")
        chosen[name] = bool(wanted)
    return chosen


class _ProvenanceHooks:
    """Records a Keras training (and its evaluations) into a dlprov run.

    ``ProvenanceCallback(dataflow_tag, hyperparameters=None, extra_hyperparameters=None,
    adaptation=False, run=None, store=None, save_model=True, model_dir="models",
    depends_on=(), uses=None, **run_options)``

    * ``hyperparameters``: which of ``OPTIMIZER_NAME``, ``LEARNING_RATE``, ``DECAY``,
      ``MOMENTUM``, ``NUM_EPOCHS``, ``BATCH_SIZE``, ``NUM_LAYERS`` to capture (a dict of
      booleans; default all, each where the optimizer has it). ``extra_hyperparameters``:
      more ``itrain`` values of your own (``{"dropout": 0.2}``).
    * ``run``: capture into this run (``depends_on``/``uses`` link the train task to its other
      tasks); else each ``fit`` starts a run of ``dataflow_tag`` (in ``store``), which ends at
      :meth:`close`, when the ``with`` block is left, when the next ``fit`` starts, or at exit.
    * ``save_model``: save the trained model as ``<model_dir>/<name>-<key>.keras``.
    * ``adaptation``: record learning-rate changes between epochs in ``oadaptation``.

    Keras has no hook for a failing ``fit``: use the callback as a context manager
    (``with callback: model.fit(..., callbacks=[callback])``) or call ``close(error)`` so that
    the task and run are recorded as failed. Provenance problems are logged, never raised.
    """

    def __init__(self, dataflow_tag: str | None = None, *,
                 hyperparameters: Mapping[str, bool] | None = None,
                 extra_hyperparameters: Mapping[str, Any] | None = None,
                 adaptation: bool = False, run: Run | None = None, store: Any = None,
                 save_model: bool = True, model_dir: str | os.PathLike = "models",
                 depends_on: Iterable[Task] = (), uses: Iterable[str] | None = None,
                 **run_options: Any) -> None:
        super().__init__()
        if run is None and dataflow_tag is None:
            raise ValueError("give a dataflow tag (ProvenanceCallback('mnist')) or a run")
        if run is None:
            check_name("dataflow", dataflow_tag)
            if store is not None:
                run_options["store"] = store
        self.dataflow_tag, self.given_run = dataflow_tag, run
        self.selected = select(hyperparameters)
        self.extra_hyperparameters = dict(extra_hyperparameters or {})
        self.adaptation, self.save_model, self.model_dir = adaptation, save_model, model_dir
        self._capture_options = {"depends_on": list(depends_on), "uses": uses, **run_options}
        self.capture: TrainingCapture | None = None
        self.model_path: str | None = None
        self._epoch, self._epoch_started, self._test_started = 1, 0.0, 0.0
        self._learning_rate: float | None = None
        self._epoch_rate: float | None = None

    # -- training ---------------------------------------------------------------------------
    @guarded
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.capture is not None and self.capture.train_task is not None:
            self.close()  # a second fit is a training of its own
        capture = self._open_capture()
        # An unreadable hyperparameter must not cost the epochs: record the training without.
        capture.start_training(guarded(self.hyperparameter_values)() or {},
                               guarded(self.training_data)())
        self._learning_rate = _number(_learning_rate(self.model.optimizer))

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch, self._epoch_started = epoch + 1, time.perf_counter()
        self._epoch_rate = None

    @guarded
    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        # The first step of an epoch runs with the rate every on_epoch_begin/_end set.
        if batch != 0 or not self._training():
            return
        rate = self._epoch_rate = _number(_learning_rate(self.model.optimizer))
        if self.adaptation and rate is not None and rate != self._learning_rate:
            self.capture.train_task.output(  # type: ignore[union-attr]
                OADAPTATION, epoch=self._epoch, new_lrate=rate, timestamp=datetime.now())
            self._learning_rate = rate

    @guarded
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._training():
            metrics = dict(logs or {})
            # Keras' rate callbacks log the rate as learning_rate (ReduceLROnPlateau: the one
            # set for the next epoch); otrain has one name for it: lr, the epoch's own rate.
            metrics.pop("learning_rate", None)
            rate = self._epoch_rate if self._epoch_rate is not None \
                else _number(_learning_rate(self.model.optimizer))
            self.capture.epoch(epoch + 1, metrics,  # type: ignore[union-attr]
                               time.perf_counter() - self._epoch_started, rate)

    @guarded
    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if not self._training():
            return
        if self.save_model:
            self._save_model()
        self.capture.end_training()  # type: ignore[union-attr]
        self.capture.run.flush()  # type: ignore[union-attr]

    @guarded
    def _save_model(self) -> None:
        model, capture = self.model, self.capture
        os.makedirs(self.model_dir, exist_ok=True)
        path = os.path.join(self.model_dir,
                            f"{model.name}-{capture.train_task.key[:8]}.keras")  # type: ignore
        model.save(path)
        self.model_path = path
        capture.trained_model(path, model, framework="keras")  # type: ignore[union-attr]

    # -- testing ----------------------------------------------------------------------------
    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._test_started = time.perf_counter()

    @guarded
    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if _fit_frame(self.model) is not None:
            return  # validation inside fit: its metrics go to otrain as val_*
        capture = self.capture if self.capture is not None else self._open_capture()
        capture.test({**(logs or {}), "elapsed_time": time.perf_counter() - self._test_started})
        capture.end_test()
        capture.run.flush()

    # -- values -----------------------------------------------------------------------------
    def hyperparameter_values(self) -> dict[str, Any]:
        """The chosen hyperparameters of the model being trained, plus the extra ones."""
        model, params = self.model, self.params or {}
        optimizer = getattr(model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        found: dict[str, Any] = {
            OPTIMIZER_NAME: type(optimizer).__name__.lower() if optimizer is not None else None,
            LEARNING_RATE: _number(_learning_rate(optimizer)),
            DECAY: _number(_decay(optimizer)),
            MOMENTUM: _number(getattr(optimizer, "momentum", None)),
            NUM_EPOCHS: params.get("epochs"),
            BATCH_SIZE: params.get("batch_size") or _batch_size(model),
            NUM_LAYERS: len(model.layers),
        }
        values = {key: value for key, value in found.items() if self.selected.get(key)}
        if self.selected.get(DECAY) and getattr(optimizer, "weight_decay", None) is not None:
            values["weight_decay"] = _number(optimizer.weight_decay)
        return merge_names(values, self.extra_hyperparameters)  # yours replace ours, any case

    def training_data(self) -> dict[str, Any]:
        """The data ``fit`` was given, as it trains on it (after ``validation_split``): ``x``,
        ``y`` and ``validation_data``."""
        frame = _fit_frame(self.model)
        if frame is None:
            return {}
        return {name: frame.f_locals.get(name) for name in ("x", "y", "validation_data")}

    # -- end --------------------------------------------------------------------------------
    @guarded
    def close(self, error: BaseException | str | None = None) -> None:
        """End the open tasks and the run this callback started; ``error`` marks them failed."""
        capture, self.capture = self.capture, None
        if capture is not None:
            _OPEN.discard(capture)
            capture.close(error)

    def __enter__(self) -> _ProvenanceHooks:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)

    def _open_capture(self) -> TrainingCapture:
        self.capture = TrainingCapture(self.dataflow_tag, run=self.given_run,
                                       **self._capture_options)
        if self.given_run is None:  # a given run ends its open tasks itself
            _OPEN.add(self.capture)
        return self.capture

    def _training(self) -> bool:
        task = self.capture.train_task if self.capture is not None else None
        return task is not None and task.status == RUNNING


@functools.cache
def _callback_class() -> type:
    keras = _keras()
    return type("ProvenanceCallback", (_ProvenanceHooks, keras.callbacks.Callback),
                {"__doc__": _ProvenanceHooks.__doc__, "__module__": __name__})


if TYPE_CHECKING:  # at run time, __getattr__ makes the class on first access
    ProvenanceCallback = _ProvenanceHooks


def __getattr__(name: str) -> Any:
    if name == "ProvenanceCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the paper's model.provenance() -------------------------------------------------------------

def provenance(model: Any, dataflow_tag: str | None = None, adaptation: bool = False,
               hyperparameters: Mapping[str, bool] | None = None,
               extra_hyperparameters: Mapping[str, Any] | None = None, **options: Any):
    """Capture the provenance of ``model``'s later ``fit`` and ``evaluate`` calls (Listing 2)::

        provenance(model, dataflow_tag="kerasprov_example", adaptation=True,
                   hyperparameters={OPTIMIZER_NAME: True, LEARNING_RATE: True, DECAY: False,
                                    MOMENTUM: False, NUM_EPOCHS: True, BATCH_SIZE: True,
                                    NUM_LAYERS: True})
        model.fit(x, y, epochs=5)      # itrain, otrain, otrainedmodel
        model.evaluate(x_test, y_test) # otest

    The booleans choose the hyperparameters captured; ``options`` are those of
    :class:`ProvenanceCallback`. ``fit`` and ``evaluate`` are wrapped on this model object only
    (not its class) to add the callback to the ``callbacks`` they are given; an exception in them
    is recorded (task and run failed) and raised again. Returns the callback: ``close()`` it to
    end the run before the process exits; :func:`detach` undoes the wrapping.
    """
    detach(model)
    callback = _callback_class()(dataflow_tag, adaptation=adaptation,
                                 hyperparameters=hyperparameters,
                                 extra_hyperparameters=extra_hyperparameters, **options)
    for name in ("fit", "evaluate"):
        setattr(model, name, _with_callback(model, getattr(model, name), callback))
    setattr(model, _ATTACHED, callback)
    return callback


def detach(model: Any) -> None:
    """Undo :func:`provenance` on ``model``: end its capture and restore ``fit``/``evaluate``."""
    callback = model.__dict__.get(_ATTACHED)
    if callback is None:
        return
    callback.close()
    for name in ("fit", "evaluate", _ATTACHED):
        if name in model.__dict__:
            delattr(model, name)


def _with_callback(model: Any, method: Callable, callback: Any) -> Callable:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def with_provenance(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["callbacks"] = _add_callback(model, bound.arguments.get("callbacks"),
                                                     callback)
        try:
            return method(*bound.args, **bound.kwargs)
        except BaseException as error:
            callback.close(error)
            raise
    return with_provenance


def _add_callback(model: Any, callbacks: Any, callback: Any) -> Any:
    if callbacks is None:
        return [callback]
    inner = getattr(callbacks, "callbacks", None)
    if isinstance(inner, list):  # a CallbackList, as fit hands to its own validation
        if callback not in inner:
            inner.append(callback)
            callback.set_model(model)
            callback.set_params(getattr(callbacks, "params", None) or {})
        return callbacks
    listed = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    return listed if callback in listed else [*listed, callback]


# -- reading Keras ------------------------------------------------------------------------------

def _fit_frame(model: Any):
    """The frame of the ``model.fit`` now running on this thread's stack, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            return frame
        frame = frame.f_back
    return None


def _batch_size(model: Any) -> int | None:
    """Keras 3 keeps the batch size in fit's data adapter (32 when not given for arrays)."""
    frame = _fit_frame(model)
    iterator = frame.f_locals.get("epoch_iterator") if frame is not None else None
    size = getattr(getattr(iterator, "data_adapter", None), "batch_size", None)
    return int(size) if isinstance(size, int) else None


def _learning_rate(optimizer: Any) -> Any:
    if optimizer is None:
        return None
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    rate = getattr(optimizer, "learning_rate", None)
    return rate if rate is not None else getattr(optimizer, "lr", None)


def _decay(optimizer: Any) -> Any:
    """Keras 2's ``decay``; Keras 3 dropped it for schedules, whose ``decay_rate`` stands in."""
    decay = getattr(optimizer, "decay", None)
    if decay is None:
        decay = getattr(getattr(optimizer, "_learning_rate", None), "decay_rate", None)
    return decay


def _number(value: Any) -> float | None:
    """A Python float from a float, Keras variable or tensor; a float32 reads as the decimal it
    was set from (0.001, not 0.0010000000474974513)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        array = _keras().ops.convert_to_numpy(value)
    except Exception:
        return None
    if getattr(array, "ndim", None) != 0 or array.dtype.kind not in "fiu":
        return None
    scalar = array[()]
    return float(str(scalar)) if array.dtype.kind == "f" else float(scalar)


# -- runs left open at exit ---------------------------------------------------------------------

_OPEN: set[TrainingCapture] = set()


def _close_at_exit() -> None:
    """End the runs still open: failed if training was cut short or the script raised."""
    error = getattr(sys, "last_value", None)
    for capture in list(_OPEN):
        unfinished = capture.train_task is not None and capture.train_task.status == RUNNING
        try:
            capture.close(error if error is not None else _UNFINISHED if unfinished else None)
        except Exception:
            pass
    _OPEN.clear()


# Registered after the recorder's own exit hook (imported above), so it runs before it.
atexit.register(_close_at_exit)
