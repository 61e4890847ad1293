"""Printing rows as a table, CSV or JSON (the ``--format`` of every listing command)."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any, Sequence

from tabulate import tabulate

FORMATS = ("table", "csv", "json")


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table") -> str:
    """``rows`` under ``columns`` as ``table`` (aligned text), ``csv`` (with a header line) or
    ``json`` (a list of objects keyed by column name)."""
    if fmt == "json":
        records = [{c: _plain(v) for c, v in zip(columns, row)} for row in rows]
        return json.dumps(records, indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    if fmt == "table":
        if not rows:
            return tabulate([], headers=list(columns)) + "\n(no rows)"
        return tabulate([[_plain(v) for v in row] for row in rows], headers=list(columns),
                        floatfmt="g", missingval="")
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def render_records(records: Sequence[dict[str, Any]], columns: Sequence[str],
                   fmt: str = "table") -> str:
    """Like :func:`render`, for dicts: ``columns`` picks and orders the keys."""
    return render(columns, [[r.get(c) for c in columns] for r in records], fmt)
