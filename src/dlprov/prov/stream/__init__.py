"""Exports written while the mapping runs, record by record, instead of from a whole document.

:func:`write_scope` writes the Turtle, TriG or PROV-JSON of one scope (a dataflow, a run, a
model's trace) as :func:`dlprov.prov.mapping.document` makes its records (:mod:`.builder`),
keeping neither ``prov``'s document nor an rdflib graph:

- Turtle and TriG (:mod:`.turtle`): each record's triples as ``prov``'s PROV-O serializer
  makes them, written at once; the same graph as ``serialize(document(...), "ttl")`` read back;
- PROV-JSON (:mod:`.json_writer`): each record's JSON text kept, the document assembled at the
  end; byte for byte ``serialize(document(...), "json")``.

Each writer checks itself once per process against ``prov``'s serializer on a probe document
(:mod:`.probe`); where it disagrees, :func:`streams` is False and exports take the
whole-document path.
"""
from __future__ import annotations

from typing import Any, Callable

from dlprov.prov.scope import Snapshot
from dlprov.prov.stream.builder import emit_records
from dlprov.prov.stream.json_writer import JsonWriter, NeedsWholeDocument, json_agrees
from dlprov.prov.stream.turtle import TurtleWriter, fast_path_agrees

#: the formats written this way
STREAM_FORMATS = frozenset({"ttl", "trig", "json"})

__all__ = ["STREAM_FORMATS", "streams", "write_scope"]


def streams(format: str) -> bool:
    """Whether ``format`` (a name of :data:`dlprov.prov.export.FORMATS`) is written streaming
    here, in this ``prov`` and rdflib (checked once, on a probe document)."""
    if format == "json":
        return json_agrees()
    return format in STREAM_FORMATS and fast_path_agrees()


def write_scope(snap: Snapshot, format: str, write: Callable[[str], Any]) -> None:
    """Write the ``format`` text of ``snap``'s document, in pieces, to ``write``."""
    if format not in STREAM_FORMATS:
        raise ValueError(f"{format!r} is not written streaming: use one of "
                         f"{', '.join(sorted(STREAM_FORMATS))}")
    if format == "json":
        writer = JsonWriter(write)
        emit_records(snap, writer.record, writer.direct)
        try:
            writer.close()
        except NeedsWholeDocument:  # nothing written yet: the whole-document way
            from dlprov.prov.export import serialize
            from dlprov.prov.mapping import build
            write(serialize(build(snap), "json").decode("utf-8"))
        return
    writer = TurtleWriter(write, named_graphs=format == "trig")
    emit_records(snap, writer.record)
    writer.close()
