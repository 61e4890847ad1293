"""A PROV document as files for Neo4j, laid out like :mod:`dlprov.graph.build` (and like the
original DLProv's Neo4j graph): labels ``Entity``/``Activity``/``Agent`` keyed by ``id``,
relationship types named after the PROV relations, properties named like the PROV attributes
(``dlprov:ds_tag``, ``dlprov:loss``).

- :func:`to_cypher`: a script of ``MERGE`` statements for ``cypher-shell`` (values inlined as
  escaped literals); running it twice creates nothing new, and it deletes nothing;
- :func:`write_csv` / :func:`csv_zip`: node and relationship CSV files with the typed headers
  of ``neo4j-admin database import full`` (``id:ID``, ``:LABEL``, ``dlprov:loss:double``,
  ``:START_ID``, ``:END_ID``, ``:TYPE``), for loading a new, empty database.
"""
from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from pathlib import Path
from typing import Any

from prov.model import ProvDocument

from dlprov.graph.build import RELATIONS, flatten, property_types

RELATIONSHIPS_FILE = "relationships.csv"
IMPORT_SCRIPT = "neo4j-admin-import.sh"


def quote_name(name: str) -> str:
    """A label, type or property name as a backquoted Cypher identifier."""
    return "`" + name.replace("`", "``") + "`"


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
            "\f": "\\f"}


def literal(value: Any) -> str:
    """``value`` (a float or text, as :func:`flatten` gives them) as a Cypher literal."""
    if isinstance(value, float):
        if math.isnan(value):
            return "0.0/0.0"
        if math.isinf(value):
            return "1.0/0.0" if value > 0 else "-1.0/0.0"
        return repr(value)
    out = []
    for char in str(value):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def _map(props: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{quote_name(k)}: {literal(v)}" for k, v in sorted(props.items())) + "}"


def to_cypher(doc: ProvDocument) -> str:
    """``doc`` as a Cypher script: one ``MERGE`` per node (its properties set with ``+=``), then
    one ``MATCH … MERGE`` per relationship; sorted, so the same document gives the same text."""
    flat = flatten(doc)
    nodes = sum(len(n) for n in flat.nodes.values())
    lines = [f"// dlprov provenance graph: {nodes} nodes, {len(flat.relations)} relationships.",
             "// Idempotent: every statement is a MERGE; nothing is deleted.",
             "// Run with: cypher-shell -f FILE (an index on :Entity(id), :Activity(id) and",
             "// :Agent(id) makes large scripts faster)."]
    for label, members in sorted(flat.nodes.items()):
        for node_id, props in sorted(members.items()):
            merge = f"MERGE (n:{label} {{id: {literal(node_id)}}})"
            lines.append(f"{merge} SET n += {_map(props)};" if props else f"{merge};")
    for kind, source, target in sorted(flat.relations):
        src_label, dst_label = RELATIONS[kind]
        lines.append(f"MATCH (a:{src_label} {{id: {literal(source)}}}) "
                     f"MATCH (b:{dst_label} {{id: {literal(target)}}}) "
                     f"MERGE (a)-[:{quote_name(kind)}]->(b);")
    return "\n".join(lines) + "\n"


def _csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "double":
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return str(value)


def csv_files(doc: ProvDocument) -> dict[str, str]:
    """File name -> CSV text: ``nodes_<Label>.csv`` per label that has nodes, and
    ``relationships.csv``; plus :data:`IMPORT_SCRIPT`, the ``neo4j-admin`` command line."""
    flat = flatten(doc)
    files: dict[str, str] = {}
    for label, members in sorted(flat.nodes.items()):
        if not members:
            continue
        types = property_types(members)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        # the type is always named: a property name holds a colon (dlprov:ds_tag:string)
        writer.writerow(["id:ID", ":LABEL", *(f"{name}:{kind}" for name, kind in types.items())])
        for node_id, props in sorted(members.items()):
            writer.writerow([node_id, label, *(_csv_value(props.get(name), kind)
                                               for name, kind in types.items())])
        files[f"nodes_{label}.csv"] = buffer.getvalue()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([":START_ID", ":END_ID", ":TYPE"])
    for kind, source, target in sorted(flat.relations):
        writer.writerow([source, target, kind])
    files[RELATIONSHIPS_FILE] = buffer.getvalue()
    node_args = " ".join(f"--nodes={name}" for name in files if name.startswith("nodes_"))
    files[IMPORT_SCRIPT] = (
        "#!/bin/sh\n# Load these files into a new (empty) Neo4j database named by $1 "
        "(default neo4j).\ncd \"$(dirname \"$0\")\"\n"
        f"neo4j-admin database import full {node_args} --relationships={RELATIONSHIPS_FILE} "
        "--multiline-fields=true \"${1:-neo4j}\"\n")
    return files


def csv_zip(doc: ProvDocument) -> bytes:
    """:func:`csv_files` as the bytes of a zip archive (fixed timestamps: stable bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in csv_files(doc).items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()


def write_csv(doc: ProvDocument, path: str | os.PathLike) -> Path:
    """Write :func:`csv_files` into the folder ``path`` (made if missing), or as a zip archive
    when ``path`` ends in ``.zip``."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(csv_zip(doc))
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, text in csv_files(doc).items():
        (path / name).write_text(text, encoding="utf-8")
        if name.endswith(".sh"):
            (path / name).chmod(0o755)
    return path
