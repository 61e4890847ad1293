"""A provenance failure in a framework hook is logged every time it happens, rate-limited with
counts, and never raised into training; so is every other recurring warning of the
integrations (:class:`~dlprov.integrations.throttle.Throttle`)."""
from __future__ import annotations

import logging
import threading
import time

import pytest

torch = pytest.importorskip("torch")

import dlprov
from dlprov.integrations.common import guarded
from dlprov.integrations.throttle import Throttle
from dlprov.integrations.torch import track_training
from tests.integrations.logs import told

log = logging.getLogger("dlprov.integrations")


def messages(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def ended_run():
    """A real run that has ended: recording a task into it fails, as a misused run would."""
    run = dlprov.run("mnist", capture_environment=False)
    run.end()
    return run


@pytest.mark.parametrize("interval, logged", [(0, 5), (3600, 2)])
def test_a_failing_hook_is_told_every_time(store_path, caplog, fresh_throttle, interval,
                                           logged) -> None:
    fresh_throttle.interval = interval
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        with track_training(run=ended_run()) as training:
            for epoch in range(5):
                training.epoch_end(epoch, loss=1.0 / (epoch + 1))  # never raises
    failed = messages(caplog, "TrainingLog._record_epoch failed, training goes on")
    assert len(failed) == logged and told(failed) == 5
    assert all("ended" in m for m in failed)


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_a_failing_lightning_hook_is_told_every_epoch(store_path, tmp_path, caplog,
                                                      fresh_throttle) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from dlprov.integrations.lightning import ProvenanceCallback

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    fresh_throttle.interval = 0
    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    trainer = L.Trainer(max_epochs=3, callbacks=[ProvenanceCallback(run=ended_run())],
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        trainer.fit(Module(), data)
    assert trainer.current_epoch == 3  # training went on
    assert told(messages(caplog, "ProvenanceCallback._record_epoch failed")) == 3


def test_guarded_returns_none_and_counts_each_error_type_apart(caplog, fresh_throttle) -> None:
    fresh_throttle.interval = 3600

    class Hooks:
        @guarded
        def on_epoch_end(self, epoch: int, *, kind: type[Exception]) -> str:
            raise kind(f"epoch {epoch}")

    hooks = Hooks()
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        for epoch in range(6):
            assert hooks.on_epoch_end(epoch, kind=ValueError if epoch % 2 else OSError) is None
        fresh_throttle.flush()
    value_errors = messages(caplog, "failed, training goes on: ValueError")
    os_errors = messages(caplog, "failed, training goes on: OSError")
    assert told(value_errors) == 3 and told(os_errors) == 3
    assert value_errors[0].endswith("ValueError: epoch 1")  # the first in full
    assert "epoch 5" in value_errors[-1]  # the count comes with the latest


def test_a_throttle_tells_again_after_its_interval_with_the_count(caplog) -> None:
    throttle = Throttle(log, interval=0.2)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        assert throttle.warn("k", "dlprov: thing %d", 1)
        assert not throttle.warn("k", "dlprov: thing %d", 2)
        assert not throttle.warn("k", "dlprov: thing %d", 3)
        assert throttle.warn("other", "dlprov: other")  # each kind has its own rate
        time.sleep(0.25)
        assert throttle.warn("k", "dlprov: thing %d", 4)
        assert throttle.flush() == 0
    assert [r.getMessage() for r in caplog.records] == [
        "dlprov: thing 1", "dlprov: other",
        "dlprov: thing 4 [and 2 more like it since the last such message]"]


def test_a_throttle_shared_by_threads_loses_no_count(caplog) -> None:
    throttle = Throttle(log, interval=3600)

    def warn() -> None:
        for i in range(500):
            throttle.warn(("left out", "otrain", "metric", "x"), "dlprov: x left out (%d)", i)

    threads = [threading.Thread(target=warn) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert throttle.flush() == 8 * 500 - 1
    assert told(messages(caplog, "x left out")) == 8 * 500
