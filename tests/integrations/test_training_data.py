"""The data a training used, recorded by each integration (``itraindataset``, or the use of a
data-preparation step's output), so that Q11 answers without a hand-built workflow. Tiny real
trainings on CPU into real SQLite stores."""
from __future__ import annotations

import hashlib
import json
import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

import dlprov
from dlprov.capture.datasets import digest
from dlprov.integrations import data as training_data_module
from dlprov.integrations.data import TRAINING_DATA, training_data
from dlprov.integrations.torch import track_training
from dlprov.query import q11, q12

QUIET = {"capture_environment": False}


def numpy_digest(array) -> str:
    """The recipe documented in dlprov.capture.datasets, recomputed here."""
    found = hashlib.sha256(f"numpy {array.dtype.str} {array.shape}\n".encode())
    found.update(np.ascontiguousarray(array).tobytes())
    return found.hexdigest()


def used(sql, df: str = "mnist") -> list[dict]:
    columns = [name for _, name, *_ in sql(f'PRAGMA table_info("{df}__{TRAINING_DATA}")')]
    return [dict(zip(columns, row)) for row in
            sql(f'SELECT * FROM "{df}__{TRAINING_DATA}" ORDER BY id')]


def q11_data(model_id: str) -> dict[str, dict]:
    """Q11's answer: each element's description by its name."""
    answer = q11(model_id).records()
    return {re.match(r"name=([^,]*)", r["data"]).group(1): r for r in answer}


def tiny_loop(log, model, optimizer, loader, epochs: int, scheduler=None) -> None:
    for epoch in range(epochs):
        log.epoch_start(epoch)
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        log.epoch_end(epoch, loss=loss)


def test_track_training_records_the_data_and_q11_answers(store_path, sql, tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    x_val = np.arange(40, dtype=np.float32).reshape(10, 4)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n1,0\n2,1\n")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with track_training("mnist", model=model, optimizer=optimizer, epochs=2,
                        data={"train": loader, "val": x_val, "labels": labels},
                        **QUIET) as log:
        tiny_loop(log, model, optimizer, loader, 2)
        model_id = log.save_model(tmp_path / "model.pt")
    found = {row["name"]: row for row in used(sql)}
    assert set(found) == {"train[0]", "train[1]", "val", "labels"}
    assert json.loads(found["train[0]"]["shape"]) == [64, 4]
    assert found["train[0]"]["kind"] == "torch.Tensor"
    assert found["train[0]"]["n_records"] == 64
    assert found["train[0]"]["digest"] == numpy_digest(x.numpy())
    assert found["train[0]"]["digest_of"] == "all"
    assert found["val"]["kind"] == "numpy.ndarray"
    assert found["val"]["digest"] == numpy_digest(x_val) == digest(x_val)
    assert found["labels"]["kind"] == "file"
    assert found["labels"]["dataset_dir"] == str(labels)
    assert found["labels"]["digest"] == hashlib.sha256(labels.read_bytes()).hexdigest()
    answer = q11_data(model_id)
    assert set(answer) == set(found)
    assert {r["set_tag"] for r in answer.values()} == {TRAINING_DATA}
    assert f"digest={digest(x_val)}" in answer["val"]["data"]


def test_data_a_step_produced_is_used_not_described_again(store_path, sql, tmp_path) -> None:
    raw = np.arange(24, dtype=np.float64).reshape(6, 4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with dlprov.run("mnist", **QUIET) as run:
        @dlprov.step(run=run)
        def normalize(x):
            return (x - x.mean()) / x.std()

        clean = normalize(raw)
        with track_training(run=run, model=model, optimizer=optimizer,
                            data={"train": clean}) as log:
            log.epoch_end(0, loss=1.0)
            model_id = log.save_model(tmp_path / "model.pt")
    assert sql(f"SELECT COUNT(*) FROM sqlite_master WHERE name = 'mnist__{TRAINING_DATA}'") \
        == [(0,)]
    answer = q11(model_id).records()
    assert [(r["set_tag"], r["produced_by"]) for r in answer] == [("onormalize", "normalize")]
    assert f"digest={digest(clean)}" in answer[0]["data"]
    steps = [r["transformation"] for r in q12(model_id).records()]
    assert steps[0] == "normalize"


def test_large_data_is_hashed_as_a_sample_and_says_so(monkeypatch) -> None:
    monkeypatch.setattr(training_data_module, "MAX_DIGEST_BYTES", 1024)
    big = np.arange(4000, dtype=np.float64).reshape(1000, 4)  # 32 kB
    (element,) = training_data({"train": big})
    assert element.values["digest_of"] == ("sample of 1000 of 1000 records (evenly spaced) "
                                           "and the shape")
    assert element.values["n_records"] == 1000
    changed = big.copy()
    changed[500, 0] = -1
    (other,) = training_data({"train": changed})
    assert other.values["digest"] != element.values["digest"]
    monkeypatch.setattr(training_data_module, "SAMPLE_RECORDS", 10)
    (sampled,) = training_data({"train": big})
    assert sampled.values["digest_of"].startswith("sample of 10 of 1000 records")
    (same,) = training_data({"train": changed})  # row 500 is not in the sample
    assert same.values["digest"] == sampled.values["digest"]


def test_a_dataset_is_never_iterated_and_unreadable_data_is_named() -> None:
    class Endless(torch.utils.data.Dataset):
        root = "/nonexistent/images"

        def __len__(self) -> int:
            return 5

        def __getitem__(self, i):
            raise AssertionError("a dataset must not be read to be described")

    loader = torch.utils.data.DataLoader(Endless(), batch_size=2)
    (element,) = training_data({"train": loader})
    assert element.values["n_records"] == 5
    assert element.values["kind"].endswith("Endless")
    assert element.values["dataset_dir"] == "/nonexistent/images"
    assert element.values["digest"] is None
    assert element.values["digest_of"].startswith("none:")


def test_lr_is_recorded_as_learning_rate_once_in_itrain(store_path, sql) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with track_training("mnist", model=model, optimizer=optimizer,
                        hyperparameters={"lr": 0.1, "dropout": 0.2}, **QUIET) as log:
        log.epoch_end(0, loss=1.0)
    columns = {name for _, name, *_ in sql('PRAGMA table_info("mnist__itrain")')}
    assert "learning_rate" in columns and "lr" not in columns
    assert sql("SELECT learning_rate, dropout FROM mnist__itrain") == [(0.1, 0.2)]


def test_lightning_records_the_loaders_data_and_q11_answers(store_path, sql, tmp_path) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from dlprov.integrations.lightning import ProvenanceCallback
    from tests.integrations.test_lightning import Classifier, Data, trainer

    callback = ProvenanceCallback("mnist", model_dir=tmp_path / "models", **QUIET)
    fitter = trainer(callback, epochs=2)  # no sanity check: validation data is loaded later
    fitter.fit(Classifier(), Data(batch_size=16))
    callback.close()
    found = {row["name"]: row for row in used(sql)}
    assert set(found) == {"train[0]", "train[1]", "val[0]", "val[1]"}
    assert json.loads(found["train[0]"]["shape"]) == [64, 4]
    assert found["train[0]"]["n_records"] == 64
    assert found["train[0]"]["digest_of"] == "all"
    assert found["val[0]"]["digest"] != found["train[0]"]["digest"]  # another seed
    assert set(q11_data(callback.model_path)) == set(found)


def test_keras_records_fits_arguments_and_q11_answers(store_path, sql) -> None:
    keras = pytest.importorskip("keras")
    from dlprov.integrations.keras import ProvenanceCallback

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4), dtype=np.float32), rng.integers(0, 3, 40)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with ProvenanceCallback("mnist", **QUIET) as callback:
        model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[callback])
    found = {row["name"]: row for row in used(sql)}
    assert set(found) == {"x", "y", "validation_data[0]", "validation_data[1]"}
    assert json.loads(found["x"]["shape"]) == [30, 4]  # what fit trained on, after the split
    assert found["x"]["digest"] == digest(np.ascontiguousarray(x[:30]))
    assert json.loads(found["validation_data[0]"]["shape"]) == [10, 4]
    assert set(q11_data(callback.model_path)) == set(found)
