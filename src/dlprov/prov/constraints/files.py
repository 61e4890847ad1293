"""Validating PROV files: read with ``prov`` (through :mod:`dlprov.prov.reading`, which
refuses what is not PROV or is unsafe), check, and point at the lines of the records a
violation involves where the format has lines (PROV-N, PROV-XML, PROV-JSON; best effort:
found by identifier)."""
from __future__ import annotations

import io
import os
import re
from collections import defaultdict
from pathlib import Path

from dlprov.errors import ProvImportError
from dlprov.prov.constraints import validate
from dlprov.prov.constraints.report import Report
from dlprov.prov.reading import MAX_BYTES, choose_format, parse

_PROVN_ID = re.compile(r"\b[A-Za-z]+\(\s*([^\s,;()\[\]]+)\s*[;,)]")
_PROVN_BUNDLE = re.compile(r"^\s*bundle\s+(\S+)")
_JSON_ID = re.compile(r'^\s*"([^"]+)"\s*:\s*[\[{]')
_MAX_LINES = 5  # per record in a report: the same identifier may be declared many times


def validate_bytes(data: bytes, format: str | None = None, *, suffix: str = "",
                   source: str = "<document>", times: bool = True,
                   max_bytes: int = MAX_BYTES) -> Report:
    """Validate the PROV document ``data`` (``format`` as :func:`dlprov.prov.reading.
    choose_format` takes it, else from ``suffix`` or the first bytes). Raises
    :class:`~dlprov.errors.ProvImportError` for bytes that are not a PROV document."""
    fmt = choose_format(format, data, suffix)
    document, _ = parse(data, fmt, max_bytes=max_bytes, strict=False)
    report = validate(document, times=times, source=source)
    if report.violations:
        lines = _lines(data, fmt)
        for violation in report.violations:
            violation.lines = sorted({n for r in violation.records
                                      for n in lines.get(r, ())[:_MAX_LINES]})
    return report


def validate_file(path: str | os.PathLike, format: str | None = None, *,
                  times: bool = True, max_bytes: int = MAX_BYTES) -> Report:
    """Validate the PROV document in the file ``path``."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProvImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise ProvImportError(f"{path} has {size:,} bytes, over the limit of {max_bytes:,}")
    return validate_bytes(path.read_bytes(), format, suffix=path.suffix, source=str(path),
                          times=times, max_bytes=max_bytes)


def _lines(data: bytes, fmt: str) -> dict[str, list[int]]:
    """Identifier (as ``prov`` prints it) -> the lines that declare a record with it."""
    found: dict[str, list[int]] = defaultdict(list)
    if fmt == "xml":
        from lxml import etree
        prov_id = "{http://www.w3.org/ns/prov#}id"
        parser = etree.iterparse(io.BytesIO(data), events=("start",), resolve_entities=False,
                                 no_network=True, load_dtd=False)
        for _, element in parser:
            ident = element.get(prov_id)
            if ident:
                found[ident].append(element.sourceline)
        return found
    text = data.decode("utf-8", errors="replace").splitlines()
    if fmt == "provn":
        for number, line in enumerate(text, 1):
            for match in (*_PROVN_ID.finditer(line), *_PROVN_BUNDLE.finditer(line)):
                found[match.group(1)].append(number)
    elif fmt == "json":
        for number, line in enumerate(text, 1):
            match = _JSON_ID.match(line)
            if match:
                found[match.group(1)].append(number)
    return found
