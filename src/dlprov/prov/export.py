"""Exporting provenance as W3C PROV files: PROV-N, PROV-JSON, PROV-XML, RDF, and pictures.

::

    from dlprov.prov import export, write
    text = export(run="mnist-1", format="provn")     # one execution
    write("trace.json", model="mlp-adam")             # one model's derivation trace
    write("mnist.svg", dataflow="mnist")              # every execution, drawn

PROV-N, PROV-JSON, PROV-XML and TriG keep one bundle per execution. Turtle has no named graphs,
so a Turtle export is the flattened document (every bundle's records at the top level); reading
it back gives the flattened document, with records of one identifier merged (PROV unification).

Turtle, TriG and PROV-JSON of a scope are written while the mapping makes its records
(:mod:`dlprov.prov.stream`): the same graph (PROV-JSON: the same bytes), without holding the
whole document or an rdflib graph; ``streaming=False`` takes the whole-document path.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from prov.model import ProvDocument

from dlprov.errors import DlprovError
from dlprov.prov.mapping import document
from dlprov.prov.memory import paused_gc
from dlprov.prov.scope import read_snapshot
from dlprov.store.store import Store

#: format -> (prov serializer, its options)
TEXT_FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    "provn": ("provn", {}),
    "json": ("json", {}),
    "xml": ("xml", {}),
    "ttl": ("rdf", {"rdf_format": "turtle"}),
    "trig": ("rdf", {"rdf_format": "trig"}),
}
PICTURE_FORMATS = ("svg", "png", "pdf")
#: Neo4j loading: a MERGE script, and neo4j-admin import CSV files (a zip, or a folder)
GRAPH_FORMATS = ("cypher", "neo4j-csv")
FORMATS = (*TEXT_FORMATS, *PICTURE_FORMATS, *GRAPH_FORMATS)
#: the text formats that carry bundles; the others get the flattened document
BUNDLE_FORMATS = frozenset({"provn", "json", "xml", "trig"})

_ALIASES = {"turtle": "ttl", "provx": "xml", "provjson": "json", "prov-n": "provn",
            "cql": "cypher", "neo4j_csv": "neo4j-csv"}


class ExportError(DlprovError, ValueError):
    """An export cannot be made as asked: an unknown format, or no file for a picture."""


def check_format(format: str) -> str:
    """``format`` (or an alias such as ``turtle``) as one of :data:`FORMATS`."""
    name = _ALIASES.get(str(format).lower().lstrip("."), str(format).lower().lstrip("."))
    if name not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: use one of {', '.join(FORMATS)}")
    return name


def format_of(path: str | os.PathLike) -> str:
    """The format a file name's extension names (``trace.provn`` -> ``provn``)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if _ALIASES.get(suffix, suffix) not in FORMATS:
        raise ExportError(f"cannot tell the format of {os.fspath(path)!r} from its extension: "
                          f"name the file .{', .'.join(FORMATS)} or give a format")
    return check_format(suffix)


def serialize(doc: ProvDocument, format: str = "json", *, max_nodes: int = 150,
              group: bool = True) -> bytes:
    """``doc`` as the bytes of a file in ``format`` (text formats in UTF-8). A picture groups
    the elements of one set made by one task (unless ``group`` is False) and is summarised
    further beyond ``max_nodes`` nodes (see :mod:`dlprov.prov.picture`)."""
    format = check_format(format)
    if format in PICTURE_FORMATS:
        from dlprov.prov.picture import render
        return render(doc, format, max_nodes=max_nodes, group=group)
    if format == "cypher":
        from dlprov.graph.neo4j_files import to_cypher
        return to_cypher(doc).encode("utf-8")
    if format == "neo4j-csv":
        from dlprov.graph.neo4j_files import csv_zip
        return csv_zip(doc)
    serializer, options = TEXT_FORMATS[format]
    # PROV-JSON is written compact: json's indent forces its pure-Python encoder, 1.6-1.9x
    # slower and 45% larger on a whole dataflow (`python -m json.tool` pretty-prints it).
    with _quiet_rdflib(), paused_gc():
        if format not in BUNDLE_FORMATS:
            doc = doc.flattened()
        text = doc.serialize(format=serializer, **options)
    return text.encode("utf-8") if isinstance(text, str) else text


def deserialize(content: str | bytes, format: str) -> ProvDocument:
    """Read a document written by :func:`serialize` (a text format) back with ``prov``."""
    format = check_format(format)
    if format in PICTURE_FORMATS or format in GRAPH_FORMATS:
        raise ExportError(f"a {format} file cannot be read back as a PROV document")
    serializer, options = TEXT_FORMATS[format]
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    with _quiet_rdflib():
        return ProvDocument.deserialize(content=content, format=serializer, **options)


PACKAGE_DOCUMENT = "provenance.json"  # the PROV-JSON member of a model package


def read_document(source: str | os.PathLike) -> ProvDocument:
    """A PROV document from a file (its format from the extension) or from a model package
    written by ``dlprov package`` (its PROV-JSON member)."""
    path = Path(source)
    if not path.is_file():
        raise ExportError(f"no file {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as package:
            try:
                return deserialize(package.read(PACKAGE_DOCUMENT), "json")
            except KeyError:
                raise ExportError(f"{path} is a zip without {PACKAGE_DOCUMENT}: not a "
                                  f"dlprov model package") from None
    return deserialize(path.read_bytes(), format_of(path))


@contextmanager
def _quiet_rdflib() -> Iterator[None]:
    # prov's RDF codec calls APIs that rdflib 7 deprecates: nothing our users could act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export(store: Store | str | None = None, *, dataflow: str | None = None,
           run: str | int | None = None, model: str | None = None, format: str = "json",
           max_nodes: int = 150, streaming: bool = True) -> str | bytes:
    """The PROV of a dataflow, one execution (``run``) or one model's trace (``model``) in
    ``format``: text for provn, json, xml, ttl, trig and cypher; bytes for svg, png, pdf and
    neo4j-csv (a zip archive). See :func:`dlprov.prov.mapping.document` for the scopes.
    ``streaming`` False builds the whole document first where a format is otherwise written
    as its records are made (the same output, read back)."""
    format = check_format(format)
    if streaming and _streams(format):
        from dlprov.prov.stream import write_scope
        parts: list[str] = []
        write_scope(read_snapshot(store, dataflow=dataflow, run=run, model=model), format,
                    parts.append)
        return "".join(parts)
    data = serialize(document(store, dataflow=dataflow, run=run, model=model), format,
                     max_nodes=max_nodes)
    return data if format in PICTURE_FORMATS or format == "neo4j-csv" else data.decode("utf-8")


def write(path: str | os.PathLike, store: Store | str | None = None, *,
          dataflow: str | None = None, run: str | int | None = None, model: str | None = None,
          format: str | None = None, max_nodes: int = 150, group: bool = True,
          streaming: bool = True) -> Path:
    """Write :func:`export`'s output to ``path``; the format defaults to its extension
    (``max_nodes``, ``group``: pictures, see :func:`serialize`; ``streaming``: see
    :func:`export`)."""
    path = Path(path)
    format = check_format(format) if format else format_of(path)
    if streaming and _streams(format):
        return _write_streaming(path, read_snapshot(store, dataflow=dataflow, run=run,
                                                    model=model), format)
    doc = document(store, dataflow=dataflow, run=run, model=model)
    return write_document(doc, path, format, max_nodes=max_nodes, group=group)


def write_document(doc: ProvDocument, path: str | os.PathLike, format: str | None = None, *,
                   max_nodes: int = 150, group: bool = True) -> Path:
    """Write a document already built (e.g. :func:`dlprov.prov.model_document`) to ``path``;
    neo4j-csv goes into the folder ``path``, or a zip archive if it ends in ``.zip``."""
    path = Path(path)
    format = check_format(format) if format else format_of(path)
    if format == "neo4j-csv":
        from dlprov.graph.neo4j_files import write_csv
        return write_csv(doc, path)
    data = serialize(doc, format, max_nodes=max_nodes, group=group)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _streams(format: str) -> bool:
    from dlprov.prov.stream import streams
    return streams(format)


def _write_streaming(path: Path, snap, format: str) -> Path:
    """Write a streamed export into a file beside ``path``, renamed onto it when complete:
    a failure leaves no partial file."""
    from dlprov.prov.stream import write_scope
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            write_scope(snap, format, out.write)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
