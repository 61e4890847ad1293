"""The background writer: capture calls enqueue, one thread per store batches into it.

Capture never waits on storage: :meth:`Recorder.put` is a queue append. The writer thread wakes
every ``flush_interval`` seconds (or at once when asked to flush), drains the queue and writes
what it found in one transaction. A record the store refuses is set aside, with the reason, in
a file of its own and holds back nothing else (see :mod:`.delivery`). If the store is away, the
batch is kept (see :class:`~.spool.SpoolChain`), the outage is logged once, and what was kept is
written first when the store answers again.

A forked child that records into a run or task of its parent gets a recorder of its own: see
:func:`_before_fork` and :func:`_rearm_in_child`.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Callable

from dlprov.recorder.delivery import Delivery, deliver
from dlprov.recorder.spool import Batch, Refusal, SpoolChain, spool_path_for
from dlprov.store.recall import Recall
from dlprov.store.store import Store

log = logging.getLogger("dlprov.recorder")

FLUSH_INTERVAL_ENV = "DLPROV_FLUSH_INTERVAL"
DEFAULT_FLUSH_INTERVAL = 1.0
MAX_BATCH = 50_000
RETRY_SECONDS = 5.0
FORK_FLUSH_SECONDS = 10.0  # how long a fork waits for the parent's records to be written


class _Flush:
    """A marker in the queue: everything before it has been written (or kept) when set."""

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
        #: the starts of this process's live runs, sent again to a store that lost them
        self.recall = Recall()
        self._queue: SimpleQueue = SimpleQueue()
        self.put: Callable[[tuple], None] = self._queue.put  # the hot path: no wrapper call
        self._arm(spool_path)

    def _arm(self, spool_path: str | os.PathLike | None = None) -> None:
        """Fresh state and a writer thread (at start, and in a forked child)."""
        path = Path(spool_path) if spool_path else spool_path_for(self.store.url)
        #: where batches the store could not take are kept (beside the store, cache, memory)
        self.spool = SpoolChain(path, self.store.url)
        self.rejected_path = path.with_suffix(".rejected.jsonl")
        #: where records the store refused are kept, each with its reason
        self.rejects = SpoolChain(self.rejected_path, self.store.url, what="refused records")
        self.failures = 0
        self.written = 0
        self.rejected = 0
        self._writer = None
        self._last_failure = 0.0
        self._outage_told = False
        self._resent_told = 0
        self._lost_told = 0
        self._wake = threading.Event()
        self._busy = threading.Lock()  # held while writing: a fork waits for it
        self._stopping = False
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
        """Write what is queued and stop the thread; say what could not be kept."""
        if self._thread.is_alive():
            self.flush(wait=True, timeout=timeout)
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
        writer = self._writer
        if writer is not None and not self._thread.is_alive() and not self.spool:
            # the next recorder of this store in the process starts with what it knew
            getattr(writer, "hand_back", lambda: None)()
        for chain in (self.spool, self.rejects):
            chain.settle()
            if chain.held_records or chain.lost > (self._lost_told if chain is self.spool else 0):
                log.error("dlprov: %d %s for %s are LOST with this process: %d were held in "
                          "memory (no disk place could take them) and %d could not even be "
                          "held", chain.held_records + chain.lost, chain.what,
                          self.store.safe_url, chain.held_records, chain.lost)

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            with self._busy:
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
        # commit went through but whose acknowledgement was lost is kept all the same, and
        # the replay then skips it instead of writing it twice.
        new: list[Batch] = [(uuid.uuid4().hex, batch)] if batch else []
        backlog = bool(self.spool)
        if backlog and not force_retry and not self._retry_due():
            self._keep(new)  # still failing recently: keep order, don't hammer the store
            return
        kept = self.spool.load() if backlog else []
        batches = kept + new
        delivery = self._deliver(batches)
        if delivery.outage is not None:
            if delivery.pending is batches:  # nothing written: the backlog stays where it is
                self._keep(new)
            else:
                self.spool.clear()
                self._keep(delivery.pending)
            self._fail(delivery.outage)
        elif backlog:
            self.spool.clear()
            self._outage_told = False
            log.warning("dlprov: store %s is back; %d kept records written",
                        self.store.safe_url, sum(len(records) for _, records in kept))
            if self.spool.lost > self._lost_told:
                log.error("dlprov: %d records were LOST while store %s was away and no disk "
                          "place could keep them (%d in all in this process)",
                          self.spool.lost - self._lost_told, self.store.safe_url,
                          self.spool.lost)
                self._lost_told = self.spool.lost
        self.written += delivery.written
        self._set_aside(delivery.refused)
        self._tell_resent()

    def _deliver(self, batches: list[Batch]) -> Delivery:
        """:func:`deliver` with this recorder's writer. A writer that worked before and now
        fails gets one immediate retry with a fresh writer: the store may have been replaced
        under it (a file removed and made again), which a fresh writer sees."""
        while True:
            fresh = self._writer is None
            try:
                if fresh:
                    self._writer = self.store.writer(recall=self.recall)
            except Exception as exc:  # noqa: BLE001 - e.g. two processes creating the schema
                self._writer = None
                return Delivery(pending=batches, outage=exc)
            delivery = deliver(self._writer, batches, self.recall)
            if delivery.outage is None:
                return delivery
            self._writer = None
            if fresh or delivery.pending is not batches:
                return delivery

    def _keep(self, batches: list[Batch]) -> None:
        self.spool.extend([(batch_id, records, None) for batch_id, records in batches])

    def _set_aside(self, refused: list[Refusal]) -> None:
        if not refused:
            return
        self.rejected += len(refused)
        # Each record its own batch, with a fresh id: replaying the file writes each once.
        self.rejects.extend([(uuid.uuid4().hex, [record], [reason])
                             for record, reason in refused])
        reasons = sorted({reason for _, reason in refused})
        log.error("dlprov: store %s refused %d records (%s%s); the rest was written. They are "
                  "kept, each with its reason, in %s: `dlprov replay` that file once the cause "
                  "is fixed", self.store.safe_url, len(refused), reasons[0],
                  f"; and {len(reasons) - 1} other reasons" if len(reasons) > 1 else "",
                  self.rejects.where)

    def _tell_resent(self) -> None:
        resent = self.recall.resent
        if len(resent) > self._resent_told:
            log.warning("dlprov: store %s had lost %s that this process is still recording "
                        "(its file replaced or removed?): they were recorded there again, with "
                        "the records from now on; what was written before is not in it",
                        self.store.safe_url, ", ".join(resent[self._resent_told:][:5]))
            self._resent_told = len(resent)

    def _fail(self, exc: BaseException) -> None:
        self.failures += 1
        self._last_failure = time.monotonic()
        self._writer = None
        self.spool.settle()
        if not self._outage_told:  # once per outage, not once per process
            self._outage_told = True
            log.warning("dlprov: cannot write provenance to %s (%s: %s); training goes on and "
                        "records are kept in %s until the store answers",
                        self.store.safe_url, type(exc).__name__, exc, self.spool.where)

    # -- forks ------------------------------------------------------------------------------
    def _hold_for_fork(self) -> bool:
        """Write what is queued and hold the writer between batches; False if it did not
        stop in time (the fork goes on: the child drops its copy of the queue anyway)."""
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            return False
        self.flush(wait=True, timeout=FORK_FLUSH_SECONDS)
        return self._busy.acquire(timeout=FORK_FLUSH_SECONDS)

    def _rearm_in_child(self) -> None:
        """In a forked child: the parent's thread is gone and the queued records are the
        parent's to write. Keep the queue (the runs and tasks the child inherited put into
        it), drop its items, and start a writer thread with a spool of this process's own."""
        try:
            while True:
                self._queue.get_nowait()
        except Empty:
            pass
        self.recall = self.recall.copy()
        self._arm()


# -- the process's recorders ------------------------------------------------------------------
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


_held: list[Recorder] = []


class _ChildFinalizer:
    """Registered with multiprocessing's after-fork hooks (weakly: this one lives forever)."""


_child_finalizer = _ChildFinalizer()
_finalizer_registered = False
_registry_taken = False


def _before_fork() -> None:
    # The parent's task and execution rows must be in the store before a child records
    # elements into them; and no writer may be mid-transaction at the fork.
    global _finalizer_registered, _registry_taken
    _registry_taken = _registry_lock.acquire(timeout=FORK_FLUSH_SECONDS)
    for found in _recorders.values():
        if found._hold_for_fork():
            _held.append(found)
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _finalizer_registered:
        # A multiprocessing child ends with os._exit: no atexit. Its bootstrap runs these
        # hooks after clearing the finalizers it inherited, then runs finalizers at exit.
        util.register_after_fork(_child_finalizer, _finalize_in_child)
        _finalizer_registered = True


def _after_fork_in_parent() -> None:
    global _registry_taken
    while _held:
        _held.pop()._busy.release()
    if _registry_taken:
        _registry_taken = False
        _registry_lock.release()


def _rearm_in_child() -> None:
    global _registry_lock, _registry_taken
    _registry_lock, _registry_taken = threading.Lock(), False
    _held.clear()
    for found in _recorders.values():
        found._rearm_in_child()


def _finalize_in_child(_token: object) -> None:
    from multiprocessing.util import Finalize
    Finalize(None, close_all, exitpriority=10)


atexit.register(close_all)
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_rearm_in_child)
