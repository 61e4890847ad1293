"""Turning the values a training script hands over into values a store column can hold.

Runs on the caller's thread for every captured value, so each converter is a short chain of
``type()`` checks; frameworks are recognised by duck typing and never imported.
"""
from __future__ import annotations

import json
import math
import os
from datetime import date, datetime
from typing import Any, Callable

from dlprov.errors import SpecError, ValueRejected
from dlprov.model import limits
from dlprov.model.limits import check_json_text, check_text
from dlprov.model.spec import Attribute, AttributeType

Converter = Callable[[Any], Any]


def _where(set_tag: str, attribute: str) -> str:
    return f"set {set_tag!r}, attribute {attribute!r}"


def _unwrap_scalar(value: Any, where: str) -> Any:
    """A 0-d tensor or array, or a NumPy scalar, as a Python scalar; other values unchanged."""
    item = getattr(value, "item", None)
    if item is None or isinstance(value, (str, bytes)):
        return value
    size = getattr(value, "size", None)
    size = size() if callable(size) else size  # torch: .size() is the shape; numel() the count
    numel = getattr(value, "numel", None)
    count = numel() if callable(numel) else size
    if count is not None and not isinstance(count, int):
        count = None
    if count not in (None, 1):
        shape = tuple(getattr(value, "shape", ()))
        raise ValueRejected(
            f"{where}: got a {type(value).__name__} of shape {shape}; store one number "
            f"(e.g. loss.item()) or an aggregate, not a whole tensor")
    return item()


def _numeric(set_tag: str, attribute: Attribute) -> Converter:
    where = _where(set_tag, attribute.name)
    allow_nan = attribute.allow_nan

    def convert(value: Any) -> float | None:
        kind = type(value)
        if kind is not float and kind is not int:
            if value is None:
                return None
            value = _unwrap_scalar(value, where)
            if isinstance(value, bool):
                return float(value)
            if not isinstance(value, (int, float)):
                raise ValueRejected(
                    f"{where} is numeric; got {type(value).__name__} {value!r}")
        value = float(value)
        if not allow_nan and not math.isfinite(value):
            raise ValueRejected(
                f"{where}: {value} is not a finite number; declare the attribute with "
                f"allow_nan=True to keep NaN/inf")
        return value

    return convert


def _text(set_tag: str, attribute: Attribute) -> Converter:
    where = _where(set_tag, attribute.name)

    def convert(value: Any) -> str | None:
        if type(value) is str:
            # check_text's test for the usual short ASCII text, inline: no call per value
            if value.isascii() and len(value) <= limits.MAX_VALUE_BYTES and "\x00" not in value:
                return value
            return check_text(where, value)
        if value is None:
            return value
        if isinstance(value, str):
            return check_text(where, str(value))
        raise ValueRejected(f"{where} is text; got {type(value).__name__} {value!r}")

    return convert


def _file(set_tag: str, attribute: Attribute) -> Converter:
    where = _where(set_tag, attribute.name)

    def convert(value: Any) -> str | None:
        if type(value) is str:
            return check_text(where, value)
        if value is None:
            return value
        if isinstance(value, (str, os.PathLike)):
            path = os.fspath(value)
            if not isinstance(path, str):  # a bytes path
                raise ValueRejected(f"{where} is a file path as text; got bytes {path!r} "
                                    f"(decode it, e.g. os.fsdecode)")
            return check_text(where, path)
        raise ValueRejected(f"{where} is a file path; got {type(value).__name__} {value!r}")

    return convert


def _timestamp(set_tag: str, attribute: Attribute) -> Converter:
    """Times are stored as naive local time, as the store's own start and end times are."""
    where = _where(set_tag, attribute.name)

    def convert(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                pass
        if isinstance(value, datetime):
            return value if value.tzinfo is None else value.astimezone().replace(tzinfo=None)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return datetime.fromtimestamp(value)
        raise ValueRejected(
            f"{where} is a timestamp; got {type(value).__name__} {value!r} (use a datetime, "
            f"an ISO 8601 string or seconds since the epoch)")

    return convert


def _json(set_tag: str, attribute: Attribute) -> Converter:
    where = _where(set_tag, attribute.name)

    def convert(value: Any) -> Any:
        try:
            text = json.dumps(value, allow_nan=attribute.allow_nan, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ValueRejected(f"{where} must be JSON-serialisable: {exc}") from None
        check_json_text(where, value, text)
        return value

    return convert


_NUMERIC, _TEXT = AttributeType.NUMERIC, AttributeType.TEXT


def convert_row(kinds: dict[str, AttributeType], converters: dict[str, Converter],
                values: dict[str, Any]) -> dict[str, Any]:
    """``values`` through the ``converters`` of a set whose attributes have types ``kinds``,
    in place: the capture call's own ``**values`` becomes the row. A plain value (a finite
    ``float`` or an ``int`` of a numeric attribute, a short ASCII ``str`` without NUL of a text
    attribute) is taken without a converter call, as its converter would take it; any other
    goes through its converter, which may refuse it. Errors come in ``values``' order.

    KeyError for a name that is not an attribute's name as stored (``Loss``, a typo): the
    values before it are converted by then, and every converter takes its own output
    unchanged, so a second pass (with the names mapped) gives the same row.
    """
    for name, value in values.items():  # replacing a key's value: iteration goes on
        kind = type(value)
        if kind is float:
            # x - x is 0.0 (false) for finite x, NaN (true) for NaN and inf: no call
            if value - value or kinds[name] is not _NUMERIC:
                values[name] = converters[name](value)
        elif kind is int and kinds[name] is _NUMERIC:
            values[name] = float(value)  # too large: OverflowError, as from the converter
        elif kind is not str or kinds[name] is not _TEXT or not value.isascii() \
                or len(value) > limits.MAX_VALUE_BYTES or "\x00" in value:
            values[name] = converters[name](value)
    return values


_FACTORIES = {
    AttributeType.NUMERIC: _numeric,
    AttributeType.TEXT: _text,
    AttributeType.FILE: _file,
    AttributeType.TIMESTAMP: _timestamp,
    AttributeType.JSON: _json,
}


def converter(set_tag: str, attribute: Attribute) -> Converter:
    """The function that checks and converts values of ``attribute`` in ``set_tag``."""
    return _FACTORIES[attribute.type](set_tag, attribute)


def infer_type(set_tag: str, name: str, value: Any) -> AttributeType:
    """The attribute type a first value implies (a set's spec can be inferred from its first element)."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return AttributeType.NUMERIC
    if isinstance(value, str):
        return AttributeType.TEXT
    if isinstance(value, os.PathLike):
        return AttributeType.FILE
    if isinstance(value, (datetime, date)):
        return AttributeType.TIMESTAMP
    if isinstance(value, (dict, list, tuple)):
        return AttributeType.JSON
    if value is None:
        raise SpecError(
            f"set {set_tag!r}, attribute {name!r}: cannot infer a type from None; declare the set "
            f"(run.declare_set) or give a value in its first element")
    if getattr(value, "item", None) is not None:  # NumPy scalar or 0-d tensor
        scalar = _unwrap_scalar(value, _where(set_tag, name))
        return infer_type(set_tag, name, scalar)
    raise ValueRejected(
        f"set {set_tag!r}, attribute {name!r}: cannot store a {type(value).__name__}; use a number, "
        f"string, path, datetime or JSON-serialisable dict/list")
