"""A local file that keeps records the store could not take, so that none is lost."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

_MARKERS = ("$datetime", "$dict")


# Values both functions hand back unchanged. A dict or list holding only such values (the values
# of an element, mostly) is handed back itself, not copied: the records of a batch are mostly
# numbers and short strings, and the HTTP client and the server encode and decode every one.
_PLAIN = frozenset({str, int, float, bool, type(None)})
_all_plain = _PLAIN.issuperset


def encode(value: Any) -> Any:
    """JSON-ready ``value``: datetimes tagged, and a dict that looks like a tag escaped. The
    result may share lists and dicts with ``value``: serialise it, do not change it."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _MARKERS:
            return {"$dict": {k: encode(v) for k, v in value.items()}}
        if _all_plain(map(type, value.values())):
            return value
        return {k: v if type(v) in _PLAIN else encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (top-down, so that an escaped dict stays as it was). The
    result may share lists and dicts with ``value``."""
    if isinstance(value, list):
        if _all_plain(map(type, value)):
            return value
        return [v if type(v) in _PLAIN else decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        key, inner = next(iter(value.items()))
        if key == "$datetime":
            return datetime.fromisoformat(inner)
        if key == "$dict":
            return {k: v if type(v) in _PLAIN else decode(v) for k, v in inner.items()}
    if _all_plain(map(type, value.values())):
        return value
    return {k: v if type(v) in _PLAIN else decode(v) for k, v in value.items()}


BATCH = "$batch"  # a spool line ``["$batch", batch_id]``: the records after it form that batch

Batch = tuple[str | None, list[tuple]]  # (batch id, records); the id makes replay exactly-once


class Spool:
    """Batches appended as JSON lines to ``path`` (a ``["$batch", id]`` line, then one line per
    record); read back in order by :meth:`load`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __bool__(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, records: Iterable[tuple], batch_id: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            if batch_id is not None:
                out.write(json.dumps([BATCH, batch_id]))
                out.write("\n")
            for record in records:
                out.write(json.dumps(encode(record), allow_nan=True))
                out.write("\n")
            out.flush()
            os.fsync(out.fileno())

    def load(self) -> list[Batch]:
        """The spooled batches in order; records spooled without an id form batches of id None."""
        if not self.path.exists():
            return []
        batches: list[Batch] = []
        with self.path.open(encoding="utf-8") as lines:
            # A line cut short by a crash while appending is the only one that may not parse.
            for line in lines:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(item, list) and len(item) == 2 and item[0] == BATCH:
                    batches.append((item[1], []))
                    continue
                if not batches:
                    batches.append((None, []))
                batches[-1][1].append(tuple(decode(item)))
        return batches

    def records(self) -> list[tuple]:
        """Every spooled record, in order, without the batch boundaries."""
        return [record for _, records in self.load() for record in records]

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
