"""Printing rows as a table, CSV or JSON (the ``--format`` of every listing command).

Values are first made plain per column (:func:`plain_columns`), the same for every format: a
column of whole numbers prints as integers (``1``, not ``1.0``) and a column of JSON text
(``gpus``, ``packages``) is parsed, so JSON output nests it. Tables then fit the terminal
(``$COLUMNS`` or its width): long values are cut with ``…``, wide columns narrowed, and columns
that still do not fit are dropped, with a note naming them; ``wide=True`` (``--wide``) prints
everything. A single row of more than :data:`FIELD_LIST_MIN_COLUMNS` columns prints as a
field/value list.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Sequence

FORMATS = ("table", "csv", "json")
FIELD_LIST_MIN_COLUMNS = 4
ELLIPSIS = "…"
_GAP = "  "
_MIN_WIDTH = 10  # a column is narrowed to no less than this, its header or its natural width
_MAX_HEADER_FLOOR = 14
_FRACTION = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)\.\d+$")
_WIDE_KEY = "dlprov.wide"


def terminal_width() -> int:
    """The width tables fit: ``$COLUMNS``, else the terminal's, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def wide_requested() -> bool:
    """Whether ``--wide`` was given to the running click command (False outside one)."""
    import click  # already imported by any command; this module stays usable without it

    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().meta.get(_WIDE_KEY))


def remember_wide(ctx: Any, _param: Any, value: bool) -> None:
    """Callback of the ``--wide`` option: keep the choice for :func:`render`."""
    if value:
        ctx.find_root().meta[_WIDE_KEY] = True


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table", *,
           width: int | None = None, wide: bool | None = None,
           layout: str = "auto") -> str:
    """``rows`` under ``columns`` as ``table`` (aligned text that fits ``width``, default the
    terminal's), ``csv`` (with a header line) or ``json`` (a list of objects keyed by column
    name). ``wide`` (default: ``--wide`` given) prints tables whole; ``layout`` ``"table"`` or
    ``"fields"`` forces a table or a field/value list for tables (``"auto"``: a field/value
    list for one row of many columns)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if layout not in ("auto", "table", "fields"):
        raise ValueError(f"unknown layout {layout!r}: use auto, table or fields")
    columns = list(columns)
    values = plain_columns(columns, rows)
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in values], indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in values])
        return buffer.getvalue().rstrip("\n")
    wide = wide_requested() if wide is None else wide
    width = None if wide else (width or terminal_width())
    if layout == "fields" or (layout == "auto" and len(values) == 1
                              and len(columns) >= FIELD_LIST_MIN_COLUMNS):
        return field_list(columns, values[0] if values else [None] * len(columns), width)
    return table(columns, values, width)


def render_records(records: Sequence[dict[str, Any]], columns: Sequence[str],
                   fmt: str = "table", **options: Any) -> str:
    """Like :func:`render`, for dicts: ``columns`` picks and orders the keys."""
    return render(columns, [[r.get(c) for c in columns] for r in records], fmt, **options)


def plain_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` with values any format can print, decided per column: dates as ISO text,
    decimals as numbers, floats as integers where every number of the column is whole, JSON
    text as lists/dicts where every value of the column is a JSON array or object."""
    table_ = [[_plain(v) for v in row] for row in rows]
    for i in range(len(columns)):
        cells = [row[i] for row in table_ if row[i] is not None]
        if cells and all(_is_number(v) for v in cells) and \
                all(isinstance(v, int) or (math.isfinite(v) and v == int(v)) for v in cells):
            for row in table_:
                if row[i] is not None:
                    row[i] = int(row[i])
        elif cells and all(isinstance(v, str) for v in cells):
            parsed = [_json_container(v) for v in cells]
            if all(p is not None for p in parsed):
                for row in table_:
                    if row[i] is not None:
                        row[i] = _json_container(row[i])
    return table_


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_container(text: str) -> Any:
    """The list or dict JSON ``text`` holds, or None when it holds neither."""
    if not text[:1] in ("[", "{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, (list, dict)) else None


def _text(value: Any) -> str:
    """A plain value as CSV or table text: nested values as JSON, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def cell_text(value: Any) -> str:
    """A plain value as table text: floats to 6 significant digits, times to the second,
    one line."""
    if isinstance(value, float):
        return format(value, "g")
    text = " ".join(_text(value).splitlines())
    return _FRACTION.sub(r"\1", text)


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with ``…`` where it was cut: in the middle of a
    value without spaces (an id, tag or path keeps both ends), else at the end."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    if " " in text or width < 8:
        return text[:width - 1] + ELLIPSIS
    head = (width - 1) // 2  # the end (a file name, an id's tail) gets the odd character
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None) -> str:
    """An aligned table (numbers right-aligned) no wider than ``width`` (None: no limit)."""
    cells = [[cell_text(v) for v in row] for row in rows]
    numeric = [bool(rows) and all(_is_number(r[i]) or r[i] is None for r in rows)
               for i in range(len(columns))]
    natural = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    shown, widths = _fit(columns, natural, width)
    lines = []
    for line in ([list(columns)], [["-" * widths[i] for i in range(len(columns))]], cells):
        for row in line:
            lines.append(_GAP.join(
                cut(row[i], widths[i]).rjust(widths[i]) if numeric[i]
                else cut(row[i], widths[i]).ljust(widths[i]) for i in shown).rstrip())
    if not rows:
        lines.append("(no rows)")
    dropped = [columns[i] for i in range(len(columns)) if i not in shown]
    if dropped:
        head = f"(+{len(dropped)} column{'s' * (len(dropped) > 1)}: "
        tail = "; --wide shows them)"
        names = ", ".join(dropped)
        room = len(names) if width is None else max(width - len(head) - len(tail), 8)
        lines.append(head + cut(names, room) + tail)
    return "\n".join(lines)


def _fit(columns: Sequence[str], natural: list[int],
         width: int | None) -> tuple[list[int], list[int]]:
    """Which columns to show, and how wide each is, to fit ``width``: drop columns from the
    right (the first stays) until the rest fit at their floor widths, then narrow the widest
    column, one character at a time, until the table fits (which evens out the cuts)."""
    widths = list(natural)
    shown = list(range(len(natural)))
    if width is None:
        return shown, widths
    floors = [min(w, max(_MIN_WIDTH, min(len(name), _MAX_HEADER_FLOOR)))
              for w, name in zip(natural, columns)]

    def total(sizes: list[int]) -> int:
        return sum(sizes[i] for i in shown) + len(_GAP) * (len(shown) - 1)

    while len(shown) > 1 and total(floors) > width:
        shown.pop()
    while total(widths) > width:
        narrowable = [i for i in shown if widths[i] > floors[i]]
        if not narrowable:  # one column wider than the terminal even at its floor
            widths[shown[0]] = max(width, 1)
            break
        widths[max(narrowable, key=lambda i: widths[i])] -= 1
    return shown, widths


def field_list(columns: Sequence[str], row: Sequence[Any], width: int | None) -> str:
    """One record as ``field  value`` lines, values cut to ``width`` (None: no limit)."""
    name_width = max((len(c) for c in columns), default=0)
    room = None if width is None else max(width - name_width - len(_GAP), _MIN_WIDTH)
    lines = []
    for name, value in zip(columns, row):
        text = cell_text(value)
        lines.append(f"{name.ljust(name_width)}{_GAP}{text if room is None else cut(text, room)}"
                     .rstrip())
    return "\n".join(lines)
