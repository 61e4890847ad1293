"""Warnings that recur in a training loop (a failing hook, a metric that cannot be stored): each
is logged the first time, then at most once every ``interval`` seconds per kind with the count
of those not shown, and :meth:`Throttle.flush` reports the counts still pending. So every
occurrence is accounted for in the log without one line per batch.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Hashable

#: Seconds between two messages of one kind; an occurrence inside them is counted instead.
DEFAULT_INTERVAL = 30.0


class Throttle:
    """Rate-limited warnings on ``logger``, one rate per key (e.g. ``(hook, metric, reason)``)."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL) -> None:
        self.logger, self.interval = logger, interval
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        # per key: occurrences not shown yet, and the last one's message and arguments
        self._pending: dict[Hashable, tuple[int, str, tuple[Any, ...]]] = {}

    def warn(self, key: Hashable, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless a message of ``key`` was logged less than ``interval``
        seconds ago: then count it, to be told with the next one. Returns whether it was
        logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                count = self._pending.get(key, (0,))[0]
                self._pending[key] = (count + 1, message, args)
                return False
            self._last[key] = now
            skipped = self._pending.pop(key, (0,))[0]
        if skipped:
            self.logger.warning(f"{message} [and %d more like it since the last such message]",
                                *args, skipped)
        else:
            self.logger.warning(message, *args)
        return True

    def flush(self) -> int:
        """Log the occurrences still counted (each kind's last, with its count); returns how
        many there were."""
        with self._lock:
            pending, self._pending = self._pending, {}
            now = time.monotonic()
            for key in pending:
                self._last[key] = now
        for count, message, args in pending.values():
            self.logger.warning(f"{message} [%d like it since the last such message; this is "
                                f"the latest]", *args, count)
        return sum(count for count, _, _ in pending.values())
