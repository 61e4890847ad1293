"""A dataset as provenance sees it: kind, shape, columns, dtypes, a content digest and, on
request, the ids of its records, all bounded in size.

pandas, NumPy and SciPy are never imported here: an object of theirs can only exist once its
library is imported, so ``sys.modules`` says whether to look.

The digests, so that anyone can recompute them:

- pandas (DataFrame, Series): ``sha256(pd.util.hash_pandas_object(obj, index=True).values
  .tobytes())``; cells that cannot be hashed (lists, dicts) are hashed as their ``str()``.
- NumPy: ``sha256(f"numpy {a.dtype.str} {a.shape}\\n".encode() + a.tobytes())``; object arrays
  hash the ``repr()`` of each item instead of ``tobytes()`` (which would be addresses).
- SciPy sparse: ``data``, ``indices`` and ``indptr`` of the canonical CSR form (no stored
  zeros, duplicates summed, indices sorted) after ``f"scipy.sparse {dtype.str} {shape}\n"``.
- Record ids: an array's as NumPy's; pandas ids (an index or a column) as
  ``sha256(pd.util.hash_pandas_object(ids, index=False).values.tobytes())``.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from dlprov.model.spec import Attribute, AttributeType

# Every dataset set (a step's outputs, its raw inputs) has these attributes, declared up front
# so that a first element with NULLs (no record ids, no file) fixes nothing.
DATASET_ATTRIBUTES = (
    Attribute("name", AttributeType.TEXT),          # the argument or result it was: df, return[0]
    Attribute("kind", AttributeType.TEXT),          # pandas.DataFrame, numpy.ndarray, ...
    Attribute("shape", AttributeType.JSON),
    Attribute("n_records", AttributeType.NUMERIC),
    Attribute("columns", AttributeType.JSON),       # at most Limits.max_columns of them
    Attribute("dtypes", AttributeType.JSON),
    Attribute("digest", AttributeType.TEXT),        # sha256 of the content, as above
    Attribute("record_ids", AttributeType.JSON),    # at most Limits.max_ids, else NULL
    Attribute("record_ids_digest", AttributeType.TEXT),
    Attribute("dataset_dir", AttributeType.FILE),   # where the step saved it, if it said so
)

_CHUNK_BYTES = 64 << 20  # non-contiguous arrays are hashed in pieces of about this size


@dataclass(frozen=True)
class Limits:
    """How much of a dataset is described. ``record_ids``: ``"index"``, a column name (or, for a
    2-D array, a column number) whose values identify the records; up to ``max_ids`` of them are
    stored as a list, more as a count and a digest. ``max_columns`` bounds the stored column
    names and dtypes (``shape`` always has the true width). Data larger than
    ``max_digest_bytes`` is not hashed: it is then recognised by object identity alone."""

    record_ids: str | int | None = None
    max_ids: int = 1000
    max_columns: int = 1000
    max_digest_bytes: int | None = None


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Description:
    """What is recorded of one dataset."""

    kind: str
    shape: tuple[int, ...]
    columns: list | None
    dtypes: dict | str | None
    digest: str | None
    record_ids: list | None
    record_ids_digest: str | None
    schema: str  # a digest of every column name and dtype, however many

    @property
    def fingerprint(self) -> tuple | None:
        """The key under which a step's output is found again (None: no digest)."""
        if self.digest is None:
            return None
        return self.kind, self.shape, self.schema, self.digest

    @property
    def n_records(self) -> int:
        return self.shape[0] if self.shape else 1

    def values(self, name: str | None, path: str | None = None) -> dict[str, Any]:
        """The element of a dataset set describing it."""
        return {"name": name, "kind": self.kind, "shape": list(self.shape),
                "n_records": self.n_records, "columns": self.columns, "dtypes": self.dtypes,
                "digest": self.digest, "record_ids": self.record_ids,
                "record_ids_digest": self.record_ids_digest, "dataset_dir": path}


def kind_of(obj: Any) -> str | None:
    """``pandas.DataFrame``, ``pandas.Series``, ``numpy.ndarray``, ``scipy.sparse.<format>``,
    or None for anything that is not a dataset."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(obj, pd.DataFrame):
            return "pandas.DataFrame"
        if isinstance(obj, pd.Series):
            return "pandas.Series"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return "numpy.ndarray"
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(obj):
        return f"scipy.sparse.{type(obj).__name__}"
    return None


def describe(obj: Any, limits: Limits = DEFAULT_LIMITS) -> Description:
    """Describe ``obj`` (a dataset: see :func:`kind_of`)."""
    kind = kind_of(obj)
    if kind is None:
        raise TypeError(f"not a dataset: {type(obj).__name__} (dlprov describes pandas "
                        f"DataFrames and Series, NumPy arrays and SciPy sparse matrices)")
    shape = tuple(int(n) for n in obj.shape)
    columns, dtypes, schema = _columns(obj, kind, limits.max_columns)
    digest = None
    if limits.max_digest_bytes is None or _nbytes(obj, kind) <= limits.max_digest_bytes:
        digest = _safe_digest(obj, kind)
    ids = _record_ids(obj, kind, limits.record_ids)
    record_ids = ids_digest = None
    if ids is not None:
        ids_digest = _ids_digest(ids)
        if len(ids) <= limits.max_ids:
            record_ids = [_json_safe(v) for v in ids.tolist()]
    return Description(kind, shape, columns, dtypes, digest, record_ids, ids_digest, schema)


def digest(obj: Any) -> str:
    """The sha256 of a dataset's content (see the module's docstring for the recipe)."""
    kind = kind_of(obj)
    if kind is None:
        raise TypeError(f"not a dataset: {type(obj).__name__}")
    return _digest(obj, kind)


# -- digests ------------------------------------------------------------------------------------

def _digest(obj: Any, kind: str) -> str:
    if kind.startswith("pandas."):
        import pandas as pd
        try:
            hashed = pd.util.hash_pandas_object(obj, index=True)
        except TypeError:  # unhashable cells (lists, dicts): hash their text
            hashed = pd.util.hash_pandas_object(obj.astype(str), index=True)
        return hashlib.sha256(hashed.values.tobytes()).hexdigest()
    if kind == "numpy.ndarray":
        return _numpy_digest(obj)
    csr = obj.tocsr(copy=True)
    csr.eliminate_zeros()  # one canonical form for equal matrices, whatever their format
    csr.sum_duplicates()
    csr.sort_indices()
    found = hashlib.sha256(f"scipy.sparse {csr.dtype.str} {csr.shape}\n".encode())
    for part in (csr.data, csr.indices, csr.indptr):
        found.update(part.tobytes())
    return found.hexdigest()


def _safe_digest(obj: Any, kind: str) -> str | None:
    """The digest, or None where the data cannot be hashed at all (it is then linked to the
    step that made it by identity)."""
    try:
        return _digest(obj, kind)
    except Exception:  # noqa: BLE001 - exotic dtypes: describe the rest, link by identity
        return None


def _ids_digest(ids: Any) -> str | None:
    """Record ids: an array as :func:`_numpy_digest`, pandas ids by ``hash_pandas_object``
    without their index."""
    try:
        if kind_of(ids) == "numpy.ndarray":
            return _numpy_digest(ids)
        import pandas as pd
        try:
            hashed = pd.util.hash_pandas_object(ids, index=False)
        except TypeError:
            hashed = pd.util.hash_pandas_object(ids.astype(str), index=False)
        return hashlib.sha256(hashed.values.tobytes()).hexdigest()
    except Exception:  # noqa: BLE001 - ids that cannot be hashed: count and list only
        return None


def _numpy_digest(a: Any) -> str:
    import numpy as np
    found = hashlib.sha256(f"numpy {a.dtype.str} {a.shape}\n".encode())
    if a.dtype.hasobject:
        for item in a.ravel(order="C"):
            found.update(repr(item).encode())
            found.update(b"\x1f")
    elif a.flags.c_contiguous:
        found.update(a.reshape(-1).view(np.uint8))
    else:  # without copying it whole: rows in C order hash as tobytes() would
        rows = max(1, _CHUNK_BYTES // max(1, a[0].nbytes if a.ndim and len(a) else 1))
        for start in range(0, len(a), rows):
            found.update(np.ascontiguousarray(a[start:start + rows]).reshape(-1).view(np.uint8))
    return found.hexdigest()


def _nbytes(obj: Any, kind: str) -> int:
    if kind == "pandas.DataFrame":
        return int(obj.memory_usage(index=True, deep=False).sum())
    if kind == "pandas.Series":
        return int(obj.memory_usage(index=True, deep=False))
    if kind == "numpy.ndarray":
        return int(obj.nbytes)
    return int(sum(getattr(obj, part, None).nbytes for part in ("data", "indices", "indptr")
                   if getattr(obj, part, None) is not None))


# -- columns, dtypes, record ids ----------------------------------------------------------------

def _columns(obj: Any, kind: str, limit: int) -> tuple[list | None, dict | str | None, str]:
    """(columns, dtypes) bounded to ``limit`` columns, and a digest of all of them."""
    if kind == "pandas.DataFrame":
        everything = [(_label(c), str(t)) for c, t in zip(obj.columns, obj.dtypes)]
        kept = everything[:limit]
        columns = [c for c, _ in kept]
        dtypes = {str(c): t for c, t in kept}
    elif kind == "pandas.Series":
        everything = [(_label(obj.name), str(obj.dtype))]
        columns, dtypes = ([everything[0][0]] if obj.name is not None else None), str(obj.dtype)
    elif kind == "numpy.ndarray" and obj.dtype.names:  # structured: named fields
        everything = [(n, str(obj.dtype[n])) for n in obj.dtype.names]
        columns = [n for n, _ in everything[:limit]]
        dtypes = dict(everything[:limit])
    else:
        everything = [(None, str(obj.dtype))]
        columns, dtypes = None, str(obj.dtype)
    schema = hashlib.sha256(json.dumps(everything, default=str).encode()).hexdigest()
    return columns, dtypes, schema


def _record_ids(obj: Any, kind: str, which: str | int | None) -> Any:
    """The ids of the records (an Index, Series or array), or None."""
    if which is None:
        return None
    if kind.startswith("pandas."):
        if which == "index":
            return obj.index
        if kind == "pandas.DataFrame" and which in obj.columns and obj.columns.is_unique:
            return obj[which]
        return None
    if kind == "numpy.ndarray" and isinstance(which, int) and obj.ndim == 2 \
            and -obj.shape[1] <= which < obj.shape[1]:
        return obj[:, which]
    if kind == "numpy.ndarray" and isinstance(which, str) and obj.dtype.names \
            and which in obj.dtype.names:
        return obj[which]
    return None


def _label(value: Any) -> Any:
    """A column label as JSON can hold it."""
    if isinstance(value, tuple):
        return [_label(v) for v in value]
    return _json_safe(value, text=True)


def _json_safe(value: Any, text: bool = False) -> Any:
    """A scalar as JSON can hold it: NaN and inf become None; other objects their text."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value) if text or not isinstance(value, (list, dict)) else value
