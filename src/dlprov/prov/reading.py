"""Reading a PROV document that another tool wrote, without trusting it.

The bytes are checked before the ``prov`` library sees them (size; XML with a DOCTYPE, the
carrier of entity-expansion and external-entity attacks, is refused: PROV-XML and RDF/XML never
need one), parsed by ``prov`` (every format it reads: PROV-JSON, PROV-XML, PROV-N, PROV-JSONLD,
RDF as Turtle, TriG or RDF/XML), and turned into plain rows: one per element (node) and one per
relation, bundles flattened. Records come in batches (:func:`read_batches`), PROV-JSON decoded a
slice at a time (:mod:`dlprov.prov.provjson`), so that memory stays bounded. Whatever does not make a PROV document raises
:class:`ProvImportError`; relations naming undeclared nodes are PROV and are kept.
"""
from __future__ import annotations

import datetime
import io
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Sequence

from lxml import etree
from prov import serializers
from prov.constants import PROV_LABEL, PROV_N_MAP
from prov.identifier import Identifier, QualifiedName
from prov.model import (
    Literal,
    ProvDocument,
    ProvElement,
    ProvRecord,
    ProvWarning,
)

from dlprov.errors import ProvImportError
from dlprov.prov.export import TEXT_FORMATS
from dlprov.store.external import MAX_KEY_BYTES, record_id

#: Format names and what ``prov`` reads them with (format, options): those dlprov exports, and
#: two that other tools write.
FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    **TEXT_FORMATS,
    "rdfxml": ("rdf", {"rdf_format": "xml"}),
    "jsonld": ("jsonld", {}),
}
_ALIASES = {"provjson": "json", "provx": "xml", "provxml": "xml", "turtle": "ttl",
            "rdf": "rdfxml", "owl": "rdfxml", "prov-n": "provn", "pn": "provn"}
_SUFFIXES = {"json": "json", "provjson": "json", "jsonld": "jsonld", "xml": "xml",
             "provx": "xml", "ttl": "ttl", "turtle": "ttl", "trig": "trig", "rdf": "rdfxml",
             "owl": "rdfxml", "provn": "provn", "pn": "provn"}

#: Default limits: the document's size, and any one string in it (identifier or value).
MAX_BYTES = 64 * 1024 * 1024
MAX_VALUE_CHARS = 1024 * 1024
#: Attributes whose local name (any case) gives the record a node describes, first found wins.
DEFAULT_RECORD_KEYS = ("record_id", "recordId", "id_record", "sha256", "digest")
#: Records handed out at a time by :func:`read_batches`.
BATCH = 5000

_KINDS = {"entity", "activity", "agent"}
_SECURE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                              huge_tree=False)


@dataclass
class Flattened:
    """A document as rows for :mod:`dlprov.store.external`."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)


def choose_format(fmt: str | None, data: bytes, suffix: str = "") -> str:
    """The format name (a key of :data:`FORMATS`): ``fmt`` if given, else from the file's
    suffix, else from the first bytes."""
    if fmt:
        name = _ALIASES.get(fmt.lower(), fmt.lower())
        if name not in FORMATS:
            raise ProvImportError(f"unknown PROV format {fmt!r}: use one of "
                                  f"{', '.join(FORMATS)}")
        return name
    by_suffix = _SUFFIXES.get(suffix.lower().lstrip("."))
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if by_suffix == "xml" or (by_suffix is None and head.startswith(b"<")):
        return "rdfxml" if b"http://www.w3.org/1999/02/22-rdf-syntax-ns#" in head and \
            b"RDF" in head else "xml"
    if by_suffix:
        return by_suffix
    if head.startswith((b"{", b"[")):
        return "jsonld" if b'"@context"' in head or b'"@graph"' in head else "json"
    if head.startswith(b"document"):
        return "provn"
    if head.startswith((b"@prefix", b"PREFIX", b"@base", b"BASE")):
        return "trig"
    raise ProvImportError("cannot tell the document's format from its name or first bytes: "
                          f"give it (one of {', '.join(FORMATS)})")


def parse(data: bytes, fmt: str, *, max_bytes: int = MAX_BYTES,
          strict: bool = True) -> tuple[ProvDocument, list[str]]:
    """The document ``data`` holds in format ``fmt``, and the warnings ``prov`` gave. With
    ``strict``, input that ``prov`` reads only with a warning that a later version rejects is
    refused."""
    _check_bytes(data, fmt, max_bytes)
    reader, options = FORMATS[fmt]
    said: list[str] = []
    with _reading(fmt, said, strict):
        document = serializers.get(reader)().deserialize(io.BytesIO(data), **options)
    return document, said


def _check_bytes(data: bytes, fmt: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ProvImportError(f"the document has {len(data):,} bytes, over the limit of "
                              f"{max_bytes:,}: raise max_bytes if it is genuine")
    if not data.strip():
        raise ProvImportError("the document is empty")
    if fmt in ("xml", "rdfxml"):
        _refuse_dtd(data)


def _refuse_dtd(data: bytes) -> None:
    try:
        tree = etree.parse(io.BytesIO(data), _SECURE_XML)
    except etree.XMLSyntaxError as exc:
        raise ProvImportError(f"not well-formed XML: {_short(exc)}") from None
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise ProvImportError("the XML document declares a DOCTYPE, which PROV-XML and RDF/XML "
                              "never need and entity-expansion attacks rely on: refused")


@dataclass
class Batch:
    """Some of a document's records: those of one bundle (None: the document's own), in the
    order ``prov`` reads them, with the namespaces the bundle had registered once they were
    read."""

    bundle: str | None
    records: list[ProvRecord]
    namespaces: dict[str, str]


def read_batches(data: bytes, fmt: str, *, max_bytes: int = MAX_BYTES, strict: bool = True,
                 warned: list[str] | None = None, size: int = BATCH) -> Iterator[Batch]:
    """The records of the document ``data`` holds in format ``fmt``, ``size`` at a time, as
    :func:`parse` reads them (the same checks and errors; ``prov``'s warnings appended to
    ``warned``). PROV-JSON is read batch by batch: ``prov`` builds the objects of only
    ``size`` records at a time, so a document of millions of records never exists as ``prov``
    objects all at once. Other formats are parsed whole, then handed out in batches."""
    warned = [] if warned is None else warned
    _check_bytes(data, fmt, max_bytes)
    if fmt != "json":
        document, said = parse(data, fmt, max_bytes=max_bytes, strict=strict)
        warned += said
        for name, bundle in [(None, document),
                             *((_name(b.identifier), b) for b in document.bundles)]:
            namespaces = {ns.prefix: ns.uri for ns in bundle.namespaces}
            records = bundle.records
            for start in range(0, max(len(records), 1), size):  # an empty bundle counts
                yield Batch(name, records[start:start + size], namespaces)
        return
    from dlprov.prov.provjson import json_batches
    yield from json_batches(data, size, lambda: _reading("json", warned, strict))


@contextmanager
def _reading(fmt: str, warned: list[str], strict: bool) -> Iterator[None]:
    """What ``prov`` raises while reading becomes :class:`ProvImportError`; its warnings go to
    ``warned``, and with ``strict`` those saying a later ``prov`` rejects the input raise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except RecursionError:
            raise ProvImportError(f"the {fmt} document is nested too deeply to read") from None
        except ProvImportError:
            raise
        except Exception as exc:  # prov, rdflib, lxml and json raise many kinds
            raise ProvImportError(f"not a valid {fmt} PROV document: "
                                  f"{type(exc).__name__}: {_short(exc)}") from None
    said = [str(w.message) for w in caught if issubclass(w.category, ProvWarning)]
    warned += said
    if strict:
        rejected = [m for m in said if "will reject" in m]
        if rejected:
            raise ProvImportError(f"malformed {fmt} PROV document: {_short(rejected[0])} "
                                  f"({len(rejected)} such problem(s))")


def batch_rows(batch: Batch, *, record_keys: Sequence[str] = DEFAULT_RECORD_KEYS,
               record_id_from_name: bool = False,
               max_value_chars: int = MAX_VALUE_CHARS) -> Flattened:
    """The batch's nodes and relations as rows. A node declared more than once in the batch is
    one row with the attributes of all its declarations; each node row also carries
    ``_rank``, the rank of the key its record id came from (see :func:`record_rank`), so that
    declarations in later batches can be merged into it by :func:`merge_node`."""
    out = Flattened(namespaces=dict(batch.namespaces))
    keys = key_ranks(record_keys)
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    for record in batch.records:
        if isinstance(record, ProvElement):
            _add_node(nodes, record, batch.bundle, max_value_chars)
        else:
            out.relations.append(_relation(record, batch.bundle, max_value_chars))
    for node in nodes.values():
        _choose_record_id(node, keys, record_id_from_name)
        node["_rank"] = record_rank(node["record_key"], keys)
    out.nodes = list(nodes.values())
    return out


def key_ranks(record_keys: Sequence[str]) -> dict[str, int]:
    """Each record key (lower case) and its rank: the first given is 0."""
    return {k.lower(): i for i, k in reversed(list(enumerate(record_keys)))}


def record_rank(record_key: str | None, keys: dict[str, int]) -> int | None:
    """How strongly a node's record id was chosen: the rank of its key among the record keys,
    after all of them for one taken from the entity's name, None for none."""
    if record_key is None:
        return None
    return len(keys) if record_key == "(name)" else keys.get(record_key.lower(), len(keys))


def merge_node(stored: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``stored`` (a node row, with ``_rank``) with a later declaration ``node`` of the same
    node merged in, as if both had been read in one batch: attributes added, the first label
    kept, and the record id of the higher ranked key (the earlier one on a tie)."""
    merged = dict(stored)
    attributes = dict(stored["attributes"] or {})
    for name, value in (node["attributes"] or {}).items():
        for one in value if isinstance(value, list) and name in attributes else [value]:
            _add_attribute(attributes, name, one)
    merged["attributes"] = attributes or None
    if merged["label"] is None:
        merged["label"] = node["label"]
    if node["_rank"] is not None and (stored["_rank"] is None or node["_rank"] < stored["_rank"]):
        merged["record_key"], merged["record_id"] = node["record_key"], node["record_id"]
        merged["_rank"] = node["_rank"]
    return merged


def _add_node(nodes: dict, record: ProvElement, bundle: str | None, limit: int) -> None:
    kind = PROV_N_MAP[record.get_type()]
    if kind not in _KINDS:  # pragma: no cover - every ProvElement is one of the three
        raise ProvImportError(f"unexpected PROV element {kind!r}")
    uri = _uri(record.identifier, "an element", limit)
    other = "activity" if kind == "entity" else "entity" if kind == "activity" else None
    if other and (uri, other) in nodes:
        raise ProvImportError(f"{record.identifier} is declared both an entity and an activity, "
                              "which PROV forbids")
    node = nodes.setdefault((uri, kind), {
        "identifier": uri, "name": str(record.identifier), "kind": kind, "bundle": bundle,
        "label": None, "attributes": {}, "record_key": None, "record_id": None,
        "_local": record.identifier.localpart, "_values": []})
    for attr, value in record.attributes:
        if value is None:
            continue
        _add_attribute(node["attributes"], _name(attr), _plain(value, attr, limit))
        node["_values"].append((attr, value))
        if attr == PROV_LABEL and node["label"] is None:
            node["label"] = str(_plain(value, attr, limit))


def _relation(record: ProvRecord, bundle: str | None, limit: int) -> dict[str, Any]:
    kind = PROV_N_MAP[record.get_type()]
    formal = list(record.formal_attributes)
    if not formal or formal[0][1] is None:
        raise ProvImportError(f"a {kind} relation ({record.identifier or 'without id'}) lacks "
                              f"its {formal[0][0] if formal else 'subject'}")
    subject = _uri(formal[0][1], f"a {kind} relation's subject", limit)
    target = formal[1][1] if len(formal) > 1 else None
    attributes: dict[str, Any] = {}
    for attr, value in [*formal[2:], *record.extra_attributes]:
        if value is not None:
            _add_attribute(attributes, _name(attr), _plain(value, attr, limit))
    return {"kind": kind, "subject": subject, "bundle": bundle,
            "identifier": _uri(record.identifier, "a relation", limit)
            if record.identifier else None,
            "object": _uri(target, f"a {kind} relation's object", limit)
            if target is not None else None,
            "attributes": attributes or None}


def _choose_record_id(node: dict, keys: dict[str, int], from_name: bool) -> None:
    """Set the node's record_key and record_id from its attributes (the first of ``keys``
    that it has), else, if asked, from the local part of an entity's identifier."""
    found = []
    for attr, value in node.pop("_values"):
        if isinstance(attr, QualifiedName) and attr.localpart.lower() in keys:
            found.append((keys[attr.localpart.lower()], attr.localpart, _scalar(value)))
    local = node.pop("_local")
    node["attributes"] = node["attributes"] or None
    for _, key, value in sorted(found, key=lambda item: item[0]):
        if value is not None and (text := record_id(key, value)) is not None:
            node["record_key"], node["record_id"] = key, text
            return
    if from_name and node["kind"] == "entity" and (text := record_id("", local)) is not None:
        node["record_key"], node["record_id"] = "(name)", text


def _add_attribute(attributes: dict[str, Any], name: str, value: Any) -> None:
    if name not in attributes:
        attributes[name] = value
        return
    present = attributes[name]
    values = present if isinstance(present, list) else [present]
    if value not in values:
        attributes[name] = [*values, value]


def _scalar(value: Any) -> Any:
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, Identifier) and not isinstance(value, QualifiedName):
        return value.uri
    if isinstance(value, (str, int, float, Decimal, QualifiedName)):
        return value
    return None


def _plain(value: Any, attr: Any, limit: int) -> Any:
    """A value as JSON can hold it: text, a number or a boolean."""
    if isinstance(value, bool) or isinstance(value, int) and abs(value) < 2 ** 63:
        result: Any = value
    elif isinstance(value, float):
        result = value if math.isfinite(value) else str(value)
    elif isinstance(value, (datetime.datetime, datetime.date)):
        result = value.isoformat()
    elif isinstance(value, Literal):
        result = str(value.value)
    elif isinstance(value, QualifiedName):
        result = str(value)
    elif isinstance(value, Identifier):
        result = value.uri
    else:
        result = str(value)
    if isinstance(result, str) and len(result) > limit:
        raise ProvImportError(f"attribute {attr} has a value of {len(result):,} characters, "
                              f"over the limit of {limit:,}: raise max_value_chars if genuine")
    return result


def _uri(identifier: Any, what: str, limit: int) -> str:
    uri = identifier.uri if isinstance(identifier, Identifier) else str(identifier)
    if len(uri.encode()) > min(limit, MAX_KEY_BYTES):
        raise ProvImportError(f"{what} has an identifier of {len(uri):,} characters "
                              f"({uri[:60]}...), over the limit of {MAX_KEY_BYTES} bytes")
    return uri


def _name(identifier: Any) -> str:
    name = str(identifier)
    if len(name.encode()) > MAX_KEY_BYTES:
        raise ProvImportError(f"a name of {len(name):,} characters ({name[:60]}...) is over "
                              f"the limit of {MAX_KEY_BYTES} bytes")
    return name


def _short(exc: Any, length: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= length else text[:length] + "..."

