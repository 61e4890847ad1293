"""What a metric value a framework hands over becomes in a set table.

* a number (Python, NumPy, a 0-d or one-element tensor or array; ``True``/``False`` as 1/0):
  stored as is, NaN and inf included;
* text: stored in a text column;
* a small tensor, array, list or tuple of numbers (at most :data:`MAX_ELEMENTS`): stored element
  by element, ``acc`` of shape (2,) as ``acc[0]`` and ``acc[1]`` (columns ``acc_0``, ``acc_1``),
  with a warning, since the shape is not kept;
* ``None``: no value this time, nothing stored;
* anything else (a larger tensor, a dict, ragged or non-numeric lists, other objects): refused,
  with a warning that says why and what to log instead.

Frameworks are recognised by duck typing (``tolist``, ``numpy``), never imported.
"""
from __future__ import annotations

import math
from typing import Any

#: The most numbers of one metric stored element by element (columns are not free).
MAX_ELEMENTS = 16

Part = tuple[str, "float | str"]  # (suffix of the name, value)


class NotStorable(ValueError):
    """A metric value that has no place in a set table; the message says why."""


def metric_parts(value: Any) -> tuple[list[Part], str | None]:
    """The values to store for one metric, each with the suffix of its name (``""``, or
    ``"[0]"``, ``"[1, 2]"`` for elements), and what was split (``"a Tensor of shape (2,)"``,
    None if nothing was). Raises :class:`NotStorable`."""
    if value is None:
        return [], None
    if isinstance(value, str):
        return [("", value)], None
    number = _number(value)
    if number is not None:
        return [("", number)], None
    what = _describe(value)
    if isinstance(value, dict):
        raise NotStorable(f"{what}: give its entries as metrics of their own")
    size = _size(getattr(value, "shape", None))
    if size is not None and size > MAX_ELEMENTS:  # refused before copying a large tensor
        raise NotStorable(_too_many(what))
    data = _as_python(value, what)
    number = _number(data)
    if number is not None:
        return [("", number)], None
    if isinstance(data, str):
        return [("", data)], None
    if not isinstance(data, (list, tuple)):
        raise NotStorable(f"{what}: store a number or a text")
    shape, flat = _elements(data, what)
    if len(flat) == 1:
        return [("", flat[0][1])], None
    if hasattr(value, "shape"):
        split = what
    else:
        split = f"a {type(value).__name__} of shape {shape}"
    return [(f"[{', '.join(map(str, index))}]", number) for index, number in flat], split


def _number(value: Any) -> float | None:
    """A float for a Python number (NumPy's float64 is one), else None."""
    if isinstance(value, (bool, int, float)):
        try:
            return float(value)
        except OverflowError:
            raise NotStorable(f"the integer {str(value)[:20]}... is too large for a number "
                              f"column") from None
    return None


def _size(shape: Any) -> int | None:
    try:
        return math.prod(int(n) for n in shape) if shape is not None else None
    except (TypeError, ValueError):
        return None


def _describe(value: Any) -> str:
    name = type(value).__name__
    name = f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
    shape = getattr(value, "shape", None)
    if _size(shape) is not None:
        return f"{name} of shape {tuple(int(n) for n in shape)}"
    if isinstance(value, (list, tuple, dict)):
        return f"{name} of {len(value)} values"
    return name


def _too_many(what: str) -> str:
    return (f"{what} holds more than {MAX_ELEMENTS} numbers, the most stored element by "
            f"element: log an aggregate (its mean, ...) or the elements you need under names "
            f"of their own")


def _as_python(value: Any, what: str) -> Any:
    """A tensor, array or scalar of a framework as Python numbers and lists; other values
    as they are."""
    if isinstance(value, (list, tuple)):
        return value
    try:
        to_list = getattr(value, "tolist", None)
        if not callable(to_list):  # TensorFlow's eager tensors: through NumPy
            numpy = getattr(value, "numpy", None)
            to_list = getattr(numpy(), "tolist", None) if callable(numpy) else None
        return to_list() if callable(to_list) else value
    except Exception as exc:  # noqa: BLE001 - a framework's own error, told in the warning
        raise NotStorable(f"{what} could not be read: {type(exc).__name__}: {exc}") from None


def _elements(data: list | tuple, what: str) -> tuple[tuple[int, ...], list[tuple[tuple, float]]]:
    """The shape of nested lists of numbers and their numbers by index. Ragged lists,
    non-numbers, no numbers at all or too many raise :class:`NotStorable`."""
    shape, probe = [], data
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    count = math.prod(shape)
    if count == 0:
        raise NotStorable(f"{what}: it holds no value")
    if count > MAX_ELEMENTS:
        raise NotStorable(_too_many(what))
    flat: list[tuple[tuple, float]] = []

    def walk(item: Any, index: tuple) -> None:
        depth = len(index)
        if depth < len(shape):
            if not isinstance(item, (list, tuple)) or len(item) != shape[depth]:
                raise NotStorable(f"{what}: its lists are of different lengths")
            for i, inner in enumerate(item):
                walk(inner, (*index, i))
            return
        number = _number(item)
        if number is None:
            kind = "lists of different lengths" if isinstance(item, (list, tuple)) \
                else f"{type(item).__name__} {item!r:.40}"
            raise NotStorable(f"{what}: only numbers are stored element by element, it holds "
                              f"{kind}")
        flat.append((index, number))

    walk(data, ())
    return tuple(shape), flat
