"""Replaying the files that processes left behind: batches they kept while their store was away
(``<pid>.jsonl``, beside the store or in the user's cache folder) and records the store refused
(``<pid>.rejected.jsonl``, given by name once the cause is fixed). Used by `dlprov replay`.

Each batch is written exactly once (see ``applied_batch``). What the store refuses now is set
aside, each record with its reason, and the rest written: a replay always makes progress.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dlprov.recorder.delivery import deliver
from dlprov.recorder.spool import Batch, Refusal, Spool, spool_folders
from dlprov.store.store import Store, as_store

REJECTED_SUFFIX = ".rejected.jsonl"


@dataclass
class FileReplay:
    """What happened to one file: records written, refused (kept, with their reasons, in
    ``rejected_to``), and left because the store went away (kept in the file itself)."""
    path: Path
    written: int = 0
    refused: int = 0
    left: int = 0
    rejected_to: Path | None = None
    reasons: list[str] = field(default_factory=list)
    outage: str | None = None


@dataclass
class ReplayReport:
    """What :func:`replay` did: files replayed in full (removed, or holding only what the store
    refused), files left (the store failed, or their process still runs), how many records
    were written or set aside, and files of refused records waiting to be replayed by name."""
    replayed: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    live: list[Path] = field(default_factory=list)
    written: int = 0
    rejected: int = 0
    files: list[FileReplay] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)


def _pid_of(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _folders(store: Store, path: str | os.PathLike | None) -> list[Path]:
    return [Path(path)] if path is not None else spool_folders(store.url)


def spool_files(store: Store, path: str | os.PathLike | None = None) -> list[Path]:
    """The spool files at ``path`` (a file, or a folder of ``<pid>.jsonl`` files), by default
    in every folder where processes writing to ``store`` spool (beside an SQLite store, and in
    the user's cache folder, where they go when the first cannot be written)."""
    found: list[Path] = []
    for root in _folders(store, path):
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.glob("*.jsonl") if _pid_of(p) is not None))
    return found


def rejected_files(store: Store, path: str | os.PathLike | None = None) -> list[Path]:
    """The files of refused records in the folders :func:`spool_files` looks in."""
    return [p for root in _folders(store, path) if root.is_dir()
            for p in sorted(root.glob("*" + REJECTED_SUFFIX))]


def replay(store: Store | str | os.PathLike | None = None,
           path: str | os.PathLike | None = None) -> ReplayReport:
    """Write to ``store`` the records kept in the files at ``path`` (see :func:`spool_files`)
    by processes that are gone; the files of live processes are theirs to replay. A file of
    refused records given by name is replayed too: what the store takes now is written, the
    rest stays in it."""
    store = as_store(store)
    report = ReplayReport()
    writer = None
    for spooled in spool_files(store, path):
        pid = _pid_of(spooled)
        if pid is not None and _alive(pid):
            report.live.append(spooled)
            continue
        try:
            writer = writer if writer is not None else store.writer()
        except Exception as exc:  # noqa: BLE001 - the store cannot be opened: keep the file
            report.files.append(FileReplay(spooled, left=len(Spool(spooled).records()),
                                           outage=f"{type(exc).__name__}: {exc}"))
            report.failed.append(spooled)
            continue
        try:
            done = _replay_file(writer, spooled)
        except OSError as exc:  # the file could not be rewritten: it stays as it was
            done = FileReplay(spooled, left=len(Spool(spooled).records()),
                              outage=f"cannot rewrite {spooled} ({exc}); it is kept as it was, "
                                     f"and replaying it again skips what was written")
        if done.outage is not None:
            writer = None
        report.files.append(done)
        report.written += done.written
        report.rejected += done.refused
        (report.failed if done.outage is not None else report.replayed).append(spooled)
    replayed = set(report.replayed)
    report.waiting = [p for p in rejected_files(store, path) if p not in replayed]
    return report


def _replay_file(writer, path: Path) -> FileReplay:
    spool = Spool(path)
    batches = spool.load()
    delivery = deliver(writer, batches)
    done = FileReplay(path, written=delivery.written, refused=len(delivery.refused),
                      left=sum(len(records) for _, records in delivery.pending),
                      reasons=sorted({reason for _, reason in delivery.refused}))
    if delivery.outage is not None:
        done.outage = f"{type(delivery.outage).__name__}: {delivery.outage}"
    refused = _as_batches(delivery.refused)
    if path.name.endswith(REJECTED_SUFFIX):
        # Refused again: they stay in this file, with the reason of this time, beside what
        # the store could not take for an outage; nothing else of the file is kept.
        spool.replace(refused + delivery.pending,
                      [[reason] for _, reason in delivery.refused] +
                      [None] * len(delivery.pending))
        done.rejected_to = path if refused else None
        return done
    if refused:
        done.rejected_to = path.with_name(path.name.removesuffix(".jsonl") + REJECTED_SUFFIX)
        Spool(done.rejected_to).extend([(b, records, [reason]) for (b, records), (_, reason)
                                        in zip(refused, delivery.refused)])
    spool.replace(delivery.pending)
    return done


def _as_batches(refused: list[Refusal]) -> list[Batch]:
    """Each refused record its own batch, with a fresh id: replaying it later writes it once."""
    return [(uuid.uuid4().hex, [record]) for record, _ in refused]
