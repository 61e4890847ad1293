"""The background writer: capture calls enqueue, one thread per store batches into it.

Capture never waits on storage: :meth:`Recorder.put` is a queue append. The writer thread wakes
every ``flush_interval`` seconds (or at once when asked to flush), drains the queue and writes
what it found in one transaction. If the store fails, the batch goes to a spool file, the
failure is logged once and counted, and the spool is replayed first when the store answers again.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Callable

from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    MultipleResultsFound,
    NoResultFound,
)

from dlprov.errors import DlprovError, StoreUnavailable
from dlprov.recorder.spool import Batch, Spool, spool_path_for
from dlprov.store.store import Store

log = logging.getLogger("dlprov.recorder")

FLUSH_INTERVAL_ENV = "DLPROV_FLUSH_INTERVAL"
DEFAULT_FLUSH_INTERVAL = 1.0
MAX_BATCH = 50_000
RETRY_SECONDS = 5.0


class _Flush:
    """A marker in the queue: everything before it has been written (or spooled) when set."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


def _interval_from_env() -> float:
    text = os.environ.get(FLUSH_INTERVAL_ENV, "")
    try:
        return float(text) if text.strip() else DEFAULT_FLUSH_INTERVAL
    except ValueError:
        log.warning("dlprov: %s=%r is not a number of seconds; using %s", FLUSH_INTERVAL_ENV,
                    text, DEFAULT_FLUSH_INTERVAL)
        return DEFAULT_FLUSH_INTERVAL


class Recorder:
    """Batches records into one store from a daemon thread. Get one with :func:`recorder_for`."""

    def __init__(self, store: Store, flush_interval: float | None = None,
                 spool_path: str | os.PathLike | None = None) -> None:
        self.store = store
        if flush_interval is None:
            flush_interval = _interval_from_env()
        self.flush_interval = min(max(flush_interval, 0.01), 1.0)
        self.spool = Spool(Path(spool_path) if spool_path else spool_path_for(store.url))
        self.failures = 0
        self.written = 0
        self.rejected = 0
        self.rejected_path = self.spool.path.with_suffix(".rejected.jsonl")
        self._queue: SimpleQueue = SimpleQueue()
        self.put: Callable[[tuple], None] = self._queue.put  # the hot path: no wrapper call
        self._wake = threading.Event()
        self._stopping = False
        self._writer = None
        self._last_failure = 0.0
        self._thread = threading.Thread(target=self._run, name="dlprov-recorder", daemon=True)
        self._thread.start()

    # -- caller side ------------------------------------------------------------------------
    def flush(self, wait: bool = True, timeout: float | None = 30.0) -> bool:
        """Ask the writer to write everything queued so far; with ``wait``, block until it has
        (or ``timeout`` passed). Returns whether it finished in time."""
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        return marker.done.wait(timeout) if wait else True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread."""
        if self._thread.is_alive():
            self.flush(wait=True, timeout=timeout)
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            self._drain_once()
            if stopping:
                return

    def _drain_once(self) -> None:
        while True:
            batch, markers = [], []
            get = self._queue.get_nowait
            try:
                while len(batch) < MAX_BATCH:
                    item = get()
                    if type(item) is _Flush:
                        markers.append(item)
                    else:
                        batch.append(item)
            except Empty:
                pass
            if batch or ((markers or self._retry_due()) and self.spool):
                self._write(batch, force_retry=bool(markers))
            for marker in markers:
                marker.done.set()
            if len(batch) < MAX_BATCH:
                return

    def _retry_due(self) -> bool:
        return time.monotonic() - self._last_failure >= RETRY_SECONDS

    def _write(self, batch: list[tuple], force_retry: bool = False) -> None:
        # Each batch gets an id that the store notes in the transaction writing it: a batch whose
        # commit went through but whose acknowledgement was lost is spooled all the same, and
        # the replay then skips it instead of writing it twice.
        new: list[Batch] = [(uuid.uuid4().hex, batch)] if batch else []
        backlog = bool(self.spool)
        if backlog and not force_retry and not self._retry_due():
            self._spool(new)  # still failing recently: keep order, don't hammer the store
            return
        batches = (self.spool.load() if backlog else []) + new
        try:
            if self._writer is None:
                self._writer = self.store.writer()
        except Exception as exc:  # noqa: BLE001 - e.g. two processes creating the schema at once
            self._fail(exc, new)
            return
        try:
            written = self._writer.write_batches(batches)
        except Exception as exc:  # noqa: BLE001 - provenance must never break training
            if _store_unreachable(exc):
                self._fail(exc, new)
                return
            written = self._salvage(batches, exc)
            if written is None:
                return
        if backlog:
            self.spool.clear()
            log.warning("dlprov: store %s is back; %d spooled records replayed",
                        self.store.safe_url, sum(len(records) for _, records in batches) -
                        len(batch))
        self.written += written

    def _salvage(self, batches: list[Batch], exc: Exception) -> int | None:
        """The store answered but refused the batches for their content: write record by record
        and set aside, in a file of their own, those it refuses (and those that depend on them),
        so that one bad record does not hold back every later one. None if the store went away
        meanwhile: then the records not yet written are what the spool holds."""
        try:
            done = self._writer.applied(b for b, _ in batches if b is not None)
        except Exception as lookup_error:  # noqa: BLE001
            self._abandon(lookup_error, batches)
            return None
        singles: list[Batch] = [
            (None if b is None else f"{b}.{i}", [record])
            for b, records in batches if b not in done for i, record in enumerate(records)]
        rejected, written = [], 0
        for position, single in enumerate(singles):
            try:
                written += self._writer.write_batches([single])
            except Exception as record_error:  # noqa: BLE001
                if _store_unreachable(record_error):
                    self._set_aside(rejected, exc)
                    self._abandon(record_error, singles[position:])
                    return None
                rejected.extend(single[1])
        self._set_aside(rejected, exc)
        return written

    def _abandon(self, exc: Exception, batches: list[Batch]) -> None:
        """The store went away while salvaging: the spool holds exactly ``batches`` now."""
        self.spool.clear()
        self._fail(exc, batches)

    def _set_aside(self, rejected: list[tuple], exc: Exception) -> None:
        if not rejected:
            return
        self.rejected += len(rejected)
        Spool(self.rejected_path).append(rejected)
        log.error("dlprov: store %s refused %d records (%s: %s); they are kept in %s",
                  self.store.safe_url, len(rejected), type(exc).__name__, exc,
                  self.rejected_path)

    def _spool(self, batches: list[Batch]) -> None:
        for batch_id, records in batches:
            try:
                self.spool.append(records, batch_id)
            except OSError as spool_error:
                log.error("dlprov: cannot spool %d records to %s: %s", len(records),
                          self.spool.path, spool_error)

    def _fail(self, exc: Exception, batches: list[Batch]) -> None:
        self.failures += 1
        self._last_failure = time.monotonic()
        self._writer = None
        self._spool(batches)
        if self.failures == 1:
            log.warning("dlprov: cannot write provenance to %s (%s: %s); training goes on and "
                        "records are kept in %s until the store answers",
                        self.store.safe_url, type(exc).__name__, exc, self.spool.path)


# The store answered and refused what was sent: retrying the same records would fail again.
_REFUSALS = (IntegrityError, DataError, NoResultFound, MultipleResultsFound, DlprovError,
             KeyError, TypeError, ValueError)


def _store_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` may pass (a store down, locked, not a database yet): keep and retry."""
    return isinstance(exc, StoreUnavailable) or not isinstance(exc, _REFUSALS)


_recorders: dict[str, Recorder] = {}
_registry_lock = threading.Lock()


def recorder_for(store: Store) -> Recorder:
    """The process's recorder for ``store``'s URL, started on first use."""
    with _registry_lock:
        found = _recorders.get(store.url)
        if found is None:
            found = _recorders[store.url] = Recorder(store)
        return found


def close_all(timeout: float = 30.0) -> None:
    """Flush and stop every recorder of this process (run at interpreter exit)."""
    with _registry_lock:
        recorders = list(_recorders.values())
        _recorders.clear()
    for found in recorders:
        found.close(timeout)


def _forget_after_fork() -> None:
    # The writer thread does not exist in a forked child: start afresh there.
    global _registry_lock
    _recorders.clear()
    _registry_lock = threading.Lock()


atexit.register(close_all)
os.register_at_fork(after_in_child=_forget_after_fork)
