"""``MLFLOW_TRACKING_URI=dlprov:///…``: unchanged MLflow code (its fluent API, scikit-learn and
Lightning autolog) captured into dlprov through the tracking-store plugin, then the paper's
questions, MLflow's own reads (search_runs filters and order), and a store that is away."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
np = pytest.importorskip("numpy")

import dlprov.query as q  # noqa: E402
from dlprov.integrations.mlflow.plugin import store_url, tracking_store  # noqa: E402
from dlprov.query.sql import sql  # noqa: E402


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MLflow pointed at a fresh dlprov store; (tracking URI, store path)."""
    store = tmp_path / "dlprov.db"
    uri = f"dlprov://{store}"
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")  # no pip freeze per model
    mlflow.set_tracking_uri(uri)
    yield uri, store
    while mlflow.active_run():
        mlflow.end_run()
    # each flavour's own autolog stays on after mlflow.autolog(disable=True): turn it off, or
    # later tests' fits log models of their own
    for flavour in ("sklearn", "pytorch"):
        getattr(mlflow, flavour).autolog(disable=True)
    mlflow.autolog(disable=True)
    mlflow.set_tracking_uri(None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


def _flush(store: Path) -> None:
    from dlprov.recorder.recorder import close_all
    close_all()


def test_uris_name_dlprov_stores() -> None:
    assert store_url("dlprov:///tmp/a/dlprov.db") == "/tmp/a/dlprov.db"
    assert store_url("dlprov:runs.db") == "runs.db"
    assert store_url("dlprov+postgresql://u@h/db") == "postgresql://u@h/db"
    assert store_url("dlprov+http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="names no store"):
        store_url("dlprov://")


def test_sklearn_autolog_answers_q1_q4_q7_q11(tracking) -> None:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import GradientBoostingClassifier
    uri, store = tracking
    mlflow.set_experiment("boosting")
    mlflow.sklearn.autolog(serialization_format="cloudpickle")
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    for lr, accuracy in ((0.1, 0.8), (0.5, 0.9)):
        with mlflow.start_run():
            GradientBoostingClassifier(n_estimators=3, learning_rate=lr).fit(x, y)
            mlflow.log_metric("test_accuracy", accuracy)
    _flush(store)
    found = q.q1(0.5, store=store).records()
    assert len(found) == 1 and found[0]["model_id"].startswith("m-")
    model = found[0]["model_id"]
    assert q.q4(store=store).records()[0]["learning_rate"] == 0.5
    hyper = q.q7(model, store=store).records()[0]
    assert hyper["learning_rate"] == 0.5 and hyper["n_estimators"] == 3
    data = q.q11(model, store=store).records()
    assert [d["set_tag"] for d in data] == ["itraindataset"]
    stored = sql("SELECT size_bytes, sha256 FROM trained_model", store=store).records()
    assert len(stored) == 2 and all(r["sha256"] and r["size_bytes"] > 0 for r in stored)
    # MLflow's own reads, answered from dlprov's store by a fresh store object
    reader = tracking_store(uri)
    runs = reader.search_runs(["boosting"], "params.learning_rate = '0.5'", 1)
    assert len(runs) == 1 and runs[0].data.metrics["test_accuracy"] == 0.9
    assert runs[0].data.params["n_estimators"] == "3"
    assert runs[0].inputs.dataset_inputs[0].dataset.digest  # the data it was fitted on
    assert {x.experiment_id for x in reader._search_datasets(["boosting"])} == {"boosting"}
    models = reader.search_logged_models(["boosting"])
    assert {x.model_id for x in models} == {r["model_id"] for r in sql(
        "SELECT model_id FROM trained_model", store=store).records()}
    assert reader.get_logged_model(model).source_run_id == runs[0].info.run_id


def test_lightning_autolog_answers_q1_q4_q7(tracking) -> None:
    torch = pytest.importorskip("torch")
    lightning = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset
    _, store = tracking

    class Tiny(lightning.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, on_epoch=True)
            return loss

        def test_step(self, batch, _):
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(16, 2), torch.randn(16, 1)), batch_size=8)
    mlflow.set_experiment("tiny")
    mlflow.pytorch.autolog(checkpoint=False)
    for lr in (0.1, 0.01):
        trainer = lightning.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                                    enable_progress_bar=False, enable_model_summary=False)
        with mlflow.start_run():
            module = Tiny(lr)
            trainer.fit(module, data)
            trainer.test(module, data, verbose=False)
    _flush(store)
    found = q.q1(0.01, store=store).records()
    assert len(found) == 1
    assert q.q7(found[0]["model_id"], store=store).records()[0]["optimizer_name"] == "SGD"
    best = q.q4(metric="test_loss", mode="min", store=store).records()
    assert len(best) == 1 and best[0]["learning_rate"] in (0.1, 0.01)
    epochs = sql("SELECT COUNT(*) AS n FROM otrain WHERE train_loss_epoch IS NOT NULL",
                 store=store).records()
    assert epochs == [{"n": 4}]  # two epochs of each run


def test_search_runs_filters_and_orders(tracking) -> None:
    uri, store = tracking
    mlflow.set_experiment("grid")
    for i, (lr, opt) in enumerate(((0.1, "sgd"), (0.01, "adam"), (0.001, "adam"))):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_params({"learning_rate": lr, "optimizer": opt})
            mlflow.set_tag("team", "vision" if i else "nlp")
            mlflow.set_tag("scratch", "x")
            mlflow.delete_tag("scratch")
            for step in range(3):
                mlflow.log_metric("loss", lr * 10 + 1 / (step + 1), step=step)
    client = mlflow.MlflowClient()
    live = client.search_runs(["grid"], "params.optimizer = 'adam'", order_by=["metrics.loss"])
    assert [r.info.run_name for r in live] == ["r2", "r1"]
    _flush(store)
    reader = tracking_store(uri)  # another process's view: everything from the store
    adam = reader.search_runs(["grid"], "params.optimizer = 'adam' and tags.team = 'vision'",
                              1, order_by=["metrics.loss DESC"])
    assert [r.info.run_name for r in adam] == ["r1", "r2"]
    low = reader.search_runs(["grid"], "metrics.loss < 0.4", 1)
    assert {r.info.run_name for r in low} == {"r2"}
    first = reader.search_runs(["grid"], "", 1, max_results=2, order_by=["params.learning_rate"])
    assert len(first) == 2 and first.token
    history = reader.get_metric_history(adam[0].info.run_id, "loss")
    assert [p.step for p in history] == [0, 1, 2]
    assert history[0].value == pytest.approx(1.1)
    assert "scratch" not in adam[0].data.tags and adam[0].data.tags["team"] == "vision"
    assert reader.get_experiment_by_name("grid").experiment_id == "grid"
    assert "grid" in [e.name for e in reader.search_experiments()]


def test_methods_dlprov_lacks_say_so(tracking) -> None:
    uri, _ = tracking
    store = tracking_store(uri)
    with pytest.raises(NotImplementedError, match="delete_run"):
        store.delete_run("x")
    with pytest.raises(NotImplementedError, match="search_datasets"):
        store.search_datasets(["0"])
    from mlflow.entities import Metric
    assert store.log_batch("no-such-run", [Metric("loss", 1.0, 0, 0)], [], []) is None


def test_a_run_logged_while_the_store_is_away_is_spooled_then_written(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    path = tmp_path / "dlprov.db"
    path.mkdir()  # a folder where the database should be: every write fails (even as root)
    store = tracking_store(f"dlprov://{path}")
    experiment = store.create_experiment("offline")
    run = store.create_run(experiment, "me", None, [], "away")
    from mlflow.entities import Metric, Param
    store.log_batch(run.info.run_id, [Metric("loss", 1 / (s + 1), 0, s) for s in range(5)],
                    [Param("learning_rate", "0.01")], [])
    store.update_run_info(run.info.run_id, "FINISHED", None, None)  # never raises
    from dlprov.recorder.recorder import recorder_for
    recorder = recorder_for(store.store)
    assert recorder.flush(wait=True)
    assert recorder.written == 0 and recorder.spool
    assert any("cannot write provenance" in r.getMessage() for r in caplog.records)
    path.rmdir()  # the store is back
    assert recorder.flush(wait=True)
    assert not recorder.spool
    rows = sql("SELECT step, loss FROM otrain ORDER BY step", store=path).records()
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert sql("SELECT learning_rate FROM itrain", store=path).records() == [
        {"learning_rate": 0.01}]
    assert sql("SELECT status FROM dataflow_execution", store=path).records() == [
        {"status": "finished"}]
