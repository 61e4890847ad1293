"""Replaying the spool files that processes left behind when they died before their store
answered again (`dlprov replay`). Each batch is written exactly once: see ``applied_batch``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dlprov.recorder.recorder import Recorder
from dlprov.recorder.spool import spool_path_for
from dlprov.store.store import Store, as_store


@dataclass
class ReplayReport:
    """What :func:`replay` did: files replayed (and removed), files left (the store failed, or
    their process still runs), and how many records were written or set aside."""
    replayed: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    live: list[Path] = field(default_factory=list)
    written: int = 0
    rejected: int = 0


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


def spool_files(store: Store, path: str | os.PathLike | None = None) -> list[Path]:
    """The spool files at ``path`` (a file, or a folder of ``<pid>.jsonl`` files), by default
    the folder where processes writing to ``store`` spool."""
    root = Path(path) if path is not None else spool_path_for(store.url).parent
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*.jsonl") if _pid_of(p) is not None)


def replay(store: Store | str | os.PathLike | None = None,
           path: str | os.PathLike | None = None) -> ReplayReport:
    """Write to ``store`` the records spooled in the files at ``path`` (see :func:`spool_files`)
    by processes that are gone; the files of live processes are theirs to replay."""
    store = as_store(store)
    report = ReplayReport()
    for spooled in spool_files(store, path):
        pid = _pid_of(spooled)
        if pid is not None and _alive(pid):
            report.live.append(spooled)
            continue
        recorder = Recorder(store, spool_path=spooled)
        try:
            recorder.flush(wait=True, timeout=None)  # the writer replays its spool first
        finally:
            recorder.close()
        report.written += recorder.written
        report.rejected += recorder.rejected
        (report.failed if recorder.spool else report.replayed).append(spooled)
    return report
