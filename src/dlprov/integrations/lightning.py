"""Lightning integration: one callback recording a ``Trainer``'s fit and test.

    trainer = L.Trainer(max_epochs=3, callbacks=[ProvenanceCallback("mnist")])
    trainer.fit(model, datamodule)
    trainer.test(model, datamodule)

What is recorded (through :class:`~dlprov.integrations.torch.TorchCapture`): the hyperparameters
(``itrain``), one ``otrain`` element per epoch with every metric in ``trainer.callback_metrics``
(training and validation) and its elapsed time, optionally one ``otrainbatch`` element per
training batch, the checkpoint saved at the end of fit (``otrainedmodel`` and
``trained_model``), the test metrics (``otest``) of a test task that used that checkpoint.
Epochs are numbered from 0, as Lightning numbers them.

Provenance failures are logged (rate-limited) and never stop training; an exception in ``fit`` or
``test`` fails the task (and the run the callback started) with its traceback, and Lightning
re-raises it. Only the global-zero process records.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the package's old name
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError as exc:
        raise ImportError("dlprov.integrations.lightning needs Lightning: "
                          "pip install 'dlprov[lightning]'") from exc

from dlprov.capture.models import layer_count
from dlprov.capture.run import Run
from dlprov.capture.task import Task
from dlprov.integrations.common import BATCH_SIZE, NUM_EPOCHS, NUM_LAYERS, guarded, merge_names
from dlprov.integrations.torch import (
    TorchCapture,
    check_arguments,
    current_learning_rate,
    derived_hyperparameters,
    optimizer_hyperparameters,
)
from dlprov.store.store import Store

__all__ = ["ProvenanceCallback"]

FIT, TEST = "fit", "test"  # Lightning's TrainerFn values


class ProvenanceCallback(pl.Callback):
    """Record the provenance of ``trainer.fit`` (a train task) and ``trainer.test`` (a test task
    that used the trained model) in a run of ``dataflow_tag``.

    The run is started by ``fit`` and ended by the ``test`` that follows it, by the next
    ``fit``, by :meth:`close` or at interpreter exit; give ``run=`` to record into a run of
    yours instead (left open; ``depends_on``/``uses`` name the tasks and sets the training used;
    each ``test`` is then a test task of the last training).

    ``itrain`` holds ``pl_module.hparams`` and the datamodule's, overridden by what the trainer
    shows: ``optimizer_name``, ``learning_rate``, ``momentum``, ``weight_decay`` (first
    optimizer), ``num_epochs`` (``max_epochs``), ``batch_size`` (the datamodule's, else the
    training data loader's), ``num_layers`` (modules with weights of their own); then by
    ``hyperparameters``; a module's ``lr`` hyperparameter is recorded as ``learning_rate``.
    They are collected when fit starts and recorded, with the train task, when training starts
    (after the sanity check, once the data loader is known); a fit that fails before that is
    still a failed train task. The data of the trainer's training and validation loaders (their
    ``dataset``: tensors, arrays, files; see :mod:`dlprov.integrations.data`) is recorded in
    ``itraindataset`` (labels ``train``, ``val``), so that Q11 answers; the validation data
    when validation first runs if no sanity check loaded it before.

    Each epoch is recorded once its metrics are final: when the next one starts or training
    ends, so that metrics logged in ``LightningModule.on_train_epoch_end`` (which runs after
    callbacks' hooks) are included; validation metrics only in the epochs in which validation
    ran; the epoch's learning rate (the first optimizer's as the epoch started, after an epoch
    scheduler's step) as ``lr``, unless the module logs ``lr`` itself. ``log_every_n_steps``:
    also record every n-th training batch (the scalars ``training_step`` returned) in
    ``otrainbatch``.

    ``save_model``: save a checkpoint with ``trainer.save_checkpoint`` at the end of fit, into
    ``model_dir`` (default ``<default_root_dir>/models``) as ``<model_name>-<id>.ckpt``
    (``model_name`` defaults to the dataflow tag). Other keyword arguments (``exec_tag``,
    ``user``, ``capture_environment``, ...) start the run as :func:`dlprov.run` does.
    """

    def __init__(self, dataflow_tag: str | None = None, *,
                 hyperparameters: Mapping[str, Any] | None = None, run: Run | None = None,
                 store: str | os.PathLike | Store | None = None, save_model: bool = True,
                 model_dir: str | os.PathLike | None = None, model_name: str | None = None,
                 log_every_n_steps: int | None = None, depends_on: Iterable[Task] = (),
                 uses: Iterable[str] | None = None, **run_options: Any) -> None:
        super().__init__()
        options = {**run_options, **({"store": store} if store is not None else {})}
        check_arguments(dataflow_tag, run, options, hyperparameters,
                        log_every_n_steps=log_every_n_steps)
        self.dataflow_tag, self.run = dataflow_tag, run
        self.hyperparameters = dict(hyperparameters or {})
        self.save_model, self.model_dir = save_model, model_dir
        self.model_name = model_name or dataflow_tag or run.df_tag  # type: ignore[union-attr]
        self.log_every_n_steps = log_every_n_steps
        self.depends_on, self.uses = list(depends_on), uses
        self.run_options = options
        self.capture: TorchCapture | None = None
        self.model_path: str | None = None
        self._pending_hyperparameters: dict[str, Any] | None = None
        self._pending_epoch: tuple[int, float, bool, float | None] | None = None
        self._epoch_started = 0.0
        self._epoch_rate: float | None = None
        self._validation_data_recorded = False
        self._batches = 0
        self._before_validation: dict[str, Any] = {}
        self._validation_keys: set[str] = set()
        self._validated_epoch: int | None = None

    # -- fit --------------------------------------------------------------------------------
    @guarded
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.is_global_zero:
            return
        self._new_capture()
        self._validation_keys, self._validated_epoch, self._batches = set(), None, 0
        self._pending_epoch = None
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        datamodule = getattr(trainer, "datamodule", None)
        max_epochs = trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None
        self._pending_hyperparameters = merge_names(
            _hparams(pl_module), _hparams(datamodule),
            derived_hyperparameters({**optimizer_hyperparameters(optimizer),
                                     NUM_EPOCHS: max_epochs,
                                     BATCH_SIZE: _batch_size(datamodule) or _batch_size(pl_module),
                                     NUM_LAYERS: layer_count(pl_module)}),
            self.hyperparameters)

    @guarded
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._start_training(trainer)  # now that the data loader (its batch size) is known

    @guarded
    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._record_epoch(trainer)
        self._epoch_started = time.perf_counter()
        # the rate this epoch trains with: epoch-interval schedulers step after its end
        self._epoch_rate = current_learning_rate(trainer.optimizers[0]) \
            if trainer.optimizers else None

    @guarded
    def on_validation_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._fitting(trainer) and not trainer.sanity_checking:
            self._before_validation = dict(trainer.callback_metrics)
            if not self._validation_data_recorded:  # loaded now: no sanity check ran
                self._validation_data_recorded = True
                self.capture.record_data({"val": trainer.val_dataloaders})  # type: ignore

    @guarded
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._fitting(trainer) or trainer.sanity_checking:
            return
        # Validation leaves the training metrics as they were (the same objects) and puts
        # fresh values under the keys it logs: those are the keys that go stale in an epoch
        # without validation (check_val_every_n_epoch > 1).
        before = self._before_validation
        self._validation_keys |= {key for key, value in trainer.callback_metrics.items()
                                  if before.get(key) is not value}
        self._validated_epoch = trainer.current_epoch

    @guarded
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.log_every_n_steps is None or not self._fitting(trainer):
            return
        count, self._batches = self._batches, self._batches + 1
        if count % self.log_every_n_steps == 0:
            metrics = outputs if isinstance(outputs, Mapping) else {"loss": outputs}
            self.capture.batch(trainer.global_step, trainer.current_epoch,  # type: ignore
                               metrics)

    @guarded
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._fitting(trainer):
            epoch = trainer.current_epoch
            self._pending_epoch = (epoch, time.perf_counter() - self._epoch_started,
                                   self._validated_epoch == epoch, self._epoch_rate)

    @guarded
    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._record_epoch(trainer)

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._record_epoch(trainer)
        self._start_training(trainer)  # if on_train_start was not reached (max_epochs=0)
        if self.save_model:
            self._save_checkpoint(trainer, pl_module)
        self._end_training()

    # -- test -------------------------------------------------------------------------------
    @guarded
    def on_test_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.is_global_zero:
            return
        capture = self.capture
        if capture is None or not capture.open:
            self._new_capture()  # a test on its own, or after a run that ended
        self.capture.end_training()  # type: ignore[union-attr]
        self.capture.start_test()  # type: ignore[union-attr]

    @guarded
    def on_test_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.capture is None or not trainer.is_global_zero:
            return
        self.capture.test(trainer.callback_metrics)
        self.capture.end_test()
        if self.capture.owns_run:
            self.close()

    # -- failure and end --------------------------------------------------------------------
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                     exception: BaseException) -> None:
        if self.capture is None or trainer.state.fn not in (FIT, TEST):
            return
        self._record_epoch(trainer)
        self._start_training(trainer)  # failed before training started: a failed train task
        self.close(exception)

    @guarded
    def close(self, error: BaseException | str | None = None) -> None:
        """End the open tasks (failed with ``error`` if given) and the run, if the callback
        started it; a later ``fit`` or ``test`` starts a new one."""
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.close(error)

    # -- each guarded on its own: one failing leaves the others to run -----------------------
    @guarded
    def _start_training(self, trainer: "pl.Trainer") -> None:
        values, self._pending_hyperparameters = self._pending_hyperparameters, None
        if values is None or self.capture is None:
            return
        if values.get("batch_size") is None:
            values["batch_size"] = _batch_size(trainer.train_dataloader)
        # the loaders as given (a dict or list of them too), never iterated
        self._validation_data_recorded = trainer.val_dataloaders is not None
        self.capture.start_training(values, {"train": trainer.train_dataloader,
                                             "val": trainer.val_dataloaders})

    @guarded
    def _record_epoch(self, trainer: "pl.Trainer") -> None:
        pending, self._pending_epoch = self._pending_epoch, None
        if pending is None or self.capture is None:
            return
        epoch, elapsed, validated, rate = pending
        metrics = dict(trainer.callback_metrics)
        if not validated:
            for key in self._validation_keys:
                metrics.pop(key, None)
        self.capture.epoch(epoch, metrics, elapsed, rate)

    @guarded
    def _save_checkpoint(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # Every process takes part (saving is collective); rank zero names the file.
        key = trainer.strategy.broadcast(uuid.uuid4().hex[:8])
        directory = Path(self.model_dir or Path(trainer.default_root_dir) / "models")
        path = directory / f"{self.model_name}-{key}.ckpt"
        trainer.save_checkpoint(path)
        if self.capture is not None and trainer.is_global_zero:
            self.capture.trained_model(path, pl_module, framework="lightning",
                                       name=self.model_name)
            self.model_path = str(path)

    @guarded
    def _end_training(self) -> None:
        if self.capture is not None:
            self.capture.end_training()

    def _new_capture(self) -> None:
        self.close()
        self.capture = TorchCapture(self.dataflow_tag, run=self.run, depends_on=self.depends_on,
                                    uses=self.uses, **self.run_options)

    def _fitting(self, trainer: "pl.Trainer") -> bool:
        return self.capture is not None and trainer.state.fn == FIT

    def __repr__(self) -> str:
        return f"<dlprov ProvenanceCallback {self.model_name!r}>"


def _hparams(owner: Any) -> dict[str, Any]:
    """The ``hparams`` a LightningModule or LightningDataModule saved (save_hyperparameters)."""
    found = getattr(owner, "hparams", None)
    return dict(found) if isinstance(found, Mapping) else {}


def _batch_size(owner: Any) -> int | None:
    """The batch size of a data loader (its sampler's), or one a (data) module keeps."""
    for holder in (owner, getattr(owner, "batch_sampler", None), getattr(owner, "hparams", None)):
        size = getattr(holder, "batch_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return None
