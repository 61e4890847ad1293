"""A local file that keeps records the store could not take, so that none is lost."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

_MARKERS = ("$datetime", "$dict")


def _encode(value: Any) -> Any:
    """JSON-ready ``value``: datetimes tagged, and a dict that looks like a tag escaped."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        encoded = {k: _encode(v) for k, v in value.items()}
        return {"$dict": encoded} if len(value) == 1 and next(iter(value)) in _MARKERS \
            else encoded
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    """The inverse of :func:`_encode` (top-down, so that an escaped dict stays as it was)."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        key, inner = next(iter(value.items()))
        if key == "$datetime":
            return datetime.fromisoformat(inner)
        if key == "$dict":
            return {k: _decode(v) for k, v in inner.items()}
    return {k: _decode(v) for k, v in value.items()}


class Spool:
    """Records appended as JSON lines to ``path``; read back in order by :meth:`load`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __bool__(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, records: Iterable[tuple]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(_encode(record), allow_nan=True))
                out.write("\n")
            out.flush()
            os.fsync(out.fileno())

    def load(self) -> list[tuple]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as lines:
            # A line cut short by a crash while appending is the only one that may not parse.
            records = []
            for line in lines:
                try:
                    records.append(tuple(_decode(json.loads(line))))
                except json.JSONDecodeError:
                    continue
            return records

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def spool_path_for(store_url: str) -> Path:
    """Where a process spools for a store: beside an SQLite file, else in the user's cache."""
    pid = os.getpid()
    if store_url.startswith("sqlite:///") and len(store_url) > len("sqlite:///"):
        database = Path(store_url[len("sqlite:///"):])
        return database.with_name(f"{database.name}.spool") / f"{pid}.jsonl"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlprov" / "spool"
    safe = "".join(c if c.isalnum() else "_" for c in store_url.split("@")[-1])[:80]
    return cache / safe / f"{pid}.jsonl"
