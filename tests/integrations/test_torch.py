"""Plain PyTorch loops: a tiny MLP trained on CPU, its provenance checked in the SQLite file."""
from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import dlprov
from dlprov.capture.task import Task
from dlprov.integrations.torch import TrainingLog, track_training
from tests.integrations.logs import told

EPOCHS, BATCH_SIZE = 3, 16


def data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=generator)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def train(log: TrainingLog, model, optimizer, epochs: int = EPOCHS, fail_at: int | None = None,
          per_batch: bool = False) -> None:
    """A hand-written loop, with the log's calls where a user would put them."""
    x, y = data()
    for epoch in range(epochs):
        if epoch == fail_at:
            raise RuntimeError(f"diverged in epoch {epoch}")
        total = torch.tensor(0.0)
        for start in range(0, len(x), BATCH_SIZE):
            logits = model(x[start:start + BATCH_SIZE])
            loss = torch.nn.functional.cross_entropy(logits, y[start:start + BATCH_SIZE])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach()
            if per_batch:
                log.batch_end(loss=loss)
        with torch.no_grad():
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        log.epoch_end(epoch, loss=total / (len(x) // BATCH_SIZE), accuracy=accuracy,
                      val_loss=torch.tensor(0.5 - epoch / 10))


def evaluate(model) -> dict:
    x, y = data(seed=1)
    with torch.no_grad():
        logits = model(x)
    return {"loss": torch.nn.functional.cross_entropy(logits, y),
            "accuracy": (logits.argmax(1) == y).float().mean()}


def task_rows(sql) -> list[tuple]:
    return sql("SELECT d.tag, t.status, t.error_msg FROM task t "
               "JOIN data_transformation d ON d.id = t.dt_id ORDER BY t.id")


def test_training_and_test_are_recorded(store_path, sql, tmp_path) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    with track_training("mnist", model=model, optimizer=optimizer, epochs=EPOCHS,
                        batch_size=BATCH_SIZE, hyperparameters={"hidden_units": 8},
                        capture_environment=False) as log:
        train(log, model, optimizer)
        model_id = log.save_model(tmp_path / "models" / "mlp.pt")
        log.test(**evaluate(model))

    assert sql("SELECT optimizer_name, learning_rate, momentum, weight_decay, num_epochs, "
               "batch_size, num_layers, hidden_units FROM mnist__itrain") == [
        ("sgd", 0.05, 0.9, 1e-4, 3.0, 16.0, 2.0, 8.0)]
    rows = sql("SELECT epoch, loss, accuracy, val_loss, elapsed_time, timestamp "
               "FROM mnist__otrain ORDER BY id")
    assert [r[0] for r in rows] == [0.0, 1.0, 2.0]
    assert [r[3] for r in rows] == pytest.approx([0.5, 0.4, 0.3])
    for _, loss, accuracy, _, elapsed, timestamp in rows:
        assert 0 < loss < 2 and 0 <= accuracy <= 1 and timestamp is not None
        assert isinstance(elapsed, float) and elapsed > 0
    assert rows[-1][1] < rows[0][1]  # it really trained

    path = tmp_path / "models" / "mlp.pt"
    (train_id, test_id), = sql("SELECT train_task_id, test_task_id FROM mnist__otrainedmodel")
    assert sql("SELECT model_name, model_dir, model_id FROM mnist__otrainedmodel") == [
        ("mlp", str(path), model_id)]
    assert sql("SELECT task_id, name, sha256, size_bytes, framework, parameter_count, "
               "layer_count FROM trained_model") == [
        (train_id, "mlp", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size,
         "torch", sum(p.numel() for p in model.parameters()), 2)]
    assert torch.load(path).keys() == model.state_dict().keys()  # a state_dict, by default

    (tested, loss, accuracy), = sql("SELECT test_task_id, loss, accuracy FROM mnist__otest")
    metrics = evaluate(model)
    assert tested == test_id != train_id
    assert (loss, accuracy) == pytest.approx((metrics["loss"].item(), metrics["accuracy"].item()))
    assert task_rows(sql) == [("train", "finished", None), ("test", "finished", None)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]


def test_hyperparameters_given_override_and_extend_the_derived_ones(sql) -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    log = track_training("mnist", model=model, optimizer=optimizer, epochs=1,
                         hyperparameters={"NUM_LAYERS": 1, "betas": (0.9, 0.99),
                                          "activation": torch.nn.ReLU, "dropout": None,
                                          "environment": "lab"},
                         capture_environment=False)
    log.close()
    assert log.hyperparameters == {
        "optimizer_name": "adam", "learning_rate": pytest.approx(0.01), "weight_decay": 0,
        "num_epochs": 1, "NUM_LAYERS": 1, "betas": [0.9, 0.99],  # by the names given
        "activation": str(torch.nn.ReLU), "environment": "lab"}
    (row,) = sql("SELECT optimizer_name, learning_rate, num_layers, betas, m_environment "
                  "FROM mnist__itrain")
    assert row[:3] == ("adam", pytest.approx(0.01), 1.0)
    assert json.loads(row[3]) == [0.9, 0.99] and row[4] == "lab"
    columns = [c for _, c, *_ in sql("PRAGMA table_info(mnist__itrain)")]
    assert "momentum" not in columns and "batch_size" not in columns  # Adam has none; not given


def test_batches_are_recorded_every_n_steps(sql) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with track_training("mnist", model=model, optimizer=optimizer, log_every_n_steps=2,
                        capture_environment=False) as log:
        train(log, model, optimizer, epochs=2, per_batch=True)
    # 6 batches an epoch, 12 in all: steps 0, 2, ..., 10 are kept
    rows = sql("SELECT epoch, step, loss FROM mnist__otrainbatch ORDER BY id")
    assert [(e, s) for e, s, _ in rows] == [(0.0, 0.0), (0.0, 2.0), (0.0, 4.0),
                                            (1.0, 6.0), (1.0, 8.0), (1.0, 10.0)]
    assert all(0 < loss < 2 for *_, loss in rows)
    assert sql("SELECT count(*) FROM mnist__otrain") == [(2,)]


def test_epoch_start_times_the_epoch_and_numbers_its_batches(sql) -> None:
    with track_training("mnist", capture_environment=False) as log:
        for epoch in (1, 2):
            log.epoch_start(epoch)
            log.batch_end(epoch * 10, loss=0.5)
            log.epoch_end(epoch, loss=0.4)
        log.epoch_end(3, loss=0.3, elapsed_time=12.5)
    assert sql("SELECT epoch, step FROM mnist__otrainbatch ORDER BY id") == [(1.0, 10.0),
                                                                            (2.0, 20.0)]
    elapsed = [e for (e,) in sql("SELECT elapsed_time FROM mnist__otrain ORDER BY id")]
    assert all(0 < e < 5 for e in elapsed[:2]) and elapsed[2] == 12.5


def test_a_training_that_raises_fails_its_task_and_the_error_propagates(sql) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(RuntimeError, match="diverged in epoch 2"):
        with track_training("mnist", model=model, optimizer=optimizer, epochs=EPOCHS,
                            capture_environment=False) as log:
            train(log, model, optimizer, fail_at=2)
    ((transformation, status, error),) = task_rows(sql)
    assert (transformation, status) == ("train", "failed")
    assert "RuntimeError: diverged in epoch 2" in error and "Traceback" in error
    assert sql("SELECT status, error_msg FROM dataflow_execution") == [
        ("failed", "diverged in epoch 2")]
    assert sql("SELECT epoch FROM mnist__otrain ORDER BY id") == [(0.0,), (1.0,)]


def test_odd_metrics_are_renamed_split_or_refused_loudly(sql, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            track_training("mnist", capture_environment=False) as log:
        log.epoch_end(0, **{"val/acc@1": 0.5, "id": 1.0, "task": 2.0, "1st": 3.0,
                            "train_task_id": 4.0, "epoch": 99, "note": "text",
                            "whole": torch.ones(3), "flag": True, "nan": float("nan"),
                            "huge": torch.ones(100), "nested": {"a": 1.0}})
        log.test(**{"Test Loss": torch.tensor(0.25), "timestamp": 5})
    (row,) = sql("SELECT epoch, val_acc_1, m_id, m_task, m_1st, train_taskid, nan, note, "
                 "whole_0, whole_1, whole_2, flag FROM mnist__otrain")
    assert row[:6] == (0.0, 0.5, 1.0, 2.0, 3.0, 4.0) and row[6] is None  # NaN kept as NULL
    assert row[7:] == ("text", 1.0, 1.0, 1.0, 1.0)
    columns = {c for _, c, *_ in sql("PRAGMA table_info(mnist__otrain)")}
    assert not columns & {"huge", "nested", "whole"}
    assert sql("SELECT test_loss FROM mnist__otest") == [(0.25,)]
    warned = caplog.text
    assert "metric 'whole' is a Tensor of shape (3,): stored element by element in whole_0, " \
           "whole_1, whole_2" in warned
    assert "metric 'huge' left out: a Tensor of shape (100,) holds more than 16" in warned
    assert "metric 'nested' left out: a dict" in warned
    assert "metric 'epoch' left out: dlprov records an attribute of that name" in warned
    assert "set 'otest': metric 'timestamp' left out" in warned


def test_a_provenance_failure_never_stops_training(store_path, monkeypatch, caplog,
                                                   tmp_path) -> None:
    def broken(self, set_tag, /, **values):
        raise RuntimeError("recorder exploded")

    monkeypatch.setattr(Task, "output", broken)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        with track_training("mnist", model=model, optimizer=optimizer,
                            capture_environment=False) as log:
            train(log, model, optimizer, per_batch=True)
            assert log.save_model(tmp_path / "model.pt") is None
            log.test(**evaluate(model))
    assert (tmp_path / "model.pt").is_file()
    warned = [r.getMessage() for r in caplog.records if "recorder exploded" in r.getMessage()]
    assert any("_record_epoch" in m for m in warned) and any("_record_test" in m for m in warned)
    # every failure is told, rate-limited: the first in full, the others counted
    assert told([m for m in warned if "_record_epoch" in m]) == EPOCHS
    assert told([m for m in warned if "_record_batch" in m]) == EPOCHS * 96 // BATCH_SIZE


def test_a_store_that_cannot_be_written_never_stops_training(tmp_path, caplog) -> None:
    store = tmp_path / "store.db"
    store.mkdir()  # a directory where the SQLite file should be
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with caplog.at_level(logging.WARNING):
        with track_training("mnist", model=model, optimizer=optimizer, store=store,
                            capture_environment=False) as log:
            train(log, model, optimizer)
            log.save_model(tmp_path / "model.pt")
            log.test(**evaluate(model))
    assert (tmp_path / "model.pt").is_file()
    assert any("cannot write provenance" in r.getMessage() for r in caplog.records)


def test_training_inside_a_run_of_yours(sql) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("splitdata") as split:
            split.output("otrainset", trainsetx="x.npy")
        with track_training(run=run, depends_on=[split], uses=["otrainset"], epochs=1) as log:
            log.epoch_end(0, loss=0.5)
            log.test(loss=0.6)
        assert run.status == "running"  # the log leaves your run open
    assert task_rows(sql) == [("splitdata", "finished", None), ("train", "finished", None),
                              ("test", "finished", None)]
    assert sql("SELECT count(*) FROM mnist__otrainset WHERE train_task_id IS NOT NULL") == [(1,)]
    assert sql("SELECT num_epochs FROM mnist__itrain") == [(1.0,)]


def test_two_trainings_in_one_run_with_other_hyperparameters(sql) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        for optimizer in (torch.optim.Adam(mlp().parameters(), lr=0.01),
                          torch.optim.SGD(mlp().parameters(), lr=0.1, momentum=0.5)):
            with track_training(run=run, optimizer=optimizer, epochs=1) as log:
                log.epoch_end(0, loss=0.5)
    assert sql("SELECT optimizer_name, learning_rate, momentum FROM mnist__itrain "
               "ORDER BY id") == [("adam", 0.01, None), ("sgd", 0.1, 0.5)]


def test_mistakes_in_the_arguments_raise_at_once(tmp_path, store_path) -> None:
    with pytest.raises(ValueError, match="dataflow tag or a run"):
        track_training()
    with pytest.raises(dlprov.NameRejected):
        track_training("not a tag!")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        track_training("mnist", epochs=0)
    with pytest.raises(TypeError, match="hyperparameters must be a dict"):
        track_training("mnist", hyperparameters=[("lr", 0.1)])
    with dlprov.run("mnist", capture_environment=False) as run:
        with pytest.raises(TypeError, match="exec_tag"):
            track_training(run=run, exec_tag="other")
    with track_training("mnist", capture_environment=False) as log:
        with pytest.raises(ValueError, match="no model to save"):
            log.save_model(tmp_path / "model.pt")
        with pytest.raises(FileNotFoundError, match="save it first"):
            log.record_model(tmp_path / "missing.pt")


def test_the_module_imports_torch_only_to_save(tmp_path) -> None:
    code = ("import sys, dlprov.integrations.torch as t; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert t.track_training")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_run_left_open_ends_at_interpreter_exit(store_path, sql, tmp_path) -> None:
    code = ("from dlprov.integrations.torch import track_training; "
            "log = track_training('exiting', capture_environment=False); "
            "log.epoch_end(0, loss=1.0)")  # no close(), no with block
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
    assert sql("SELECT status FROM task") == [("finished",)]
    assert sql("SELECT loss FROM exiting__otrain") == [(1.0,)]
