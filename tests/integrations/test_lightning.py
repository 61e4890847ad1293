"""Lightning: a tiny LightningModule really fitted and tested on CPU, its provenance checked in the
SQLite file."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

from torch.utils.data import DataLoader, TensorDataset

import dlprov
from dlprov.capture.task import Task
from dlprov.integrations.lightning import ProvenanceCallback

EPOCHS, BATCH_SIZE = 3, 16
pytestmark = [pytest.mark.filterwarnings("ignore:.*LeafSpec"),
              pytest.mark.filterwarnings("ignore:You defined a `validation_step`")]


def dataset(seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=generator)
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())


def loader(seed: int = 0) -> DataLoader:
    return DataLoader(dataset(seed), batch_size=BATCH_SIZE)


class Classifier(L.LightningModule):
    def __init__(self, learning_rate: float = 0.05, hidden: int = 8,
                 fail_in_epoch: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["fail_in_epoch"])
        self.fail_in_epoch = fail_in_epoch
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 2))

    def _step(self, batch):
        x, y = batch
        logits = self.net(x)
        return (torch.nn.functional.cross_entropy(logits, y),
                (logits.argmax(1) == y).float().mean())

    def training_step(self, batch, batch_idx):
        if self.current_epoch == self.fail_in_epoch:
            raise RuntimeError(f"diverged in epoch {self.current_epoch}")
        loss, accuracy = self._step(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        self.log("train/acc@1", accuracy, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:  # runs after the callbacks' on_train_epoch_end
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def validation_step(self, batch, batch_idx):
        loss, accuracy = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", accuracy)

    def test_step(self, batch, batch_idx):
        loss, accuracy = self._step(batch)
        self.log("test_loss", loss)
        self.log("test_acc", accuracy)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate, momentum=0.9)


class Data(L.LightningDataModule):
    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(dataset(), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(dataset(1), batch_size=self.batch_size)


def trainer(callback, epochs: int = EPOCHS, **options) -> "L.Trainer":
    options = {"num_sanity_val_steps": 0, **options}
    return L.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu",
                     enable_progress_bar=False, logger=False, enable_model_summary=False,
                     enable_checkpointing=False, **options)


@pytest.fixture(autouse=True)
def quiet_lightning():
    logger = logging.getLogger("lightning.pytorch")
    level, logger.level = logger.level, logging.WARNING
    yield
    logger.setLevel(level)


def tasks(sql) -> list[tuple]:
    return sql("SELECT d.tag, t.status, t.error_msg FROM task t "
               "JOIN data_transformation d ON d.id = t.dt_id ORDER BY t.id")


def test_fit_and_test_are_recorded(store_path, sql, tmp_path) -> None:
    callback = ProvenanceCallback("mnist", hyperparameters={"dataset": "synthetic"},
                                  model_dir=tmp_path / "models", capture_environment=False)
    model = Classifier()
    fitter = trainer(callback, num_sanity_val_steps=2)
    fitter.fit(model, loader(), loader(1))
    fitter.test(model, loader(2))

    assert sql("SELECT optimizer_name, learning_rate, momentum, weight_decay, num_epochs, "
               "batch_size, num_layers, hidden, dataset FROM mnist__itrain") == [
        ("sgd", 0.05, 0.9, 0.0, 3.0, 16.0, 2.0, 8.0, "synthetic")]

    rows = sql("SELECT epoch, train_loss, train_acc_1, val_loss, val_acc, lr, elapsed_time "
               "FROM mnist__otrain ORDER BY id")
    assert [r[0] for r in rows] == [0.0, 1.0, 2.0]  # once per epoch, numbered as Lightning does
    for _, *metrics, lr, elapsed in rows:
        assert all(isinstance(m, float) for m in metrics)
        assert lr == pytest.approx(0.05) and isinstance(elapsed, float) and elapsed > 0
    assert rows[-1][1] < rows[0][1]  # it really trained
    assert len({r[3] for r in rows}) == 3  # each epoch its own validation

    path = Path(callback.model_path)
    assert path.parent == tmp_path / "models" and path.suffix == ".ckpt" and path.is_file()
    (train_id, test_id), = sql("SELECT train_task_id, test_task_id FROM mnist__otrainedmodel")
    assert sql("SELECT task_id, name, path, sha256, size_bytes, framework, parameter_count, "
               "layer_count FROM trained_model") == [
        (train_id, "mnist", str(path), hashlib.sha256(path.read_bytes()).hexdigest(),
         path.stat().st_size, "lightning", sum(p.numel() for p in model.parameters()), 2)]

    (tested, loss, accuracy), = sql("SELECT test_task_id, test_loss, test_acc FROM mnist__otest")
    assert tested == test_id != train_id
    metrics = fitter.callback_metrics
    assert (loss, accuracy) == pytest.approx((metrics["test_loss"].item(),
                                              metrics["test_acc"].item()))
    assert tasks(sql) == [("train", "finished", None), ("test", "finished", None)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]  # ended by test


def test_validation_metrics_land_in_the_epochs_that_validated(sql) -> None:
    callback = ProvenanceCallback("mnist", save_model=False, capture_environment=False)
    trainer(callback, epochs=4, check_val_every_n_epoch=2).fit(Classifier(), loader(), loader(1))
    callback.close()
    rows = sql("SELECT epoch, val_loss IS NOT NULL, val_acc IS NOT NULL, train_loss IS NOT NULL "
               "FROM mnist__otrain ORDER BY id")
    assert rows == [(0.0, 0, 0, 1), (1.0, 1, 1, 1), (2.0, 0, 0, 1), (3.0, 1, 1, 1)]
    assert sql("SELECT count(*) FROM trained_model") == [(0,)]


def test_batch_size_from_the_datamodule_and_batches_every_n_steps(sql) -> None:
    callback = ProvenanceCallback("mnist", log_every_n_steps=3, save_model=False,
                                  capture_environment=False)
    trainer(callback, epochs=2).fit(Classifier(), datamodule=Data(batch_size=8))
    callback.close()
    assert sql("SELECT batch_size, num_epochs FROM mnist__itrain") == [(8.0, 2.0)]
    # 8 batches an epoch: batches 0, 3, 6, 9, 12, 15 are kept, with the global step after each
    rows = sql("SELECT epoch, step, loss FROM mnist__otrainbatch ORDER BY id")
    assert [(e, s) for e, s, _ in rows] == [(0.0, 1.0), (0.0, 4.0), (0.0, 7.0),
                                            (1.0, 10.0), (1.0, 13.0), (1.0, 16.0)]
    assert all(0 < loss < 2 for *_, loss in rows)


def test_a_failing_fit_fails_the_task_and_lightning_reraises(sql) -> None:
    callback = ProvenanceCallback("mnist", capture_environment=False)
    with pytest.raises(RuntimeError, match="diverged in epoch 1"):
        trainer(callback).fit(Classifier(fail_in_epoch=1), loader(), loader(1))
    ((transformation, status, error),) = tasks(sql)
    assert (transformation, status) == ("train", "failed")
    assert "RuntimeError: diverged in epoch 1" in error and "Traceback" in error
    assert sql("SELECT status, error_msg FROM dataflow_execution") == [
        ("failed", "diverged in epoch 1")]
    assert sql("SELECT epoch FROM mnist__otrain") == [(0.0,)]  # the epoch that completed
    assert sql("SELECT optimizer_name, batch_size FROM mnist__itrain") == [("sgd", 16.0)]


class FailingValidation(Classifier):
    def validation_step(self, batch, batch_idx):
        raise RuntimeError("bad validation batch")


def test_a_fit_failing_in_the_sanity_check_is_a_failed_train_task(sql) -> None:
    callback = ProvenanceCallback("mnist", capture_environment=False)
    with pytest.raises(RuntimeError, match="bad validation batch"):
        trainer(callback, num_sanity_val_steps=1).fit(FailingValidation(), loader(), loader(1))
    ((transformation, status, error),) = tasks(sql)
    assert (transformation, status) == ("train", "failed") and "bad validation batch" in error
    assert sql("SELECT optimizer_name, num_epochs FROM mnist__itrain") == [("sgd", 3.0)]
    assert sql("SELECT status FROM dataflow_execution") == [("failed",)]


class FailingTest(Classifier):
    def test_step(self, batch, batch_idx):
        raise ValueError("no test data on this machine")


def test_a_failing_test_fails_the_test_task_after_a_finished_training(sql) -> None:
    callback = ProvenanceCallback("mnist", save_model=False, capture_environment=False)
    model, fitter = FailingTest(), trainer(callback, epochs=1)
    fitter.fit(model, loader())
    with pytest.raises(ValueError, match="no test data"):
        fitter.test(model, loader(2), verbose=False)
    (train, test) = tasks(sql)
    assert train == ("train", "finished", None)
    assert test[:2] == ("test", "failed") and "ValueError: no test data" in test[2]
    assert sql("SELECT status FROM dataflow_execution") == [("failed",)]


def test_a_test_on_its_own_is_a_run_of_its_own(sql) -> None:
    callback = ProvenanceCallback("mnist", capture_environment=False)
    trainer(callback).test(Classifier(), loader(2), verbose=False)
    assert tasks(sql) == [("test", "finished", None)]
    assert sql("SELECT count(*) FROM mnist__otest WHERE test_acc IS NOT NULL") == [(1,)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]


def test_a_provenance_failure_never_stops_training(store_path, monkeypatch, caplog,
                                                   tmp_path) -> None:
    def broken(self, set_tag, /, **values):
        raise RuntimeError("recorder exploded")

    monkeypatch.setattr(Task, "output", broken)
    callback = ProvenanceCallback("mnist", log_every_n_steps=1, capture_environment=False)
    model = Classifier()
    fitter = trainer(callback)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        fitter.fit(model, loader(), loader(1))
        fitter.test(model, loader(2))
    assert fitter.current_epoch == EPOCHS and fitter.callback_metrics["test_acc"] >= 0
    assert list((tmp_path / "models").glob("mnist-*.ckpt"))  # the checkpoint was still saved
    warned = [r.getMessage() for r in caplog.records if "recorder exploded" in r.getMessage()]
    assert any("on_train_batch_end" in m for m in warned)
    assert any("_record_epoch" in m for m in warned) and any("on_test_end" in m for m in warned)


def test_a_store_that_cannot_be_written_never_stops_training(tmp_path, caplog) -> None:
    store = tmp_path / "store.db"
    store.mkdir()  # a directory where the SQLite file should be
    callback = ProvenanceCallback("mnist", store=store, model_dir=tmp_path,
                                  capture_environment=False)
    fitter = trainer(callback)
    with caplog.at_level(logging.WARNING):
        fitter.fit(Classifier(), loader(), loader(1))
        callback.close()  # ends the run: waits until its records are written, or spooled
    assert fitter.current_epoch == EPOCHS and Path(callback.model_path).is_file()
    assert any("cannot write provenance" in r.getMessage() for r in caplog.records)


def test_a_fit_inside_a_run_of_yours_and_a_fit_after_another(sql) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("splitdata") as split:
            split.output("otrainset", trainsetx="x.npy")
        callback = ProvenanceCallback(run=run, depends_on=[split])
        trainer(callback, epochs=1).fit(Classifier(), loader())
        model, fitter = Classifier(learning_rate=0.1), trainer(callback, epochs=1)
        fitter.fit(model, loader())
        fitter.test(model, loader(2), verbose=False)
        fitter.test(model, loader(1), verbose=False)  # a second test of the same model
        assert run.status == "running"  # the callback leaves your run open
    assert tasks(sql) == [("splitdata", "finished", None), ("train", "finished", None),
                          ("train", "finished", None), ("test", "finished", None),
                          ("test", "finished", None)]
    assert sql("SELECT u.task_id, u.producer_task_id, d.tag FROM task_usage u JOIN data_set d "
               "ON d.id = u.ds_id WHERE d.tag = 'otrainedmodel' ORDER BY u.task_id") == [
        (4, 3, "otrainedmodel"), (5, 3, "otrainedmodel")]  # both tests used the 2nd model
    assert sql("SELECT learning_rate FROM mnist__itrain ORDER BY id") == [(0.05,), (0.1,)]
    assert sql("SELECT count(DISTINCT exec_id) FROM task") == [(1,)]

    # a callback that starts its runs: a second fit ends the first run and starts another
    callback = ProvenanceCallback("other", save_model=False, capture_environment=False)
    trainer(callback, epochs=1).fit(Classifier(), loader())
    first = callback.capture.run
    trainer(callback, epochs=1).fit(Classifier(), loader())
    assert first.status == "finished" and callback.capture.run.status == "running"
    callback.close()
    assert sql("SELECT status FROM dataflow_execution WHERE df_id = (SELECT id FROM dataflow "
               "WHERE tag = 'other')") == [("finished",), ("finished",)]


def test_configuration_mistakes_are_raised_at_once(store_path) -> None:
    with pytest.raises(ValueError, match="dataflow tag or a run"):
        ProvenanceCallback()
    with pytest.raises(dlprov.NameRejected):
        ProvenanceCallback("not a tag!")
    with pytest.raises(ValueError, match="log_every_n_steps"):
        ProvenanceCallback("mnist", log_every_n_steps=0)
    with pytest.raises(TypeError, match="hyperparameters must be a dict"):
        ProvenanceCallback("mnist", hyperparameters=["lr"])
    with dlprov.run("mnist", capture_environment=False) as run:
        with pytest.raises(TypeError, match="exec_tag, store: options of a new run"):
            ProvenanceCallback(run=run, store="other.db", exec_tag="x")
