"""Example 2: a Keras residual CNN with captured preprocessing; Q7-Q12 for the chosen model."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")


def test_keras_example_answers_deployment_questions(example, store_path, sql, tmp_path):
    module = example("keras_resnet_cifar")
    answers = module.main(["--samples", "100", "--epochs", "1",
                           "--output-dir", str(tmp_path / "out")])
    # the chosen model is the one with the highest test accuracy, recomputed here
    [(best_task, best_lr, best_filters)] = sql("""
        SELECT i.train_task_id, i.learning_rate, i.filters FROM cifar__itrain i
        JOIN cifar__otrainedmodel m ON m.train_task_id = i.train_task_id
        JOIN cifar__otest t ON t.test_task_id = m.test_task_id
        ORDER BY t.accuracy DESC, i.train_task_id LIMIT 1""")
    [hyper] = answers["q7"].records()
    assert (hyper["train_task_id"], hyper["learning_rate"], hyper["filters"]) == (
        best_task, best_lr, best_filters)
    assert answers["q9"].records()[0]["username"]
    # Q12: the feature transformations from the raw input to the training data, in order
    chain = []
    for row in answers["q12"].records():
        if not chain or chain[-1] != row["transformation"]:
            chain.append(row["transformation"])
    assert chain[:4] == ["loaddata", "normalizedata", "onehotencoding", "splitdata"]
    files = {row["set_tag"]: row["files"] for row in answers["q11"].records()}
    assert files["otrainset"].endswith("train.npz")


def test_real_loaders_read_local_files(example, tmp_path):
    import gzip
    import pickle
    import struct

    import numpy as np

    datasets = example("dataset_loaders")
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for name, array in (("train-images-idx3-ubyte", images),
                        ("train-labels-idx1-ubyte", np.array([7, 1], dtype=np.uint8)),
                        ("t10k-images-idx3-ubyte", images[:1]),
                        ("t10k-labels-idx1-ubyte", np.array([3], dtype=np.uint8))):
        header = struct.pack(">HBB", 0, 0x08, array.ndim)
        header += struct.pack(">" + "I" * array.ndim, *array.shape)
        with gzip.open(tmp_path / f"{name}.gz", "wb") as out:  # MNIST ships gzipped
            out.write(header + array.tobytes())
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(tmp_path)
    assert (x_train == images).all() and y_train.tolist() == [7, 1]
    assert x_test.shape == (1, 3, 3) and y_test.tolist() == [3]

    pixels = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for name in ("train", "test"):
        with (tmp_path / name).open("wb") as out:
            pickle.dump({b"data": pixels, b"fine_labels": [5, 9], b"coarse_labels": [1, 2]}, out)
    (x, y), _ = datasets.load_cifar100(tmp_path, label="coarse")
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 2]
    assert x[0, 0, 0].tolist() == [0, 1024 % 256, 2048 % 256]  # channel-first bytes to NHWC


def test_loaders_never_download(example, tmp_path):
    import pytest
    datasets = example("dataset_loaders")
    with pytest.raises(FileNotFoundError, match="does not download"):
        datasets.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not download"):
        datasets.load_cifar100(tmp_path)
