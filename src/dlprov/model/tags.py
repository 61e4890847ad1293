"""Tags and notes of an execution: what a user says about a run (``team=vision``, "lr too high").

Checked where they enter (``dlprov.run(tags=...)``, ``dlprov tag``, the server's batch
validation) so that the store never refuses them afterwards: a tag key is a plain name of at
most :data:`MAX_TAG_KEY` characters (letters, digits, ``_`` and ``-``, starting with a letter),
case kept; a value is text of at most :data:`MAX_TAG_VALUE_BYTES` bytes of UTF-8; notes are text
(:func:`dlprov.model.limits.check_text`). No NUL character anywhere.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from dlprov.errors import ValueRejected
from dlprov.model.limits import check_text

MAX_TAG_KEY = 64
MAX_TAG_VALUE_BYTES = 1024
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


def check_tag_key(key: Any) -> str:
    """``key`` if it is a plain tag name, else raise :class:`ValueRejected`."""
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > MAX_TAG_KEY:
        raise ValueRejected(f"tag key {key!r} is not a plain name: use a letter followed by "
                            f"letters, digits, '_' or '-', at most {MAX_TAG_KEY} characters")
    return key


def check_tag_value(key: str, value: Any) -> str | None:
    """The value of tag ``key`` as stored: text (numbers and booleans written as text), or None
    (removes the tag where it is set later)."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        raise ValueRejected(f"tag {key!r}: the value must be text, got "
                            f"{type(value).__name__} {value!r}")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_TAG_VALUE_BYTES:
        raise ValueRejected(f"tag {key!r}: the value is longer than {MAX_TAG_VALUE_BYTES} "
                            f"bytes: {value[:40]!r}...")
    return check_text(f"tag {key!r}", value)


def check_tags(tags: Mapping[str, Any] | None, *, removable: bool = False) -> dict[str, Any]:
    """``tags`` checked (see the module); ``removable``: a None value (remove it) is allowed."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ValueRejected(f"tags must be a mapping of names to text, got "
                            f"{type(tags).__name__}")
    checked = {}
    for key, value in tags.items():
        key = check_tag_key(key)
        if value is None and not removable:
            raise ValueRejected(f"tag {key!r} has no value")
        checked[key] = check_tag_value(key, value)
    return checked


def check_notes(notes: Any) -> str | None:
    """Notes of a run: None or text."""
    if notes is None:
        return None
    if not isinstance(notes, str):
        raise ValueRejected(f"notes must be text, got {type(notes).__name__}")
    return check_text("notes", notes)
