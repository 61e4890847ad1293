"""A PROV document as an embedded property graph (ladybug, the maintained fork of Kùzu), laid
out the way the original DLProv loaded it into Neo4j, so that its Cypher queries keep working:

- node tables ``Entity``, ``Activity`` and ``Agent``, keyed by ``id`` (the qualified name, e.g.
  ``dlprov:3f2…``), one property per PROV attribute named exactly like it (``dlprov:ds_tag``,
  ``dlprov:loss``, ``prov:type``, ``prov:startTime``; backquote them in Cypher); numbers are
  DOUBLE, everything else (times, qualified names, text) STRING;
- one relationship table per PROV relation, named after it, between its two main arguments
  (``used``: Activity→Entity, ``wasGeneratedBy``: Entity→Activity, …); the optional arguments
  (time, plan, the activity of a derivation) are not kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import ladybug
from prov.constants import PROV_N_MAP
from prov.model import ProvActivity, ProvAgent, ProvDocument, ProvElement, ProvEntity, ProvRelation

LABELS = {ProvEntity: "Entity", ProvActivity: "Activity", ProvAgent: "Agent"}

#: PROV relation -> (from table, to table).
RELATIONS = {
    "used": ("Activity", "Entity"),
    "wasGeneratedBy": ("Entity", "Activity"),
    "wasDerivedFrom": ("Entity", "Entity"),
    "wasAssociatedWith": ("Activity", "Agent"),
    "wasInformedBy": ("Activity", "Activity"),
    "wasAttributedTo": ("Entity", "Agent"),
    "actedOnBehalfOf": ("Agent", "Agent"),
    "alternateOf": ("Entity", "Entity"),
}


_NUMERIC = {"double", "float", "decimal", "int", "integer", "long", "short"}


class TypeConflict(Exception):
    """A property already typed DOUBLE got text: the caller rebuilds the graph from scratch."""


@dataclass
class Flat:
    """Nodes (``label -> id -> properties``) and relations (``(type, from id, to id)``)."""

    nodes: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {label: {} for label in LABELS.values()})
    relations: set[tuple[str, str, str]] = field(default_factory=set)


def _plain(raw: Any) -> Any:
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, (datetime, date)):
        return raw.isoformat()
    datatype = getattr(raw, "datatype", None)  # a prov Literal, e.g. NaN as xsd:double
    if datatype is not None and datatype.localpart in _NUMERIC:
        try:
            return float(raw.value)
        except ValueError:
            pass
    if datatype is not None:
        return str(raw.value)
    return str(raw)


def flatten(doc: ProvDocument) -> Flat:
    """The nodes and relations of ``doc``, bundles merged."""
    flat = Flat()
    records = list(doc.flattened().get_records())
    for record in records:
        if isinstance(record, ProvElement):
            label = next(name for kind, name in LABELS.items() if isinstance(record, kind))
            props = flat.nodes[label].setdefault(str(record.identifier), {})
            for name, raw in record.attributes:
                props[str(name)] = _plain(raw)
    known = {node_id: label for label, nodes in flat.nodes.items() for node_id in nodes}
    for record in records:
        if not isinstance(record, ProvRelation):
            continue
        kind = PROV_N_MAP.get(record.get_type(), "")
        if kind not in RELATIONS:
            continue
        ends = [value for _, value in record.formal_attributes[:2]]
        if any(end is None for end in ends):
            continue
        source, target = str(ends[0]), str(ends[1])
        for node_id, label in ((source, RELATIONS[kind][0]), (target, RELATIONS[kind][1])):
            if node_id not in known:  # referred to, never declared
                flat.nodes[label][node_id] = {}
                known[node_id] = label
        if (known[source], known[target]) == RELATIONS[kind]:
            flat.relations.add((kind, source, target))
    return flat


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _columns(conn: ladybug.Connection, label: str) -> dict[str, str]:
    result = conn.execute(f"CALL table_info('{label}') RETURN *")
    return {row[1]: row[2] for row in result.get_all()}


def create_schema(conn: ladybug.Connection) -> None:
    """The empty node and relationship tables."""
    for label in LABELS.values():
        conn.execute(f"CREATE NODE TABLE IF NOT EXISTS {label}(id STRING PRIMARY KEY)")
    for kind, (source, target) in RELATIONS.items():
        conn.execute(f"CREATE REL TABLE IF NOT EXISTS {kind}(FROM {source} TO {target})")


def property_types(nodes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Property -> ``double`` when every value of it is a number, else ``string``."""
    types: dict[str, str] = {}
    for props in nodes.values():
        for name, value in props.items():
            kind = "double" if isinstance(value, float) else "string"
            if types.get(name) != "string":
                types[name] = kind
    return dict(sorted(types.items()))


def load(conn: ladybug.Connection, flat: Flat) -> None:
    """Add (merge) the nodes and relations of ``flat``; new attributes become new columns.
    Raises :class:`TypeConflict` when text would go into a DOUBLE column."""
    for label, nodes in flat.nodes.items():
        columns = _columns(conn, label)
        wanted = {name: kind.upper() for name, kind in property_types(nodes).items()}
        for name, kind in wanted.items():
            if name not in columns:
                conn.execute(f"ALTER TABLE {label} ADD {_quote(name)} {kind}")
            elif columns[name] == "DOUBLE" and kind == "STRING":
                raise TypeConflict(f"{label}.{name}")
            else:
                wanted[name] = columns[name]
        for node_id, props in nodes.items():
            params: dict[str, Any] = {"id": node_id}
            sets = []
            for i, (name, value) in enumerate(props.items()):
                params[f"p{i}"] = str(value) if wanted[name] == "STRING" else value
                sets.append(f"n.{_quote(name)} = $p{i}")
            tail = f" SET {', '.join(sets)}" if sets else ""
            conn.execute(f"MERGE (n:{label} {{id: $id}}){tail}", params)
    for kind, source, target in sorted(flat.relations):
        src_label, dst_label = RELATIONS[kind]
        conn.execute(f"MATCH (a:{src_label} {{id: $a}}), (b:{dst_label} {{id: $b}}) "
                     f"MERGE (a)-[:{kind}]->(b)", {"a": source, "b": target})


def load_documents(conn: ladybug.Connection, docs: list[ProvDocument]) -> None:
    """Schema, then every document of ``docs``; a type conflict retypes the clashing columns
    as STRING by loading everything again into the (empty) tables given."""
    create_schema(conn)
    merged = Flat()
    for doc in docs:
        flat = flatten(doc)
        for label, nodes in flat.nodes.items():
            for node_id, props in nodes.items():
                merged.nodes[label].setdefault(node_id, {}).update(props)
        merged.relations |= flat.relations
    load(conn, merged)
