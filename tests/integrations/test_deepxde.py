"""DeepXDE: a tiny PINN really trained on CPU, its provenance checked in the SQLite file."""
from __future__ import annotations

import os

os.environ["DDE_BACKEND"] = "pytorch"

import hashlib
import importlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

dde = pytest.importorskip("deepxde")
torch = pytest.importorskip("torch")

import dlprov
from dlprov.integrations.common import TrainingCapture
from dlprov.integrations.deepxde import ProvenanceCallback

ITERATIONS, DISPLAY_EVERY = 200, 50


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks train several times faster on one thread, the more so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def poisson_model(loss_weights=(1.0, 10.0)) -> dde.Model:
    """-u'' = pi^2 sin(pi x) on [-1, 1], u(-1) = u(1) = 0; exact solution sin(pi x)."""
    dde.config.set_random_seed(0)

    def pde(x, u):
        return -dde.grad.hessian(u, x) - np.pi ** 2 * dde.backend.torch.sin(np.pi * x)

    geometry = dde.geometry.Interval(-1, 1)
    bc = dde.icbc.DirichletBC(geometry, lambda x: 0, lambda x, on_boundary: on_boundary)
    data = dde.data.PDE(geometry, pde, bc, num_domain=16, num_boundary=2,
                        solution=lambda x: np.sin(np.pi * x), num_test=50)
    model = dde.Model(data, dde.nn.FNN([1, 16, 16, 1], "tanh", "Glorot uniform"))
    model.compile("adam", lr=1e-3, metrics=["l2 relative error"],
                  loss_weights=None if loss_weights is None else list(loss_weights), verbose=0)
    return model


def train(model, callback, iterations=ITERATIONS, display_every=DISPLAY_EVERY):
    return model.train(iterations=iterations, display_every=display_every,
                       callbacks=[callback], verbose=0)


def test_training_is_recorded(store_path, sql, tmp_path):
    model = poisson_model()
    callback = ProvenanceCallback("pinn", loss_names=["pde", "bc"], model_dir=tmp_path / "models",
                                  hyperparameters={"problem": "poisson-1d"},
                                  capture_environment=False)
    history, state = train(model, callback)

    assert sql("SELECT optimizer_name, learning_rate, num_epochs, display_every, num_layers, "
               "activation, network, num_domain, num_boundary, num_test, weight_pde, weight_bc, "
               "problem FROM pinn__itrain") == [
        ("adam", 0.001, 200.0, 50.0, 3.0, "tanh", "FNN", 16.0, 2.0, 50.0, 1.0, 10.0,
         "poisson-1d")]
    [(layer_sizes,)] = sql("SELECT layer_sizes FROM pinn__itrain")
    assert json.loads(layer_sizes) == [1, 16, 16, 1]

    # one otrain row per loss evaluation, matching DeepXDE's own loss history
    rows = sql("SELECT epoch, loss, loss_pde, loss_bc, test_loss, test_loss_pde, test_loss_bc, "
               "l2_relative_error, typeof(elapsed_time), elapsed_time, timestamp "
               "FROM pinn__otrain ORDER BY id")
    assert [row[0] for row in rows] == [0.0, 50.0, 100.0, 150.0, 200.0] == history.steps
    for row, train_loss, test_loss, metrics in zip(rows, history.loss_train,
                                                   history.loss_test, history.metrics_test):
        assert row[2:4] == pytest.approx(list(train_loss), rel=1e-6)
        assert row[1] == pytest.approx(row[2] + row[3])
        assert row[5:7] == pytest.approx(list(test_loss), rel=1e-6)
        assert row[4] == pytest.approx(row[5] + row[6])
        assert row[7] == pytest.approx(float(metrics[0]), rel=1e-6)
        assert row[8] == "real" and row[9] >= 0 and row[10]
    assert rows[-1][1] < rows[0][1]  # it did learn

    # the final errors, by a test task that used the trained model
    [(l2_error, test_loss, test_task)] = sql("SELECT l2_relative_error, test_loss, test_task_id "
                                             "FROM pinn__otest")
    assert l2_error == pytest.approx(float(state.metrics_test[0]), rel=1e-6)
    assert test_loss == pytest.approx(float(np.sum(state.loss_test)), rel=1e-6)
    assert sql("SELECT test_task_id FROM pinn__otrainedmodel") == [(test_task,)]

    # the saved model, with the digest of the file that is there
    path = Path(callback.model_path)
    assert path.parent == tmp_path / "models" and path.name.endswith("-200.pt")
    assert sql("SELECT model_dir FROM pinn__otrainedmodel") == [(str(path),)]
    assert sql("SELECT path, sha256, size_bytes, framework, parameter_count, layer_count "
               "FROM trained_model") == [
        (str(path), hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size,
         "deepxde", 16 + 16 + 16 * 16 + 16 + 16 + 1, 3)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
    assert sql("SELECT dt.tag, t.status FROM task t JOIN data_transformation dt "
               "ON dt.id = t.dt_id ORDER BY t.id") == [
        ("train", "finished"), ("test", "finished")]


def test_default_names_and_every(store_path, sql):
    model = poisson_model(loss_weights=(2.0, 5.0))
    callback = ProvenanceCallback("pinn", every=60, save_model=False, capture_environment=False)
    history, _ = train(model, callback, iterations=130, display_every=20)

    assert sql("SELECT weight_0, weight_1 FROM pinn__itrain") == [(2.0, 5.0)]
    # evaluations at 0, 20, ..., 120, 130: at least 60 iterations apart, and the last one
    rows = sql("SELECT epoch, loss_0, loss_1 FROM pinn__otrain ORDER BY id")
    assert [row[0] for row in rows] == [0.0, 60.0, 120.0, 130.0]
    assert rows[-1][1:] == pytest.approx(list(history.loss_train[-1]), rel=1e-6)
    assert sql("SELECT count(*) FROM trained_model") == [(0,)]


def test_named_loss_weights_like_the_paper(store_path, sql):
    model = poisson_model(loss_weights=None)
    callback = ProvenanceCallback("pinn", loss_weights={"LR": 1.0, "LB": 10.0},
                                  save_model=False, capture_environment=False)
    train(model, callback, iterations=20, display_every=10)
    assert sql("SELECT weight_lr, weight_lb FROM pinn__itrain") == [(1.0, 10.0)]
    assert [r[0] for r in sql("SELECT epoch FROM pinn__otrain WHERE loss_lr > 0 AND loss_lb >= 0"
                              " ORDER BY id")] == [0.0, 10.0, 20.0]


def test_adam_then_lbfgs_in_a_given_run(store_path, sql, tmp_path, monkeypatch):
    monkeypatch.setitem(dde.optimizers.LBFGS_options, "maxiter", 30)
    monkeypatch.setitem(dde.optimizers.LBFGS_options, "iter_per_step", 10)
    model = poisson_model()
    with dlprov.run("pinn", capture_environment=False) as run:
        with run.task("sample") as sample:
            sample.output("opoints", num_domain=16, num_boundary=2)
        callback = ProvenanceCallback(run=run, depends_on=[sample], model_dir=tmp_path)
        train(model, callback, iterations=40, display_every=20)
        model.compile("L-BFGS", metrics=["l2 relative error"], verbose=0)
        history, _ = model.train(callbacks=[callback], verbose=0)
        assert sql("SELECT status FROM dataflow_execution") == [("running",)]  # left to us

    # each model.train is a train task of the run: its own itrain, otrain rows and model
    assert sql("SELECT optimizer_name, learning_rate, num_epochs FROM pinn__itrain "
               "ORDER BY id") == [("adam", 0.001, 40.0), ("L-BFGS", 1.0, 30.0)]
    assert [epoch for (epoch,) in sql("SELECT epoch FROM pinn__otrain ORDER BY id")] == \
        history.steps  # 0, 20, 40 for Adam, then 40 and each L-BFGS step
    assert sql("SELECT count(*) FROM pinn__otest") == [(2,)]
    assert sql("SELECT count(*) FROM trained_model") == [(2,)]
    assert sql("SELECT count(DISTINCT train_task_id) FROM pinn__otrain") == [(2,)]
    assert sql("SELECT count(*) FROM task_usage u JOIN data_set d ON d.id = u.ds_id "
               "WHERE d.tag = 'opoints'") == [(2,)]  # both trains used the sampled points
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]


def test_a_provenance_failure_does_not_stop_training(store_path, sql, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(TrainingCapture, "epoch", broken)
    model = poisson_model()
    callback = ProvenanceCallback("pinn", capture_environment=False)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        history, state = train(model, callback)

    assert state.step == ITERATIONS and history.steps[-1] == ITERATIONS
    assert "disk on fire" in caplog.text and "training goes on" in caplog.text
    # what did not fail is still recorded, and the run ends
    assert sql("SELECT optimizer_name FROM pinn__itrain") == [("adam",)]
    assert sql("SELECT count(*) FROM pinn__otest") == [(1,)]
    assert sql("SELECT count(*) FROM trained_model WHERE sha256 IS NOT NULL") == [(1,)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]


def test_a_training_that_raised_is_failed_when_the_callback_trains_again(store_path, sql):
    class Crash(dde.callbacks.Callback):
        def on_epoch_end(self):
            if self.model.train_state.step == 30:
                raise RuntimeError("user code failed")

    model = poisson_model()
    callback = ProvenanceCallback("pinn", save_model=False, capture_environment=False)
    with pytest.raises(RuntimeError, match="user code failed"):
        model.train(iterations=40, display_every=10, callbacks=[callback, Crash()], verbose=0)
    train(model, callback, iterations=10, display_every=10)

    assert sql("SELECT status, error_msg FROM dataflow_execution ORDER BY id") == [
        ("failed", "training stopped before it ended (model.train raised)"), ("finished", None)]
    assert sql("SELECT epoch FROM pinn__otrain ORDER BY id") == [
        (0.0,), (10.0,), (20.0,), (30.0,), (30.0,), (40.0,)]


def test_an_unusable_store_does_not_stop_training(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-folder").mkdir()
    model = poisson_model()
    callback = ProvenanceCallback("pinn", store=tmp_path / "a-folder", save_model=False,
                                  capture_environment=False)
    with caplog.at_level(logging.WARNING, logger="dlprov"):
        _, state = train(model, callback, iterations=20, display_every=10)
    assert state.step == 20
    # the recorder keeps the records in a spool file until the store answers
    assert "cannot write provenance" in caplog.text
    assert list((tmp_path / "a-folder.spool").glob("*.jsonl"))


def test_configuration_mistakes_are_raised_at_once():
    with pytest.raises(ValueError, match="dataflow tag or a run"):
        ProvenanceCallback()
    with pytest.raises(ValueError, match="every"):
        ProvenanceCallback("pinn", every=0)
    with pytest.raises(dlprov.DlprovError):
        ProvenanceCallback("not a valid tag!")


def test_missing_deepxde_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepxde", None)
    monkeypatch.delitem(sys.modules, "deepxde.callbacks", raising=False)
    monkeypatch.delitem(sys.modules, "dlprov.integrations.deepxde")
    with pytest.raises(ImportError, match=r"pip install 'dlprov\[deepxde\]'"):
        importlib.import_module("dlprov.integrations.deepxde")
