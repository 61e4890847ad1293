"""Real dataset loaders for the examples, reading files already on disk (never downloading).

``load_mnist(folder)`` reads the four IDX files of MNIST (optionally gzipped);
``load_cifar100(folder)`` reads the ``train`` and ``test`` pickles of CIFAR-100's python
version. The examples use generated data unless given ``--mnist DIR`` / ``--cifar100 DIR``.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _open(path: Path):
    gz = path.with_name(path.name + ".gz")
    if path.exists():
        return path.open("rb")
    if gz.exists():
        return gzip.open(gz, "rb")
    raise FileNotFoundError(f"{path} (or {gz.name}) not found: put the MNIST files there "
                            f"(this loader does not download)")


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format: magic, dimension sizes, then unsigned bytes)."""
    with _open(path) as stream:
        zero, dtype_code, dims = struct.unpack(">HBB", stream.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path}: not an IDX file of unsigned bytes")
        shape = struct.unpack(">" + "I" * dims, stream.read(4 * dims))
        data = np.frombuffer(stream.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def load_mnist(folder: str | Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                            tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from MNIST's IDX files in ``folder``."""
    folder = Path(folder)
    arrays = {key: read_idx(folder / name) for key, name in MNIST_FILES.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_cifar100(folder: str | Path, label: str = "fine"
                  ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) as NHWC uint8 images and ``fine``/``coarse``
    labels, from the ``train``/``test`` pickles of ``cifar-100-python`` in ``folder``."""
    parts = []
    for name in ("train", "test"):
        path = Path(folder) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: put CIFAR-100's python files there "
                                    f"(this loader does not download)")
        with path.open("rb") as stream:
            batch = pickle.load(stream, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[f"{label}_labels".encode()], dtype=np.int64)
        parts.append((images.transpose(0, 2, 3, 1), labels))
    return parts[0], parts[1]


def synthetic_images(n: int, classes: int, size: int = 16, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-like colour images made here: each class a blob of its own colour and place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    colours = rng.integers(40, 255, (classes, 3))
    centres = rng.integers(3, size - 3, (classes, 2))
    yy, xx = np.mgrid[:size, :size]
    images = rng.integers(0, 60, (n, size, size, 3)).astype(np.float32)
    for i, label in enumerate(labels):
        cy, cx = centres[label] + rng.integers(-1, 2, 2)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) <= 6
        images[i][blob] = colours[label]
    return images.astype(np.uint8), labels
