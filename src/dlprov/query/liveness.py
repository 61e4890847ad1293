"""Whether an execution or task stored as running still has a process behind it.

A process killed with SIGKILL (or by the OOM killer, or a lost node) cannot record its end: its
execution and tasks stay ``running`` in the store. Readers show them as ``unknown`` when the
process that ran them is known to be gone: it ran on this host and its pid is no longer alive.
On another host that cannot be told from here, and the stored status is shown. (A pid reused by
a new process since would keep such a run ``running``: pids wrap slowly, so that is rare.)
"""
from __future__ import annotations

import os
import socket

RUNNING, UNKNOWN = "running", "unknown"


def observed_status(status: str | None, host: str | None, pid: int | None) -> str | None:
    """``status`` as stored, or ``"unknown"`` for a running one whose process is gone."""
    if status != RUNNING or pid is None or host != socket.gethostname():
        return status
    return status if _alive(pid) else UNKNOWN


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a pid we cannot ask about
    return True
