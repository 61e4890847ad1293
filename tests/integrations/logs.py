"""Reading the integrations' rate-limited warnings back in tests."""
from __future__ import annotations

import re

_MORE = re.compile(r"\[and (\d+) more like it since the last such message\]$")
_PENDING = re.compile(r"\[(\d+) like it since the last such message; this is the latest\]$")


def told(messages: list[str]) -> int:
    """How many occurrences ``messages`` account for: one each, plus those each one counts."""
    total = 0
    for message in messages:
        more, pending = _MORE.search(message), _PENDING.search(message)
        total += 1 + int(more.group(1)) if more else int(pending.group(1)) if pending else 1
    return total
