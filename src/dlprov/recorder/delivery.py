"""Writing batches to a store so that one refused record holds back nothing else.

Shared by the recorder thread and `dlprov replay`. The batches go in one transaction; when the
database refuses it for its content, they are written in halves, each half in its own
transaction, down to the records it refuses, which are set aside with the reason. Each piece has
an id derived from its batch's (``<batch>.<first>-<end>``), noted with it in ``applied_batch``,
so that a piece is written exactly once however often the same batch is split again. When the
store goes away meanwhile, what is not yet written is handed back, in order, to be kept.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from dlprov.model import records as r
from dlprov.recorder.spool import Batch, Refusal
from dlprov.store.recall import Recall
from dlprov.store.refusal import is_refusal, reason_of


@dataclass
class Delivery:
    """What :func:`deliver` did: records written, records refused (with the reason), and the
    batches not written because the store went away (``outage``: why), in order."""
    written: int = 0
    refused: list[Refusal] = field(default_factory=list)
    pending: list[Batch] = field(default_factory=list)
    outage: BaseException | None = None


class _Outage(Exception):
    def __init__(self, cause: BaseException, pending: list[Batch]) -> None:
        super().__init__(str(cause))
        self.cause, self.pending = cause, pending


def deliver(writer: Any, batches: list[Batch], recall: Recall | None = None) -> Delivery:
    """Write ``batches`` with ``writer`` (a StoreWriter or HttpWriter). Never raises for what
    the store does: an outage before anything was written hands back ``batches`` itself as
    ``pending``."""
    done = Delivery()
    try:
        _apply(writer, batches, done)
        return done
    except Exception as exc:  # noqa: BLE001 - sorted: refusal or outage
        if not is_refusal(exc):
            return Delivery(pending=batches, outage=exc)
        refusal = exc
    try:
        applied = writer.applied([b for b, _ in batches if b is not None])
    except Exception as exc:  # noqa: BLE001
        return Delivery(pending=batches, outage=exc)
    todo = [(b, records) for b, records in batches if b is None or b not in applied]
    for index, (batch_id, records) in enumerate(todo):
        try:  # one batch alone was just refused: split it at once
            _split(writer, batch_id, records, 0, len(records), done, recall,
                   refused=refusal if len(todo) == 1 else None)
        except _Outage as stop:
            done.pending, done.outage = stop.pending + todo[index + 1:], stop.cause
            return done
    return done


def _apply(writer: Any, batches: list[Batch], done: Delivery) -> None:
    if hasattr(writer, "apply_batches"):
        applied = writer.apply_batches(batches)
        done.written += applied.written
        done.refused.extend(applied.refused)
    else:
        done.written += writer.write_batches(batches)


def _split(writer: Any, batch_id: str | None, records: list[tuple], lo: int, hi: int,
           done: Delivery, recall: Recall | None, refused: BaseException | None = None) -> None:
    """Write ``records[lo:hi]`` as one piece or, if the database refuses it (``refused``: it
    just did, with that error), its halves, down to the records it refuses."""
    if hi <= lo:
        return
    if refused is None:
        piece = (piece_id(batch_id, lo, hi), records[lo:hi])
        try:
            _apply(writer, [piece], done)
            return
        except Exception as exc:  # noqa: BLE001
            if not is_refusal(exc):
                raise _Outage(exc, [piece]) from None
            refused = exc
    if hi - lo == 1:
        reason = reason_of(refused)
        done.refused.append((records[lo], reason))
        if recall is not None and records[lo][0] in (r.EXEC_START, r.TASK_START):
            recall.refused_keys[records[lo][1]] = reason  # its dependants: refused at once
        return
    middle = (lo + hi) // 2
    try:
        _split(writer, batch_id, records, lo, middle, done, recall)
    except _Outage as stop:
        stop.pending.append((piece_id(batch_id, middle, hi), records[middle:hi]))
        raise
    _split(writer, batch_id, records, middle, hi, done, recall)


def piece_id(batch_id: str | None, lo: int, hi: int) -> str | None:
    """The id of records ``lo:hi`` of batch ``batch_id``, counted from the batch it was first
    cut from: a piece cut again keeps ids that short and that stable."""
    if batch_id is None:
        return None
    base, _, span = batch_id.partition(".")
    try:
        offset = int(span.split("-")[0]) if span else 0
    except ValueError:  # not an id of ours: a stable short one from it
        base, offset = hashlib.sha256(batch_id.encode()).hexdigest()[:32], 0
    return f"{base[:40]}.{offset + lo}-{offset + hi}"
