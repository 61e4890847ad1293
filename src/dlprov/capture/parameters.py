"""A step's parameters: which argument values are plain enough to record, and recording them as
one element of the step's parameter set, whatever types earlier calls gave its attributes."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Mapping

from dlprov.errors import ValueRejected
from dlprov.model.names import attribute_name
from dlprov.model.spec import Attribute, AttributeType
from dlprov.model.values import converter, infer_type

if TYPE_CHECKING:
    from dlprov.capture.run import Run
    from dlprov.capture.task import Task

log = logging.getLogger("dlprov.capture")

NOT_PLAIN = object()  # what plain() answers for a value that is not a parameter
MAX_JSON_CHARS = 10_000  # a list or dict parameter longer than this as JSON is left out
_MAX_ITEMS = 1_000


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as a parameter (None, bool, number, text, path, date; or a small list or dict
    of numbers and text, NaN and inf in it as None), else :data:`NOT_PLAIN`."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if depth == 0 or math.isfinite(value) else None
    if depth == 0 and isinstance(value, (os.PathLike, datetime, date)):
        return value
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_ITEMS:
        items = [plain(v, depth + 1) for v in value]
        found = NOT_PLAIN if any(v is NOT_PLAIN for v in items) else items
    elif isinstance(value, dict) and len(value) <= _MAX_ITEMS \
            and all(isinstance(k, str) for k in value):
        items = {k: plain(v, depth + 1) for k, v in value.items()}
        found = NOT_PLAIN if any(v is NOT_PLAIN for v in items.values()) else items
    else:
        return NOT_PLAIN
    if depth == 0 and found is not NOT_PLAIN and len(json.dumps(found)) > MAX_JSON_CHARS:
        return NOT_PLAIN
    return found


def record_parameters(run: "Run", task: "Task", set_tag: str, params: Mapping[str, Any]) -> None:
    """Record ``params`` (plain values) as one element of ``set_tag``.

    An attribute is declared by the first value given to it: NaN-tolerant if numeric, JSON if
    that value is None. A later value of another type is kept as text where the attribute is
    text, else left out with a warning (the store's columns have one type each).
    """
    book = run.book
    known = book.spec.sets.get(set_tag)
    new: list[Attribute] = []
    types: dict[str, Attribute] = {}
    for raw, value in params.items():
        name = attribute_name(raw)
        attribute = known.attributes.get(name) if known is not None else None
        if attribute is None:
            kind = AttributeType.JSON if value is None else infer_type(set_tag, name, value)
            attribute = Attribute(name, kind, allow_nan=kind is AttributeType.NUMERIC)
            new.append(attribute)
        types[name] = attribute
    if new:
        run.declare_set(set_tag, new)
    row = {}
    for raw, value in params.items():
        name = attribute_name(raw)
        row[name] = _fit(set_tag, types[name], value)
    task.input(set_tag, **row)


def _fit(set_tag: str, attribute: Attribute, value: Any) -> Any:
    try:
        return converter(set_tag, attribute)(value)
    except ValueRejected:
        pass
    if attribute.type is AttributeType.TEXT:
        return _as_text(value)
    if attribute.type is AttributeType.JSON:
        return json.loads(json.dumps(value, default=_as_text))
    log.warning("dlprov: set %r, attribute %r is %s; %r left out", set_tag, attribute.name,
                attribute.type.value, value)
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return json.dumps(value)
