"""What every store can hold, checked where names and values enter: at the call (the capture
API, the dfa API) and in the server's batch validation, the same way for every backend, so that
a record accepted at the call is never refused by the store afterwards.

- **Attributes per set**: at most :data:`MAX_ATTRIBUTES_PER_SET` (1,000). A set table also has
  ``id`` and one ``<transformation>_task_id`` column per transformation that produces or
  consumes the set, at most :data:`MAX_TRANSFORMATIONS_PER_SET` (500): 1 + 500 + 1,000 columns
  stay under PostgreSQL's 1,600 and SQLite's 2,000.
- **Width of a row**: PostgreSQL keeps a row in one 8 KiB page (:data:`MAX_ROW_BYTES`), after
  moving long values out of it; what stays is 8 bytes per number or timestamp, up to 24 per
  text, path or JSON value, 4 per task column. A set whose widest possible row would not fit
  is refused when it is declared or grows (:func:`worst_row_bytes`): about 1,000 numeric
  attributes, or 330 text ones, and each transformation added to a set takes 4 bytes.
- **Identifiers**: every name the store derives fits PostgreSQL's 63 bytes (it truncates longer
  ones): the set table ``<df_tag>__<set_tag>`` (SQLite's name for it), the task column
  ``<transformation>_task_id`` and its index ``ix_<set_tag>_<transformation>_task_id``.
- **Values**: text, file paths and JSON hold at most :data:`MAX_VALUE_BYTES` bytes of UTF-8 each
  (1 MiB; ``$DLPROV_MAX_VALUE_BYTES`` changes it, for the server too), no NUL character
  (PostgreSQL cannot store it) and no lone surrogate (no UTF-8 encoder takes it: SQLite,
  PostgreSQL and the spool's JSON all fail on it).
"""
from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable

from dlprov.errors import SpecError, ValueRejected
from dlprov.model.names import task_column

if TYPE_CHECKING:
    from dlprov.model.spec import DataflowSpec

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
MAX_ATTRIBUTES_PER_SET = 1000
MAX_TRANSFORMATIONS_PER_SET = 500
MAX_VALUE_BYTES_ENV = "DLPROV_MAX_VALUE_BYTES"
MAX_ROW_BYTES = 8160  # PostgreSQL's MaxHeapTupleSize: a page of 8 KiB less its header
_FIXED_WIDTH = frozenset({"numeric", "timestamp"})  # float8, timestamp: 8 bytes, 8-aligned
_VARIABLE_WORST = 24  # TOAST moves a longer text/JSON value out, leaving 18 bytes; 24 stay


def _max_value_bytes() -> int:
    default, text = 1 << 20, os.environ.get(MAX_VALUE_BYTES_ENV, "").strip()
    if not text:
        return default
    if text.isdigit() and int(text) > 0:
        return int(text)
    logging.getLogger("dlprov").warning(
        "dlprov: %s=%r is not a positive number of bytes; using %d", MAX_VALUE_BYTES_ENV, text,
        default)
    return default


#: The most bytes (UTF-8) a text, path or JSON value may take.
MAX_VALUE_BYTES = _max_value_bytes()


# -- names ----------------------------------------------------------------------------------
def set_table_name(df_tag: str, set_tag: str) -> str:
    """The longest name a set's table gets on any backend (SQLite's ``<df>__<set>``)."""
    return f"{df_tag}__{set_tag}"


def task_index_name(set_tag: str, transformation: str) -> str:
    """The PostgreSQL name of a task column's index (see ``store.schema.task_column_index``)."""
    return f"ix_{set_tag}_{task_column(transformation)}"


def _fits(kind: str, identifier: str, names: str) -> None:
    if len(identifier.encode()) > MAX_IDENTIFIER_BYTES:
        raise SpecError(
            f"{kind} {identifier!r}, made of {names}, is {len(identifier)} characters; the store "
            f"needs at most {MAX_IDENTIFIER_BYTES} (PostgreSQL cuts longer identifiers): choose "
            f"shorter names")


def check_set_table(df_tag: str, set_tag: str) -> None:
    """Refuse a dataflow and set whose table name would not fit (SpecError)."""
    _fits("the table of set", set_table_name(df_tag, set_tag),
          f"dataflow {df_tag!r} and set {set_tag!r}")


def check_task_column(set_tag: str, transformation: str) -> None:
    """Refuse a transformation whose task column in ``set_tag``, or its index, would not fit."""
    names = f"set {set_tag!r} and transformation {transformation!r}"
    _fits("the task column", task_column(transformation), names)
    _fits("the task column's index", task_index_name(set_tag, transformation), names)


def check_attribute_count(set_tag: str, count: int) -> None:
    """Refuse a set of more than :data:`MAX_ATTRIBUTES_PER_SET` attributes (SpecError)."""
    if count > MAX_ATTRIBUTES_PER_SET:
        raise SpecError(
            f"set {set_tag!r} would have {count} attributes; a set holds at most "
            f"{MAX_ATTRIBUTES_PER_SET} (each is a column of its table): split it into several "
            f"sets, or store a dict of many values as one JSON attribute")


def worst_row_bytes(types: Iterable[str], task_columns: int) -> int:
    """The most bytes a row of a set table can take in PostgreSQL once TOAST has moved what it
    can: attribute ``types`` (``"numeric"``, ``"text"``, ... in table order) after ``id`` and
    ``task_columns`` integer columns. Header with null bitmap, 8-byte alignment of numbers."""
    types = list(types)
    columns = 1 + task_columns + len(types)
    offset = _aligned(23 + (columns + 7) // 8, 8) + 4 * (1 + task_columns)
    for kind in types:
        if kind in _FIXED_WIDTH:
            offset = _aligned(offset, 8) + 8
        else:
            offset += _VARIABLE_WORST
    return offset


def _aligned(offset: int, to: int) -> int:
    return (offset + to - 1) // to * to


def check_set_width(set_tag: str, types: list[str], task_columns: int) -> None:
    """Refuse a set whose table would have too many columns, or rows PostgreSQL could refuse:
    ``types`` of its attributes in order, ``task_columns`` transformations touching it."""
    check_attribute_count(set_tag, len(types))
    check_transformation_count(set_tag, task_columns)
    width = worst_row_bytes(types, task_columns)
    if width > MAX_ROW_BYTES:
        raise SpecError(
            f"set {set_tag!r} with {len(types)} attributes and {task_columns} transformations "
            f"could make rows of {width} bytes, over the {MAX_ROW_BYTES} that PostgreSQL keeps "
            f"in a row (8 per number or timestamp, up to 24 per text, path or JSON value, 4 per "
            f"transformation): split it into several sets, or store many values as one JSON "
            f"attribute")


def _types(spec: "DataflowSpec", set_tag: str) -> list[str]:
    found = spec.sets.get(set_tag)
    return [] if found is None else [a.type.value for a in found.attributes.values()]


def check_transformation_count(set_tag: str, count: int) -> None:
    """Refuse a set touched by more than :data:`MAX_TRANSFORMATIONS_PER_SET` transformations."""
    if count > MAX_TRANSFORMATIONS_PER_SET:
        raise SpecError(
            f"set {set_tag!r} would be produced or used by {count} transformations; at most "
            f"{MAX_TRANSFORMATIONS_PER_SET} (each adds a <transformation>_task_id column to its "
            f"table): name transformations by what they do, not by their parameters")


def check_new_roles(spec: "DataflowSpec", set_tag: str,
                    transformations: Iterable[str | None]) -> None:
    """Before ``transformations`` produce or use ``set_tag`` in ``spec``: their task columns
    fit, and the set's table stays within the column limit."""
    touching = spec.transformations_of(set_tag)
    new = {t for t in transformations if t is not None and t not in touching}
    if not new:
        return
    for transformation in sorted(new):
        check_task_column(set_tag, transformation)
    check_set_width(set_tag, _types(spec, set_tag), len(touching) + len(new))


def check_spec(spec: "DataflowSpec") -> None:
    """Refuse a whole spec that some store could not hold (SpecError naming set and name)."""
    for set_tag, set_spec in spec.sets.items():
        check_set_table(spec.tag, set_tag)
        touching = spec.transformations_of(set_tag)
        for transformation in touching:
            check_task_column(set_tag, transformation)
        check_set_width(set_tag, _types(spec, set_tag), len(touching))


# -- values ---------------------------------------------------------------------------------
def check_text(where: str, value: str) -> str:
    """``value`` if every store can hold it, else :class:`ValueRejected` naming ``where`` (e.g.
    "set 'otrain', attribute 'note'"): no lone surrogate, no NUL, at most
    :data:`MAX_VALUE_BYTES` bytes. Cheap for the usual short ASCII text."""
    if value.isascii():  # O(1) in CPython: a flag of the string
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValueRejected(
                f"{where}: the text holds a lone surrogate {value[exc.start]!r} at position "
                f"{exc.start} (often a file name or bytes decoded with errors='surrogateescape'),"
                f" which no store can encode: decode the bytes properly, or with "
                f"errors='replace'") from None
    if size > MAX_VALUE_BYTES:
        raise ValueRejected(
            f"{where}: the value is {size} bytes, over the limit of {MAX_VALUE_BYTES} bytes per "
            f"value (${MAX_VALUE_BYTES_ENV} changes it): store large content in a file and "
            f"record its path")
    if "\x00" in value:
        raise ValueRejected(
            f"{where}: the text holds a NUL character (\\x00) at position "
            f"{value.index(chr(0))}, which PostgreSQL cannot store: remove it, or record the "
            f"content as a file")
    return value


def check_json_text(where: str, value: Any, text: str) -> None:
    """Check the JSON ``text`` of ``value`` (made with ``ensure_ascii=False``) as
    :func:`check_text` checks text: size, lone surrogates, and NUL in any string or key."""
    # The text holds a NUL only escaped; a string holding a backslash and "u0000" looks the
    # same there, so the strings themselves tell.
    if "\\u0000" in text and _holds_nul(value):
        raise ValueRejected(
            f"{where}: a string in the JSON value holds a NUL character (\\x00), which "
            f"PostgreSQL cannot store: remove it")
    check_text(where, text)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(v) for v in value)
    return False


def check_row_value(where: str, value: Any) -> Any:
    """A value of a record that reached the server: text checked as at the call; a dict or
    list checked as JSON. Numbers, booleans, None pass."""
    if isinstance(value, str):
        return check_text(where, value)
    if isinstance(value, (dict, list)):
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ValueRejected(f"{where} is not JSON: {exc}") from None
        check_json_text(where, value, text)
    return value


def check_field(where: str, value: Any, max_chars: int | None = None) -> Any:
    """A text field of a run, task or model given by the caller (``exec_tag``, ``sub_id``,
    ``user``, a model's name ...): None, or text of at most ``max_chars`` characters (the
    store's column width) that :func:`check_text` accepts."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueRejected(f"{where} must be text, got {type(value).__name__} {value!r}")
    if max_chars is not None and len(value) > max_chars:
        raise ValueRejected(f"{where} is {len(value)} characters, the store keeps at most "
                            f"{max_chars}: {value[:40]!r}...")
    return check_text(where, value)


def storable_text(value: str | None) -> str | None:
    """``value`` made storable rather than refused, for text dlprov must keep whatever it holds
    (an error's traceback): NUL and lone surrogates escaped, cut at :data:`MAX_VALUE_BYTES`."""
    if value is None:
        return None
    text = value.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_VALUE_BYTES // 4:
        encoded = text.encode("utf-8")
        if len(encoded) > MAX_VALUE_BYTES:
            note = f"\n... [cut by dlprov: {len(encoded)} bytes, at most {MAX_VALUE_BYTES}]"
            text = encoded[:MAX_VALUE_BYTES - len(note) - 4].decode("utf-8", "ignore") + note
    return text
