"""The Keras integration, training tiny real Keras models (torch backend, CPU) into real SQLite
stores. Set tables are named ``<df_tag>__<set_tag>``."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import hashlib
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

import dlprov.integrations.keras as keras_integration
from dlprov.errors import NameRejected
from dlprov.integrations.common import TrainingCapture
from dlprov.integrations.keras import (BATCH_SIZE, DECAY, LEARNING_RATE, MOMENTUM, NUM_EPOCHS,
                                       NUM_LAYERS, OPTIMIZER_NAME, ProvenanceCallback, detach,
                                       provenance)

QUIET = {"capture_environment": False}  # the environment probe is tested elsewhere


def rows(sql, table: str, order: str = "id") -> list[dict]:
    """The rows of ``table`` as dicts (column name → value)."""
    columns = [name for _, name, *_ in sql(f'PRAGMA table_info("{table}")')]
    return [dict(zip(columns, row)) for row in sql(f'SELECT * FROM "{table}" ORDER BY {order}')]


def task_statuses(sql) -> dict[str, tuple]:
    return {tag: (status, error) for tag, status, error in sql(
        "SELECT dt.tag, t.status, t.error_msg FROM task t "
        "JOIN data_transformation dt ON dt.id = t.dt_id")}


def data(samples: int = 64, shape: tuple = (4,), classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.random((samples, *shape), dtype=np.float32),
            rng.integers(0, classes, samples))


def dense_model(optimizer=None) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")], name="dense")
    model.compile(optimizer=optimizer or keras.optimizers.Adam(0.005),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def conv_model(optimizer) -> keras.Model:
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dropout(0.1),
        keras.layers.Dense(2, activation="softmax")], name="conv")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class Explode(keras.callbacks.Callback):
    """The user's own code failing in the middle of training."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("diverged at epoch 2")


# -- ProvenanceCallback ---------------------------------------------------------------------------

def test_callback_records_hyperparameters_epochs_and_the_saved_model(sql, tmp_path) -> None:
    x, y = data()
    model = dense_model()
    with ProvenanceCallback("kerasmlp", extra_hyperparameters={"dropout": 0.0},
                            model_dir=tmp_path / "saved", **QUIET) as callback:
        history = model.fit(x, y, epochs=3, batch_size=16, validation_data=data(seed=1),
                            verbose=0, callbacks=[callback])

    [itrain] = rows(sql, "kerasmlp__itrain")
    assert itrain == {"id": 1, "train_task_id": itrain["train_task_id"],
                      "optimizer_name": "adam", "learning_rate": 0.005, "num_epochs": 3.0,
                      "batch_size": 16.0, "num_layers": 2.0, "dropout": 0.0}

    otrain = rows(sql, "kerasmlp__otrain")
    assert [row["epoch"] for row in otrain] == [1.0, 2.0, 3.0]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [row[name] for row in otrain] == pytest.approx(history.history[name])
    assert all(row["elapsed_time"] > 0 and row["timestamp"] for row in otrain)

    [saved] = rows(sql, "kerasmlp__otrainedmodel")
    path = Path(saved["model_dir"])
    assert path.parent == tmp_path / "saved" and path.suffix == ".keras"
    assert path == Path(callback.model_path).resolve()
    [entity] = rows(sql, "trained_model")
    assert entity["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entity["size_bytes"] == path.stat().st_size
    assert (entity["model_id"], entity["framework"]) == (saved["model_id"], "keras")
    assert entity["parameter_count"] == model.count_params()
    assert entity["layer_count"] == len(model.layers)
    assert keras.saving.load_model(path).count_params() == model.count_params()

    assert task_statuses(sql) == {"train": ("finished", None)}
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]


def test_evaluate_records_otest_linked_to_the_trained_model(sql) -> None:
    x, y = data()
    model = dense_model()
    with ProvenanceCallback("kerasmlp", **QUIET) as callback:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
        loss, accuracy = model.evaluate(*data(seed=2), verbose=0, callbacks=[callback])

    [otest] = rows(sql, "kerasmlp__otest")
    assert (otest["loss"], otest["accuracy"]) == pytest.approx((loss, accuracy))
    assert otest["elapsed_time"] > 0
    [saved] = rows(sql, "kerasmlp__otrainedmodel")
    assert saved["test_task_id"] == otest["test_task_id"]
    assert sql("SELECT dt.tag FROM task t JOIN data_transformation dt ON dt.id = t.dt_id "
               "WHERE t.id = ?", otest["test_task_id"]) == [("test",)]
    # validation inside fit is not a test: only the evaluate call made an otest row
    assert task_statuses(sql) == {"train": ("finished", None), "test": ("finished", None)}


def test_momentum_and_the_schedules_decay_rate_are_captured_where_present(sql) -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model = dense_model(keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=0.01))
    with ProvenanceCallback("kerassgd", **QUIET) as callback:
        model.fit(*data(), epochs=1, verbose=0, callbacks=[callback])

    [itrain] = rows(sql, "kerassgd__itrain")
    assert (itrain["optimizer_name"], itrain["learning_rate"], itrain["momentum"],
            itrain["decay"], itrain["weight_decay"]) == ("sgd", 0.1, 0.9, 0.5, 0.01)


def test_a_failing_fit_is_recorded_when_the_callback_is_a_context_manager(sql) -> None:
    with pytest.raises(RuntimeError, match="diverged"), \
            ProvenanceCallback("kerasmlp", **QUIET) as callback:
        dense_model().fit(*data(), epochs=3, verbose=0, callbacks=[callback, Explode()])

    status, error = task_statuses(sql)["train"]
    assert status == "failed" and "diverged at epoch 2" in error
    assert sql("SELECT status FROM dataflow_execution") == [("failed",)]
    # the callback before Explode recorded epoch 2, whose end then raised
    assert [row["epoch"] for row in rows(sql, "kerasmlp__otrain")] == [1.0, 2.0]
    assert sql("SELECT COUNT(*) FROM trained_model") == [(0,)]


def test_a_provenance_failure_does_not_stop_training(sql, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(TrainingCapture, "epoch", broken)
    model = dense_model()
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            ProvenanceCallback("kerasmlp", **QUIET) as callback:
        history = model.fit(*data(), epochs=3, verbose=0, callbacks=[callback])

    assert len(history.history["loss"]) == 3
    assert "disk full" in caplog.text and "training goes on" in caplog.text
    assert len(rows(sql, "kerasmlp__itrain")) == 1
    assert len(rows(sql, "kerasmlp__otrainedmodel")) == 1


def test_mistakes_in_the_options_are_caught_at_the_call(store_path) -> None:
    with pytest.raises(ValueError, match="unknown hyperparameter 'EPOCHS'.*NUM_EPOCHS"):
        ProvenanceCallback("kerasmlp", hyperparameters={"EPOCHS": True})
    with pytest.raises(NameRejected, match="kerasprov example"):
        ProvenanceCallback("kerasprov example")
    with pytest.raises(ValueError, match="dataflow tag"):
        ProvenanceCallback()


# -- provenance(model), the paper's Listing 2 -----------------------------------------------------

def test_provenance_captures_fit_and_evaluate_without_callbacks(sql) -> None:
    x, y = data(32, (8, 8, 1), classes=2)
    model = conv_model(keras.optimizers.SGD(0.01, momentum=0.9))
    callback = provenance(model, dataflow_tag="kerasprov_example", hyperparameters={
        OPTIMIZER_NAME: True, LEARNING_RATE: True, DECAY: False, MOMENTUM: False,
        NUM_EPOCHS: True, BATCH_SIZE: False, NUM_LAYERS: True}, **QUIET)
    model.fit(x, y, 8, 2, verbose=0)  # batch_size and epochs given by position
    model.evaluate(x, y, verbose=0)
    callback.close()

    [itrain] = rows(sql, "kerasprov_example__itrain")
    assert {k: v for k, v in itrain.items() if not k.endswith("id")} == {
        "optimizer_name": "sgd", "learning_rate": 0.01, "num_epochs": 2.0, "num_layers": 4.0}
    assert len(rows(sql, "kerasprov_example__otrain")) == 2
    [saved] = rows(sql, "kerasprov_example__otrainedmodel")
    [otest] = rows(sql, "kerasprov_example__otest")
    assert saved["test_task_id"] == otest["test_task_id"]
    [entity] = rows(sql, "trained_model")
    assert entity["parameter_count"] == model.count_params()


def test_adaptation_records_learning_rate_changes_between_epochs(sql) -> None:
    model = dense_model(keras.optimizers.Adam(0.01))
    provenance(model, "kerasadapt", adaptation=True, save_model=False, **QUIET)
    drop = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.01 if epoch < 2 else 0.001)
    model.fit(*data(), epochs=4, verbose=0, callbacks=[drop])
    detach(model)

    assert [(row["epoch"], row["new_lrate"]) for row in rows(sql, "kerasadapt__oadaptation")] \
        == [(3.0, 0.001)]
    assert "fit" not in model.__dict__ and "evaluate" not in model.__dict__


def test_each_fit_of_an_attached_model_is_a_run_of_its_own(sql) -> None:
    model = dense_model()
    callback = provenance(model, "kerasmlp", **QUIET)
    model.fit(*data(), epochs=1, verbose=0)
    model.fit(*data(), epochs=2, verbose=0)
    model.evaluate(*data(), verbose=0)
    callback.close()

    assert sql("SELECT status FROM dataflow_execution ORDER BY id") == [("finished",)] * 2
    models = rows(sql, "kerasmlp__otrainedmodel")
    assert [m["test_task_id"] is not None for m in models] == [False, True]


def test_a_failing_fit_of_an_attached_model_is_recorded_and_raised(sql) -> None:
    model = dense_model()
    provenance(model, "kerasmlp", **QUIET)
    with pytest.raises(RuntimeError, match="diverged"):
        model.fit(*data(), epochs=3, verbose=0, callbacks=[Explode()])

    status, error = task_statuses(sql)["train"]
    assert status == "failed" and "diverged at epoch 2" in error
    assert sql("SELECT status, error_msg FROM dataflow_execution") == [
        ("failed", "diverged at epoch 2")]


# -- the process around it ------------------------------------------------------------------------

SCRIPT = """
import os
os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np
from dlprov.integrations.keras import provenance
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
provenance(model, "atexit", capture_environment=False)
x = np.zeros((8, 2), dtype="float32")
model.fit(x, x[:, :1], epochs=1, verbose=0)
"""


def test_runs_left_open_end_at_interpreter_exit(sql) -> None:
    subprocess.run([sys.executable, "-c", SCRIPT + "raise SystemError('after training')"],
                   env=os.environ, timeout=120, capture_output=True, check=False)
    assert sql("SELECT status, error_msg FROM dataflow_execution") == [
        ("failed", "after training")]
    assert task_statuses(sql) == {"train": ("finished", None)}


def test_a_training_cut_short_is_failed_at_exit(sql, monkeypatch) -> None:
    monkeypatch.delattr(sys, "last_value", raising=False)
    callback = ProvenanceCallback("kerasmlp", **QUIET)
    with pytest.raises(RuntimeError):
        dense_model().fit(*data(), epochs=3, verbose=0, callbacks=[callback, Explode()])
    keras_integration._close_at_exit()  # what atexit runs

    status, error = task_statuses(sql)["train"]
    assert status == "failed" and error.startswith("training did not finish")
    assert sql("SELECT status FROM dataflow_execution") == [("failed",)]


def test_without_keras_the_import_error_names_the_extra() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["keras"] = None
        from dlprov.integrations.keras import LEARNING_RATE, provenance
        try:
            from dlprov.integrations.keras import ProvenanceCallback
        except ImportError as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "pip install 'dlprov[keras]'" in result.stdout, result.stderr
