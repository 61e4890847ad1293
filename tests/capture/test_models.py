"""Trained models as first-class entities: id, file, size, digest, framework, counts, links."""
from __future__ import annotations

import hashlib

import pytest
import torch

import dlprov


def test_trained_model_is_recorded_with_file_facts_and_links(store_path, sql, tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    with dlprov.run("models") as run:
        with run.task("train") as train:
            model_id = train.model(path, net, name="tiny")
        with run.task("test", depends_on=train) as test:
            test.output("otest", accuracy=0.9)
        with run.task("test", depends_on=train) as second_test:
            second_test.output("otest", accuracy=0.8)
    [row] = sql("SELECT model_id, name, path, size_bytes, sha256, framework, parameter_count, "
                "layer_count, task_id FROM trained_model")
    assert row[:3] == (model_id, "tiny", str(path))
    assert row[3] == path.stat().st_size
    assert row[4] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row[5:8] == ("torch", sum(p.numel() for p in net.parameters()), 2)
    # the otrainedmodel element points at the entity; both tests are linked to the training
    [(first_test,)] = sql("SELECT min(id) FROM task WHERE dt_id = "
                          "(SELECT id FROM data_transformation WHERE tag = 'test')")
    assert sql("SELECT model_name, model_id, train_task_id, test_task_id "
               "FROM models__otrainedmodel") == [("tiny", model_id, row[8], first_test)]
    assert sql("SELECT task_id FROM task_usage WHERE producer_task_id = ? ORDER BY task_id",
               row[8]) == [(2,), (3,)]


def test_a_model_directory_is_digested_whole(store_path, sql, tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    (folder / "variables" / "weights.bin").write_bytes(b"\x00" * 100)
    with dlprov.run("models") as run:
        with run.task("train") as train:
            train.model(folder)
    [(size, digest, name)] = sql("SELECT size_bytes, sha256, name FROM trained_model")
    assert (size, name) == (102, "saved") and len(digest) == 64


def test_a_missing_model_file_is_recorded_without_digest(store_path, sql, tmp_path):
    with dlprov.run("models") as run:
        with run.task("train") as train:
            train.model(tmp_path / "never-written.pt")
    assert sql("SELECT size_bytes, sha256 FROM trained_model") == [(None, None)]


def test_keras_like_models_are_counted_by_duck_typing():
    from dlprov.capture.models import layer_count, parameter_count

    class KerasLike:
        __module__ = "keras.src.models"
        layers = [object(), object(), object()]

        def count_params(self):
            return 1234

    assert (parameter_count(KerasLike()), layer_count(KerasLike())) == (1234, 3)
    assert parameter_count(None) is None


@pytest.mark.parametrize("bad", ["", None])
def test_model_needs_a_path(store_path, bad):
    with dlprov.run("models") as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.ValueRejected, match="needs the path"):
                train.model(bad)
