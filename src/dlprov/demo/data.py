"""The demo's data steps on scikit-learn's digits (shipped with scikit-learn: no download)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.data.astype(np.float32), digits.target.astype(np.int64)


def normalize(x: np.ndarray, method: str) -> np.ndarray:
    """``minmax`` scales pixels to [0, 1]; ``standard`` centres and scales each feature."""
    if method == "minmax":
        return x / 16.0  # digits pixels are 0..16
    if method == "standard":
        std = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    raise ValueError(f"unknown normalisation {method!r}")


def reduce_dimensions(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    return PCA(n_components=n_components, random_state=seed).fit_transform(x).astype(np.float32)


def one_hot(y: np.ndarray, n_classes: int = 10) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[y]


def split(x: np.ndarray, y: np.ndarray, sizes: tuple[float, float, float], seed: int):
    """Shuffle and cut into train, validation and test parts."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(sizes[0] * len(x))
    n_val = int(sizes[1] * len(x))
    parts = np.split(order, [n_train, n_train + n_val])
    return [(x[p], y[p]) for p in parts]


def save(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
