"""The data a training used, as the integrations record it ("which data did it use?", Q11).

Each dataset given to ``track_training(data=...)``, found in a Lightning trainer's data loaders
or in the arguments of Keras' ``fit`` becomes one element of the train task's input set
``itraindataset`` (the name a data-preparation step gives its raw inputs: ``i<step>dataset``),
described as :mod:`dlprov.capture.datasets` describes a step's data (``name``, ``kind``,
``shape``, ``n_records``, ``columns``, ``dtypes``, ``digest``, ``dataset_dir``), plus
``digest_of``, which says what the digest covers. Data that a step of the same run produced
(:func:`dlprov.step`, :func:`dlprov.prepare`) is not described again: the train task uses that
step's output set and depends on it, as a next step would.

What is found in what is given, and labelled as given (``train``, ``val[0]``, ``x``):

* pandas, NumPy, SciPy sparse data, and tensors (PyTorch, TensorFlow: read through NumPy);
* a path (``str`` or ``os.PathLike``) to a file or a folder, stored absolute in ``dataset_dir``;
* a ``DataLoader``: its ``dataset`` (a loader is never iterated);
* a ``TensorDataset``: each of its tensors; a dataset keeping ``data``/``targets`` (torchvision's
  MNIST, CIFAR): those, and its ``root`` folder; any other sized dataset (a ``Subset``, Keras'
  ``PyDataset``, ...): its kind and its length, without a digest;
* tuples, lists and dicts of these, a few levels deep.

Digests are bounded (:data:`MAX_DIGEST_BYTES`), so that recording never costs a pass over a
large dataset: data up to the bound is hashed whole, exactly as a step's data is
(:mod:`dlprov.capture.datasets`), and ``digest_of`` is ``all``; larger data is hashed as its
shape and :data:`SAMPLE_RECORDS` records evenly spaced from the first to the last
(``digest_of``: ``sample of 1024 of 60000 records (evenly spaced) and the shape``). A file is
hashed whole up to the bound, else its size and its first and last ``MAX_DIGEST_BYTES // 2``
bytes; a folder by the names and sizes of its files (at most :data:`MAX_FILES` of them).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dlprov.capture.dataprep import producer_of
from dlprov.capture.datasets import DATASET_ATTRIBUTES, Limits, describe, digest, kind_of
from dlprov.model.names import TRAIN
from dlprov.model.spec import Attribute, AttributeType

__all__ = ["TRAINING_DATA", "MAX_DIGEST_BYTES", "SAMPLE_RECORDS", "MAX_FILES", "DataElement",
           "training_data"]

#: The train task's set of the data it used (a step's raw inputs are ``i<step>dataset``).
TRAINING_DATA = f"i{TRAIN}dataset"
#: Data (or a file) up to this many bytes is hashed whole; larger, a sample of it is.
MAX_DIGEST_BYTES = 64 << 20
#: The records hashed (with the shape) of data larger than :data:`MAX_DIGEST_BYTES`.
SAMPLE_RECORDS = 1024
#: The most files of a folder whose names and sizes are hashed.
MAX_FILES = 10_000
ATTRIBUTES = (*DATASET_ATTRIBUTES, Attribute("digest_of", AttributeType.TEXT))

_MAX_DEPTH = 3
_MAX_ITEMS = 64
ALL = "all"


@dataclass
class DataElement:
    """One dataset a training used: its element of :data:`TRAINING_DATA` (``values``), or
    the step of the run that produced it (``producer``: (task, set tag))."""

    label: str
    values: dict[str, Any]
    producer: tuple[Any, str] | None = None


def training_data(data: Any, run: Any = None, label: str = "data") -> list[DataElement]:
    """The datasets in ``data`` (see the module's docstring), described; those a step of
    ``run`` produced name their producer instead. A dict's keys label its values
    (``{"train": x}``: ``train``); anything not recognised as data is left out."""
    found: list[DataElement] = []
    seen: set[int] = set()
    items = data.items() if isinstance(data, dict) else [(label, data)]
    for key, value in items:
        for name, obj in _datasets(value, str(key)):
            if id(obj) in seen:  # a loader and its dataset given both: once
                continue
            seen.add(id(obj))
            try:
                found.append(_element(name, obj, run))
            except Exception as exc:  # noqa: BLE001 - named, not described: never lost silently
                values = _empty(name, f"{type(obj).__module__}.{type(obj).__qualname__}")
                values["digest_of"] = f"none: it could not be read: {type(exc).__name__}: {exc}"
                found.append(DataElement(name, values))
    return found


# -- finding datasets ---------------------------------------------------------------------------

def _datasets(value: Any, label: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    if value is None:
        return
    if kind_of(value) is not None or _tensor(value) or isinstance(value, (str, os.PathLike)):
        yield label, value
        return
    if depth >= _MAX_DEPTH:
        return
    if isinstance(value, (tuple, list)) and len(value) <= _MAX_ITEMS:
        for i, item in enumerate(value):
            yield from _datasets(item, f"{label}[{i}]", depth + 1)
    elif isinstance(value, dict) and len(value) <= _MAX_ITEMS:
        for key, item in value.items():
            yield from _datasets(item, f"{label}[{key!r}]", depth + 1)
    elif _is_loader(value):
        yield from _datasets(value.dataset, label, depth + 1)
    elif isinstance(getattr(value, "tensors", None), tuple):  # torch's TensorDataset
        for i, tensor in enumerate(value.tensors):
            yield from _datasets(tensor, f"{label}[{i}]", depth + 1)
    elif _arrays_of(value):  # torchvision style: data, targets and a root folder
        for name, part in _arrays_of(value):
            yield f"{label}.{name}", part
        root = getattr(value, "root", None)
        if isinstance(root, (str, os.PathLike)) and os.path.exists(root):
            yield f"{label}.root", root
    elif _sized(value) is not None:
        yield label, value


def _is_loader(value: Any) -> bool:
    return hasattr(value, "dataset") and hasattr(value, "sampler") \
        and hasattr(value, "batch_size")


def _tensor(value: Any) -> bool:
    """A PyTorch or TensorFlow tensor (duck typed: never imported here)."""
    module = type(value).__module__
    return (module.startswith("torch") and hasattr(value, "detach")) or (
        module.startswith("tensorflow") and hasattr(value, "numpy") and hasattr(value, "shape"))


def _arrays_of(value: Any) -> list[tuple[str, Any]]:
    return [(name, part) for name in ("data", "targets")
            if (part := getattr(value, name, None)) is not None
            and (kind_of(part) is not None or _tensor(part))]


def _sized(value: Any) -> int | None:
    try:
        size = len(value)
    except Exception:  # noqa: BLE001 - no length (an iterator, a generator)
        return None
    return size if isinstance(size, int) else None


# -- describing one ---------------------------------------------------------------------------

def _element(label: str, obj: Any, run: Any) -> DataElement:
    if isinstance(obj, (str, os.PathLike)):
        return DataElement(label, _path_values(label, Path(obj)))
    kind = kind_of(obj)
    if kind is not None:
        return _data_element(label, obj, kind, run)
    if _tensor(obj):
        array = _as_numpy(obj)
        values = _data_element(label, array, "numpy.ndarray", None).values
        values["kind"] = f"{type(obj).__module__.split('.')[0]}.{type(obj).__name__}"
        return DataElement(label, values)
    size = _sized(obj)
    values = _empty(label, f"{type(obj).__module__}.{type(obj).__qualname__}")
    values["digest_of"] = "none: a dataset of this kind is not read to be hashed"
    if type(obj).__module__.split(".")[0] in ("keras", "tensorflow"):
        # a PyDataset's or tf.data.Dataset's length counts batches, not records
        values["digest_of"] += f" ({size} batches)" if size is not None else ""
    else:
        values.update(shape=[size], n_records=size)
    root = getattr(obj, "root", None)
    if isinstance(root, (str, os.PathLike)):
        values["dataset_dir"] = os.path.abspath(os.fspath(root))
    return DataElement(label, values)


def _data_element(label: str, obj: Any, kind: str, run: Any) -> DataElement:
    nbytes = _nbytes(obj)
    whole = nbytes is not None and nbytes <= MAX_DIGEST_BYTES
    described = describe(obj, Limits(max_digest_bytes=MAX_DIGEST_BYTES))
    if whole:
        found = producer_of(run, obj, described) if run is not None else None
        if found is not None:
            return DataElement(label, {}, found)
        values = described.values(label)
        values["digest_of"] = ALL if described.digest is not None else "none: not hashable"
        return DataElement(label, values)
    found = producer_of(run, obj, None) if run is not None else None  # by identity only
    if found is not None:
        return DataElement(label, {}, found)
    values = described.values(label)
    values["digest"], values["digest_of"] = _sample_digest(obj, kind, described.shape)
    return DataElement(label, values)


def _sample_digest(obj: Any, kind: str, shape: tuple[int, ...]) -> tuple[str | None, str]:
    """sha256 of ``shape`` and the digest (as :func:`dlprov.capture.datasets.digest`) of
    :data:`SAMPLE_RECORDS` records evenly spaced from the first to the last."""
    count = shape[0] if shape else 1
    take = min(count, SAMPLE_RECORDS)
    rows = sorted({(i * (count - 1)) // max(1, take - 1) for i in range(take)})
    try:
        if kind.startswith("pandas."):
            sample = obj.iloc[rows]
        elif kind.startswith("scipy.sparse"):
            sample = obj.tocsr()[rows]
        else:
            sample = obj[rows]
        found = hashlib.sha256(f"sample {list(shape)} {len(rows)}\n".encode())
        found.update(digest(sample).encode())
    except Exception:  # noqa: BLE001 - exotic data: described, not hashed
        return None, "none: not hashable"
    return found.hexdigest(), (f"sample of {len(rows)} of {count} records (evenly spaced) "
                               f"and the shape")


def _as_numpy(tensor: Any) -> Any:
    """A tensor as a NumPy array (a CPU tensor's memory, not a copy); a large one on an
    accelerator is first cut to the rows that are hashed."""
    module = type(tensor).__module__
    if module.startswith("tensorflow"):
        return tensor.numpy()
    tensor = tensor.detach()
    if tensor.device.type != "cpu" and tensor.nelement() * tensor.element_size() \
            > MAX_DIGEST_BYTES:
        raise ValueError("a large tensor on an accelerator: give its data on the CPU")
    return tensor.cpu().numpy()


def _nbytes(obj: Any) -> int | None:
    try:
        if kind_of(obj) == "pandas.DataFrame":
            return int(obj.memory_usage(index=True, deep=False).sum())
        if kind_of(obj) == "pandas.Series":
            return int(obj.memory_usage(index=True, deep=False))
        if hasattr(obj, "nbytes"):
            return int(obj.nbytes)
        return int(sum(getattr(obj, p).nbytes for p in ("data", "indices", "indptr")))
    except Exception:  # noqa: BLE001 - unknown: hashed as a sample
        return None


def _empty(label: str, kind: str) -> dict[str, Any]:
    values = dict.fromkeys(a.name for a in ATTRIBUTES)
    values.update(name=label, kind=kind)
    return values


def _path_values(label: str, path: Path) -> dict[str, Any]:
    path = path.absolute()
    if path.is_file():
        values = _empty(label, "file")
        size = path.stat().st_size
        values.update(shape=[size], dataset_dir=str(path))
        values["digest"], values["digest_of"] = _file_digest(path, size)
        return values
    if path.is_dir():
        values = _empty(label, "directory")
        values["dataset_dir"] = str(path)
        found, count = hashlib.sha256(), 0
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if count == MAX_FILES:
                    break
                file = Path(root, name)
                size = file.stat().st_size if file.is_file() else 0
                found.update(f"{file.relative_to(path).as_posix()}\x1f{size}\n".encode())
                count += 1
            if count == MAX_FILES:
                break
        more = "" if count < MAX_FILES else f" (the first {MAX_FILES} files: there are more)"
        values.update(n_records=None if count == MAX_FILES else count, digest=found.hexdigest(),
                      digest_of=f"names and sizes of its files{more}")
        return values
    values = _empty(label, "path")
    values.update(dataset_dir=str(path), digest_of="none: no such file or folder")
    return values


def _file_digest(path: Path, size: int) -> tuple[str, str]:
    found = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= MAX_DIGEST_BYTES:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                found.update(chunk)
            return found.hexdigest(), ALL
        half = MAX_DIGEST_BYTES // 2
        found.update(f"{size}\n".encode())
        found.update(handle.read(half))
        handle.seek(size - half)
        found.update(handle.read(half))
    return found.hexdigest(), f"its size and first and last {half} bytes"
