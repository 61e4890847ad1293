"""Local files that keep records the store could not take, so that none is lost.

A :class:`Spool` is one file of JSON lines. A :class:`SpoolChain` keeps a recorder's records
where it can: the file beside the store, else one in the user's cache folder, else memory up to
a bound; it says where each time that changes, and counts truthfully what it could keep nowhere.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from dlprov.errors import DlprovError
from dlprov.localfiles import cache_root, private_cache

log = logging.getLogger("dlprov.recorder")

MEMORY_ENV = "DLPROV_SPOOL_MEMORY"
DEFAULT_MEMORY_RECORDS = 100_000
LOST_REPORT_SECONDS = 30.0

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


BATCH = "$batch"      # a spool line ``["$batch", batch_id]``: the records after it form that batch
REFUSED = "$refused"  # ``["$refused", reason]``: the store refused the record on the next line

Batch = tuple[str | None, list[tuple]]  # (batch id, records); the id makes replay exactly-once
Refusal = tuple[tuple, str]              # (record, why the store refused it)


def _line(item: Any) -> str:
    # A value JSON cannot hold (capture lets none through; a DfAnalyzer client might) is kept
    # as its repr rather than losing the record with it.
    return json.dumps(item, allow_nan=True, default=repr) + "\n"


class Spool:
    """Batches appended as JSON lines to ``path`` (a ``["$batch", id]`` line, then one line per
    record, each refused one after a ``["$refused", reason]`` line); read back in order by
    :meth:`load`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __bool__(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def append(self, records: Iterable[tuple], batch_id: str | None = None,
               reasons: Iterable[str] | None = None) -> None:
        """Append one batch (``reasons``: one per record, for records the store refused)."""
        self.extend([(batch_id, list(records), None if reasons is None else list(reasons))])

    def extend(self, batches: list[tuple[str | None, list[tuple], list[str] | None]]) -> None:
        """Append ``(batch id, records, reasons or None)`` batches with one sync to disk. Written
        whole or, if the disk fails half way, cut back to what the file held: a batch is never
        kept in part. Raises OSError."""
        text = []
        for batch_id, records, reasons in batches:
            if batch_id is not None:
                text.append(_line([BATCH, batch_id]))
            for i, record in enumerate(records):
                if reasons is not None:
                    text.append(_line([REFUSED, reasons[i]]))
                text.append(_line(encode(record)))
        data = "".join(text).encode("ascii")  # json.dumps escapes everything else
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Bytes through the descriptor, not a buffered text file: when the disk fills half way,
        # the file is cut back to its size before (a text file's truncate flushes first, fails
        # again, and leaves the batch in part: replayed beside its whole copy, a duplicate).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def load(self) -> list[Batch]:
        """The spooled batches in order; records spooled without an id form batches of id None."""
        return [(b, [record for record, _ in items]) for b, items in self._read()]

    def refusals(self) -> list[tuple[str | None, list[Refusal]]]:
        """The batches with each record's refusal reason ("" where none was noted)."""
        return self._read()

    def _read(self) -> list[tuple[str | None, list[Refusal]]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        batches: list[tuple[str | None, list[Refusal]]] = []
        reason = ""
        # A line cut short by a crash while appending is the only one that may not parse.
        for line in lines:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, list) and len(item) == 2 and item[0] == BATCH:
                batches.append((item[1], []))
                continue
            if isinstance(item, list) and len(item) == 2 and item[0] == REFUSED:
                reason = str(item[1])
                continue
            if not batches:
                batches.append((None, []))
            batches[-1][1].append((tuple(decode(item)), reason))
            reason = ""
        return batches

    def records(self) -> list[tuple]:
        """Every spooled record, in order, without the batch boundaries."""
        return [record for _, records in self.load() for record in records]

    def replace(self, batches: list[Batch], reasons: list[list[str]] | None = None) -> None:
        """Make the file hold exactly ``batches`` (removed if none), atomically: written to a
        temporary file beside it, then renamed over it."""
        if not batches:
            self.clear()
            return
        temporary = Spool(self.path.with_name(self.path.name + ".new"))
        temporary.clear()
        for i, (batch_id, records) in enumerate(batches):
            temporary.append(records, batch_id, None if reasons is None else reasons[i])
        os.replace(temporary.path, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _store_folder_name(store_url: str) -> str:
    """A folder name for a store: readable, and distinct for distinct URLs."""
    address = store_url.split("@")[-1]
    safe = "".join(c if c.isalnum() else "_" for c in address)[:60]
    return f"{safe}-{hashlib.sha256(store_url.encode()).hexdigest()[:8]}"


def cache_spool_folder(store_url: str) -> Path:
    """The folder in the user's cache where processes writing to ``store_url`` spool when they
    cannot beside the store (made only when a spool is written there)."""
    return cache_root() / "spool" / _store_folder_name(store_url)


def spool_path_for(store_url: str, pid: int | None = None) -> Path:
    """Where a process spools for a store: beside an SQLite file, else in the user's cache."""
    pid = os.getpid() if pid is None else pid
    if store_url.startswith("sqlite:///") and len(store_url) > len("sqlite:///"):
        database = Path(store_url[len("sqlite:///"):])
        return database.with_name(f"{database.name}.spool") / f"{pid}.jsonl"
    return cache_spool_folder(store_url) / f"{pid}.jsonl"


def spool_folders(store_url: str) -> list[Path]:
    """Every folder where processes writing to ``store_url`` may have spooled."""
    found = [spool_path_for(store_url, 0).parent, cache_spool_folder(store_url)]
    return list(dict.fromkeys(found))


def _memory_bound() -> int:
    text = os.environ.get(MEMORY_ENV, "")
    try:
        return max(int(text), 0) if text.strip() else DEFAULT_MEMORY_RECORDS
    except ValueError:
        log.warning("dlprov: %s=%r is not a number of records; using %d", MEMORY_ENV, text,
                    DEFAULT_MEMORY_RECORDS)
        return DEFAULT_MEMORY_RECORDS


class SpoolChain:
    """Where a recorder keeps batches it could not write: ``path`` (beside the store), else the
    same file name in the user's cache folder, else memory up to ``$DLPROV_SPOOL_MEMORY``
    records (100,000 by default). Once a place fails, later batches go to the next one until
    the backlog is written, so :meth:`load` gives them back in the order they came. What no
    place could take is counted in :attr:`lost` and logged as an error, with the count."""

    def __init__(self, path: Path, store_url: str, what: str = "records") -> None:
        self.path = Path(path)
        self.what = what
        self.places = [Spool(self.path)]
        fallback = cache_spool_folder(store_url) / self.path.name
        if fallback != self.path:
            self.places.append(Spool(fallback))
        self.held: list[tuple[str | None, list[tuple], list[str] | None]] = []
        self.held_records = 0
        self.bound = _memory_bound()
        self.lost = 0
        self._level = 0  # the first place that may take the next batch
        self._lost_told = -LOST_REPORT_SECONDS
        self._told: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.held) or any(self.places)

    @property
    def where(self) -> str:
        """Where the next batch goes, in words."""
        if self._level < len(self.places):
            return str(self.places[self._level].path)
        return f"memory (up to {self.bound} {self.what}; nothing could be written to disk)"

    def append(self, records: list[tuple], batch_id: str | None = None,
               reasons: list[str] | None = None) -> None:
        """Keep one batch (see :meth:`extend`)."""
        self.extend([(batch_id, list(records), reasons)])

    def extend(self, batches: list[tuple[str | None, list[tuple], list[str] | None]]) -> None:
        """Keep batches: on disk if a place takes them, else in memory, else count them lost."""
        batches = [b for b in batches if b[1] or b[0] is not None]
        if not batches:
            return
        while self._level < len(self.places):
            spool = self.places[self._level]
            try:
                if self._level > 0:  # the cache folder: private to the user
                    private_cache("spool", spool.path.parent.name)
                spool.extend(batches)
                return
            except (OSError, DlprovError) as exc:
                self._level += 1
                self._tell(f"place {self._level}", log.warning,
                           "dlprov: cannot keep %s in %s (%s); they are kept in %s instead",
                           self.what, spool.path, exc, self.where)
        for batch in batches:
            if self.held_records + len(batch[1]) <= self.bound:
                self.held.append(batch)
                self.held_records += len(batch[1])
                continue
            self.lost += len(batch[1])
            now = time.monotonic()
            if now - self._lost_told >= LOST_REPORT_SECONDS:  # loud, but not once per batch
                self._lost_told = now
                log.error("dlprov: %d %s LOST so far in this process: no disk place could take "
                          "them and memory holds its bound (%d %s, %s)", self.lost, self.what,
                          self.held_records, self.what, MEMORY_ENV)

    def settle(self) -> None:
        """Move the batches held in memory to disk if a place takes them now (after the batches
        already there, so that the order holds)."""
        if not self.held:
            return
        occupied = [i for i, place in enumerate(self.places) if place]
        start = occupied[-1] if occupied else 0
        for level in range(start, len(self.places)):
            spool = self.places[level]
            try:
                if level > 0:
                    private_cache("spool", spool.path.parent.name)
                spool.extend(self.held)
            except (OSError, DlprovError):
                continue  # extend() kept nothing of them there: try the next place
            count = self.held_records
            self.held, self.held_records, self._level = [], 0, level
            self._told = {t for t in self._told if not t.startswith("place")}
            log.warning("dlprov: %d %s held in memory are now kept in %s", count, self.what,
                        spool.path)
            return

    def load(self) -> list[Batch]:
        """Every kept batch, in the order they came."""
        return [b for place in self.places for b in place.load()] + [
            (batch_id, records) for batch_id, records, _ in self.held]

    def clear(self) -> None:
        """Forget every kept batch (they were written). Later batches go to the first place
        again."""
        for place in self.places:
            try:
                place.clear()
            except OSError as exc:
                log.error("dlprov: cannot remove %s (%s); its batches were written, and a "
                          "replay would skip them", place.path, exc)
        self.held, self.held_records, self._level = [], 0, 0
        self._told.clear()

    def _tell(self, situation: str, say, *args) -> None:
        """Log a situation once until the chain is cleared."""
        if situation not in self._told:
            self._told.add(situation)
            say(*args)
