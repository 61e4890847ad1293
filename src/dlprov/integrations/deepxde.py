"""DeepXDE (physics-informed neural networks): :class:`ProvenanceCallback` records a PINN's
training as the DLProv paper's PINNProv callback does (Listing 3).

- ``itrain`` (once per ``model.train``): optimizer, learning rate, iterations (``num_epochs``),
  the network's layer sizes, ``num_layers`` and activation, the collocation points, and one
  ``weight_<name>`` per loss term (the paper's WEIGHT_LR, WEIGHT_LB, WEIGHT_LD).
- ``otrain`` (each time DeepXDE evaluates the losses, i.e. every ``display_every`` iterations and
  at the last): ``epoch`` (the iteration), ``loss`` and ``loss_<name>`` per term on the training
  points, ``test_loss`` and ``test_loss_<name>`` on the test points, the test metrics (e.g.
  ``l2_relative_error``), ``elapsed_time`` since the previous row and a ``timestamp``.
- at the end: the model saved with ``model.save`` (``otrainedmodel`` and ``trained_model``, with
  the file's sha256) and the final test losses and metrics in ``otest``.

Loss terms are recorded as DeepXDE reports them: multiplied by their loss weights.
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

try:
    import deepxde  # noqa: F401 - first, so that a missing DeepXDE is told apart
    import numpy as np
    from deepxde.callbacks import Callback
except ModuleNotFoundError as exc:
    if exc.name not in ("deepxde", "numpy"):
        raise
    raise ImportError("dlprov.integrations.deepxde needs DeepXDE: pip install 'dlprov[deepxde]' "
                      "(and set DDE_BACKEND, e.g. to pytorch)") from exc

from dlprov.capture.run import Run
from dlprov.capture.task import Task
from dlprov.integrations.common import (
    BATCH_SIZE,
    LEARNING_RATE,
    NUM_EPOCHS,
    NUM_LAYERS,
    OPTIMIZER_NAME,
    TrainingCapture,
    attribute_name,
    guarded,
    merge_names,
)
from dlprov.model.names import check_name
from dlprov.store.store import Store

log = logging.getLogger("dlprov.integrations")

__all__ = ["ProvenanceCallback"]


class ProvenanceCallback(Callback):
    """Record the provenance of ``model.train(..., callbacks=[ProvenanceCallback("pinn")])``.

    Each ``model.train`` call is one train task (and one test task): in a run of
    ``dataflow_tag`` started and ended by that call, or in ``run`` when given (then the run is
    left open, and ``depends_on``/``uses`` say which of its tasks' sets the training used).

    ``loss_names`` name DeepXDE's loss terms in order (PDE residuals, then boundary and initial
    conditions): ``["pde", "bc"]`` gives ``loss_pde``, ``loss_bc`` and ``weight_pde``,
    ``weight_bc``; by default ``loss_0``, ``loss_1``, ... ``loss_weights`` (a list, or a mapping
    from name to weight that also names the terms) default to those given to ``model.compile``.
    ``metric_names`` name the test metrics (default: the metric functions' names).
    ``hyperparameters`` are added to (and override) the recorded ``itrain`` values.

    ``every``: record a loss evaluation only when it is at least this many iterations after
    the last one recorded (the last evaluation is always recorded); by default every evaluation,
    which DeepXDE makes every ``display_every`` iterations. ``save_model``: save the model with
    ``model.save`` into ``model_dir`` (default: the working directory) under ``model_name``
    (default ``<dataflow>-<run key>``; DeepXDE appends ``-<iteration>.pt``).

    Other keyword arguments (``exec_tag``, ``user``, ``capture_environment``, ...) start the run
    as :func:`dlprov.run` does. Provenance failures are logged and never stop training.
    """

    def __init__(self, dataflow_tag: str | None = None, *,
                 hyperparameters: Mapping[str, Any] | None = None,
                 loss_names: Sequence[str] | None = None,
                 loss_weights: Sequence[float] | Mapping[str, float] | None = None,
                 metric_names: Sequence[str] | None = None,
                 run: Run | None = None, store: str | os.PathLike | Store | None = None,
                 save_model: bool = True, model_dir: str | os.PathLike | None = None,
                 model_name: str | None = None, every: int | None = None,
                 depends_on: Iterable[Task] = (), uses: Iterable[str] | None = None,
                 **run_options: Any) -> None:
        super().__init__()
        if run is None and dataflow_tag is None:
            raise ValueError("give a dataflow tag or a run")
        if dataflow_tag is not None:
            check_name("dataflow", dataflow_tag)
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                                  or every < 1):
            raise ValueError(f"every must be a positive number of iterations, got {every!r}")
        if isinstance(loss_weights, Mapping):
            loss_names = list(loss_weights) if loss_names is None else loss_names
            loss_weights = list(loss_weights.values())
        self.dataflow_tag, self.run, self.every = dataflow_tag, run, every
        self.hyperparameters = dict(hyperparameters or {})
        self.loss_names = None if loss_names is None else [_term(n) for n in loss_names]
        self.loss_weights = None if loss_weights is None else list(loss_weights)
        self.metric_names = None if metric_names is None else list(metric_names)
        self.save_model, self.model_dir, self.model_name = save_model, model_dir, model_name
        self.depends_on, self.uses = list(depends_on), uses
        self.run_options = {**run_options, **({"store": store} if store is not None else {})}
        self.capture: TrainingCapture | None = None
        self.model_path: str | None = None
        self._names: list[str] = []
        self._last_step: int | None = None
        self._clock = 0.0

    # -- DeepXDE's hooks --------------------------------------------------------------------
    @guarded
    def on_train_begin(self) -> None:
        """Start the train task, record ``itrain`` and the losses before the first step."""
        if self.capture is not None:  # the last model.train raised: DeepXDE called no hook
            self._close("training stopped before it ended (model.train raised)")
        self.capture, self._last_step, self.model_path = None, None, None
        self.capture = TrainingCapture(self.dataflow_tag, run=self.run,
                                       depends_on=self.depends_on, uses=self.uses,
                                       **self.run_options)
        state = self.model.train_state
        self._names = _term_names(self.loss_names, np.size(state.loss_train))
        self.capture.start_training(self._hyperparameters())
        self._clock = time.perf_counter()
        self._record(elapsed_time=0.0)

    @guarded
    def on_epoch_end(self) -> None:
        """Called after every iteration: record only when DeepXDE has just evaluated the
        losses (its loss history ends at this step)."""
        if self.capture is None or not self._unrecorded_evaluation():
            return
        if self.every is not None and self._last_step is not None \
                and self.model.train_state.step - self._last_step < self.every:
            return
        self._record()

    def on_train_end(self) -> None:
        """Record the last evaluation, save and record the model, record ``otest``, end."""
        if self.capture is None:
            return
        self._record_last()
        if self.save_model:
            self._save_model()
        self._record_test()
        self._close()

    # -- each guarded on its own, so that one failing leaves the others to run -------------
    @guarded
    def _record_last(self) -> None:
        if self._unrecorded_evaluation():
            self._record()

    @guarded
    def _save_model(self) -> None:
        capture = self.capture
        directory = os.path.abspath(os.fspath(self.model_dir or os.getcwd()))
        os.makedirs(directory, exist_ok=True)
        name = self.model_name or f"{capture.run.df_tag}-{capture.run.key[:8]}"
        self.model_path = self.model.save(os.path.join(directory, name))
        capture.trained_model(self.model_path, self.model, framework="deepxde")

    @guarded
    def _record_test(self) -> None:
        state = self.model.train_state
        values = {**self._losses("test_", state.loss_test), **self._metrics(state.metrics_test)}
        if values:
            self.capture.test(values)

    @guarded
    def _close(self, error: str | None = None) -> None:
        capture, self.capture = self.capture, None
        capture.close(error)

    # -- values -----------------------------------------------------------------------------
    def _unrecorded_evaluation(self) -> bool:
        """Whether DeepXDE evaluated the losses at this step (its loss history ends here) and
        they are not recorded yet."""
        step, steps = self.model.train_state.step, self.model.losshistory.steps
        return bool(steps) and steps[-1] == step and step != self._last_step

    def _record(self, elapsed_time: float | None = None) -> None:
        state, now = self.model.train_state, time.perf_counter()
        if elapsed_time is None:
            elapsed_time = now - self._clock
        self._clock, self._last_step = now, state.step
        self.capture.epoch(int(state.step), {
            **self._losses("", state.loss_train), **self._losses("test_", state.loss_test),
            **self._metrics(state.metrics_test)}, elapsed_time)

    def _losses(self, prefix: str, losses: Any) -> dict[str, float]:
        if losses is None:
            return {}
        losses = np.ravel(np.asarray(losses, dtype=float))
        values = {f"{prefix}loss": float(losses.sum())}
        values.update({f"{prefix}loss_{name}": float(value)
                       for name, value in zip(self._names, losses)})
        return values

    def _metrics(self, metrics: Sequence[Any] | None) -> dict[str, Any]:
        if not metrics:
            return {}
        names = self.metric_names or _metric_names(getattr(self.model, "metrics", None) or [],
                                                   len(metrics))
        names = [*names, *(f"metric_{i}" for i in range(len(names), len(metrics)))]
        return dict(zip(names, metrics))

    def _hyperparameters(self) -> dict[str, Any]:
        model = self.model
        train = _train_arguments(model)
        iterations = train.get("iterations")
        if iterations is None and model.opt_name in ("L-BFGS", "L-BFGS-B"):
            from deepxde.optimizers import LBFGS_options
            iterations = LBFGS_options.get("maxiter")
        values: dict[str, Any] = {
            OPTIMIZER_NAME: model.opt_name if isinstance(model.opt_name, str)
            else type(model.opt_name).__name__,
            LEARNING_RATE: _learning_rate(model), NUM_EPOCHS: iterations,
            BATCH_SIZE: model.batch_size, "display_every": train.get("display_every"),
            "lr_scheduler": _name(getattr(model, "lr_scheduler", None)),
            **_network(model.net), **_points(model.data)}
        weights = self.loss_weights if self.loss_weights is not None else model.loss_weights
        if weights is not None:
            if len(weights) != len(self._names):
                log.warning("dlprov: %d loss weights for %d loss terms", len(weights),
                            len(self._names))
            values.update({f"weight_{name}": _number(weight)
                           for name, weight in zip(self._names, weights)})
        return merge_names(values, self.hyperparameters)  # yours replace ours, in any case


# -- reading what DeepXDE does not keep in one place ------------------------------------------
def _train_arguments(model: Any) -> dict[str, Any]:
    """``iterations`` and ``display_every`` as given to ``Model.train``: DeepXDE keeps neither
    on the model, so they are read from that call's frame on the stack (empty if not found)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code.co_name == "train" and frame.f_locals.get("self") is model:
                return {k: frame.f_locals.get(k) for k in ("iterations", "display_every")}
            frame = frame.f_back
    finally:
        del frame
    return {}


def _learning_rate(model: Any) -> float | None:
    opt = getattr(model, "opt", None)
    groups = getattr(opt, "param_groups", None)  # PyTorch; tf.compat.v1 keeps no optimizer
    if groups:
        return _number(groups[0].get("lr"))
    return _number(getattr(opt, "learning_rate", None))


def _network(net: Any) -> dict[str, Any]:
    """Layer sizes, ``num_layers`` (layers with weights), activation and initializer, where the
    network keeps them (PyTorch's FNN keeps only its Linear layers)."""
    sizes = getattr(net, "layer_size", None) or getattr(net, "layer_sizes", None)
    linears = getattr(net, "linears", None)
    if sizes is None and linears and hasattr(linears[0], "in_features"):
        sizes = [linears[0].in_features, *(layer.out_features for layer in linears)]
    values: dict[str, Any] = {"network": type(net).__name__}
    if sizes:
        values.update(layer_sizes=list(sizes), **{NUM_LAYERS: len(sizes) - 1})
    activation = getattr(net, "activation", None)
    if isinstance(activation, (list, tuple)):
        values["activation"] = ",".join(str(_name(a)) for a in activation)
    else:
        values["activation"] = _name(activation)
    initializer = getattr(net, "kernel_initializer", None) or getattr(net, "initializer", None)
    values["initializer"] = _name(initializer)
    return values


def _points(data: Any) -> dict[str, Any]:
    """The training and test points of a ``dde.data.PDE``/``TimePDE`` problem."""
    found = {}
    for name in ("num_domain", "num_boundary", "num_initial", "num_test"):
        value = getattr(data, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            found[name] = int(value)
    return found


def _term(name: str) -> str:
    """A loss term's name without a ``loss_`` prefix: ``loss_pde`` and ``pde`` both give
    ``pde`` (recorded as ``loss_pde`` and ``weight_pde``)."""
    cleaned = attribute_name(name)
    return cleaned[5:] if cleaned.startswith("loss_") and len(cleaned) > 5 else cleaned


def _term_names(given: list[str] | None, count: int) -> list[str]:
    names = list(given or [])
    if given is not None and len(names) != count:
        log.warning("dlprov: %d loss names %s for %d loss terms", len(names), names, count)
    return [*names[:count], *(str(i) for i in range(len(names), count))]


def _metric_names(functions: Sequence[Callable], count: int) -> list[str]:
    """A metric's function name; with several outputs DeepXDE gives each metric per output."""
    base = [_name(f) or f"metric_{i}" for i, f in enumerate(functions)]
    if not base or count % len(base) or count == len(base):
        return base
    per_output = count // len(base)
    return [f"{name}_{i}" for name in base for i in range(per_output)]


def _name(thing: Any) -> str | None:
    if thing is None or isinstance(thing, str):
        return thing
    name = getattr(thing, "__name__", None) or type(thing).__name__
    return None if name == "<lambda>" else name


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
