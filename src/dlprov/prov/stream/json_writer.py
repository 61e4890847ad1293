"""PROV-JSON of records handed on one at a time: each record is encoded into its JSON text as it
comes, as ``prov``'s ``encode_json_container`` encodes it, and only that text is kept.

PROV-JSON groups a container's records by type (``"entity": {...}``, ``"used": {...}``), so
nothing can be written before the last record; but the encoded text of a record is a fraction
of the ``prov`` record it came from (its attribute sets, qualified names, ...), and for a whole
dataflow the document took over a gigabyte where its text is about 150 MB. The text is
assembled in ``prov``'s order (record types, identifiers and bundles in order of first
appearance, records of one identifier as a list, anonymous ids ``_:idN`` counted per
container) with ``json``'s default separators, as ``json.dump`` writes prov's dict: the output
is byte for byte that of ``serialize(document(...), "json")``.

Every name of a dlprov document is written with its own prefix, so a container's prefixes are
those its bundle registered. A name that would need a prefix minted (a default namespace, an
unprefixed one) makes :meth:`JsonWriter.close` raise :class:`NeedsWholeDocument`: the caller
writes that document the whole-document way.
"""
from __future__ import annotations

import json
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _string  # as json.dump writes a str
from typing import Any, Callable

from prov.constants import PROV_ATTRIBUTE_LITERALS, PROV_ATTRIBUTE_QNAMES, PROV_N_MAP
from prov.identifier import QualifiedName
from prov.model import ProvBundle, ProvRecord, canonical_xsd_datatype
from prov.model.records import _xsd_datetime_text, _xsd_double_text
from prov.serializers import provjson

_dumps = json.dumps  # json's defaults: the separators and escaping json.dump gives prov's dict
_NAME, _TIME, _VALUE = 0, 1, 2  # formal name attributes, formal times, the others


class NeedsWholeDocument(Exception):
    """The records need what only the whole-document encoder does (a minted prefix)."""


class _Container:
    """One bundle's (or the document's) encoded records, grouped as PROV-JSON groups them."""

    __slots__ = ("bundle", "names", "groups", "anonymous")

    def __init__(self, bundle: ProvBundle, parent: _Container | None) -> None:
        self.bundle = bundle
        self.names = provjson._JSONPrefixMap(bundle, parent=parent.names if parent else None)
        self.groups: dict[str, dict[str, Any]] = {}  # label -> identifier -> text (or list)
        self.anonymous = 0


class JsonWriter:
    """Encodes records as they come (:meth:`record`); :meth:`close` writes the document's
    PROV-JSON text to ``write`` in pieces."""

    def __init__(self, write: Callable[[str], Any], chunk: int = 1 << 16) -> None:
        self._write, self._chunk = write, chunk
        self._document: _Container | None = None
        self._containers: dict[int, _Container] = {}  # id(bundle) -> its container
        self._kinds: dict[QualifiedName, tuple[str, int]] = {}  # attribute -> (key, kind)
        self._names: dict[str, str] = {}  # a name's prefix:local text -> its JSON string
        self._strings: dict[str, str] = {}
        self._labels: dict[QualifiedName, str] = {}
        self._types: dict[Any, str] = {}

    def record(self, record: ProvRecord) -> None:
        """Encode one record (of a bundle, or of the document) and keep its text."""
        self._keep(record._bundle, record.get_type(), record._identifier,
                   record._attributes.items())

    def direct(self, bundle: ProvBundle, record_type: QualifiedName,
               identifier: QualifiedName | None, pairs: Any) -> None:
        """Encode a record from its parts, as ``prov`` would store and encode them: the
        values of one attribute together in order of first appearance, an equal value of
        the same type once, None left out."""
        grouped: dict[QualifiedName, list[Any]] = {}
        for name, value in pairs:
            if value is None:
                continue
            values = grouped.get(name)
            if values is None:
                grouped[name] = [value]
            elif not any(type(v) is type(value) and v == value for v in values):
                values.append(value)
        self._keep(bundle, record_type, identifier, grouped.items())

    def _keep(self, bundle: ProvBundle, record_type: QualifiedName,
              identifier: QualifiedName | None, attributes: Any) -> None:
        container = self._containers.get(id(bundle))
        if container is None:
            container = self._container(bundle)
        if identifier:
            key = self._name(identifier)
        else:
            container.anonymous += 1
            key = _string(f"_:id{container.anonymous}")  # str() of prov's anonymous Identifier
        label = self._labels.get(record_type)
        if label is None:
            label = self._labels[record_type] = PROV_N_MAP[record_type]
        group = container.groups.get(label)
        if group is None:
            group = container.groups[label] = {}
        text = self._encoded(attributes, container.names.qname_text)
        if key not in group:
            group[key] = text
        elif isinstance(group[key], list):
            group[key].append(text)
        else:
            group[key] = [group[key], text]

    def close(self) -> None:
        """Write the document; :class:`NeedsWholeDocument` if its prefixes are not simple."""
        document = self._document
        if document is None:
            raise NeedsWholeDocument("no records")
        containers = [document] + [self._containers[id(b)] for b in document.bundle.bundles
                                   if id(b) in self._containers]
        for container in containers:
            again = provjson._JSONPrefixMap(container.bundle, parent=(
                document.names if container is not document else None))
            if again.prefixes != container.names.prefixes or container.names._chosen:
                raise NeedsWholeDocument("a name needs a prefix of its own")
        parts: list[str] = []
        size = 0

        def emit(text: str) -> None:
            nonlocal size
            parts.append(text)
            size += len(text)
            if size >= self._chunk:
                self._write("".join(parts))
                parts.clear()
                size = 0

        before_bundles = bool(document.groups or document.names.prefixes)
        self._container_text(document, emit, close=False)
        bundles = list(document.bundle.bundles)
        if bundles:
            emit(", " if before_bundles else "")
            emit('"bundle": {')
            for n, bundle in enumerate(bundles):
                container = self._containers.get(id(bundle)) or self._container(bundle)
                emit(", " if n else "")
                emit(f"{_dumps(container.names.qname_text(bundle.identifier))}: ")
                self._container_text(container, emit, close=True)
            emit("}")
        emit("}")
        self._write("".join(parts))

    # -- encoding -----------------------------------------------------------------------------
    def _container(self, bundle: ProvBundle) -> _Container:
        if bundle.is_document():
            container = self._document = _Container(bundle, None)
        else:
            if self._document is None:
                self._container(bundle.document)
            container = _Container(bundle, self._document)
        self._containers[id(bundle)] = container
        return container

    def _encoded(self, attributes: Any, qname_text: Callable[[object], str]) -> str:
        """A record's (attribute, values) as ``encode_json_container`` makes them, as JSON
        text."""
        items = []
        kinds = self._kinds
        for attr, values in attributes:
            found = kinds.get(attr)
            if found is None:
                kind = _NAME if attr in PROV_ATTRIBUTE_QNAMES else \
                    _TIME if attr in PROV_ATTRIBUTE_LITERALS else _VALUE
                found = kinds[attr] = (_string(qname_text(attr)) + ": ", kind)
            key, kind = found
            for value in values:  # the first (prov writes the first of a formal attribute)
                break
            else:
                continue  # no value: no key
            if kind is _NAME:
                text = self._name(value) if type(value) is QualifiedName \
                    else _dumps(qname_text(value))
            elif kind is _TIME:
                text = _dumps(_xsd_datetime_text(value))
            elif len(values) == 1:
                text = self._value(value, qname_text)
            else:
                text = "[" + ", ".join(self._value(v, qname_text) for v in values) + "]"
            items.append(key + text)
        return "{" + ", ".join(items) + "}"

    def _value(self, value: Any, qname_text: Callable[[object], str]) -> str:
        """A value as ``encode_json_representation`` makes it, as JSON text."""
        kind = type(value)
        if kind is str:
            text = self._strings.get(value)
            if text is None:
                if len(self._strings) > 100_000:
                    self._strings.clear()
                text = self._strings[value] = _string(value)
            return text
        if kind is float or kind is int:  # {"$": lexical, "type": datatype}
            datatype = canonical_xsd_datatype(value)
            if datatype is not None:
                suffix = self._types.get(datatype)
                if suffix is None:
                    suffix = self._types[datatype] = f', "type": {_string(str(datatype))}}}'
                lexical = _xsd_double_text(value) if kind is float else str(value)
                return f'{{"$": {_string(lexical)}{suffix}'
        return _dumps(provjson.encode_json_representation(value, qname_text))

    def _name(self, name: QualifiedName) -> str:
        """A prefixed name as its JSON string (``qname_text`` of a prefixed name is its
        ``prefix:local`` text, ``_str``, in every container)."""
        text = self._names.get(name._str)
        if text is None:
            if len(self._names) > 1_000_000:
                self._names.clear()
            text = self._names[name._str] = _string(
                self._document.names.qname_text(name) if self._document else str(name))
        return text

    def _container_text(self, container: _Container, emit: Callable[[str], None], *,
                        close: bool) -> None:
        emit("{")
        first_item = True
        if container.names.prefixes:
            emit(f'"prefix": {_dumps(container.names.prefixes)}')
            first_item = False
        for label, group in container.groups.items():
            emit(("" if first_item else ", ") + f"{_dumps(label)}: {{")
            first_item = False
            emit(", ".join(key + ": " + (text if type(text) is str else
                                         "[" + ", ".join(text) + "]")
                           for key, text in group.items()))
            emit("}")
        container.groups = {}  # written: its text is no longer needed
        if close:
            emit("}")


@lru_cache(maxsize=None)
def json_agrees() -> bool:
    """Whether this writer gives ``prov``'s PROV-JSON byte for byte on a probe document of
    every kind of record and value dlprov writes, records given whole and as their parts
    (checked once per process)."""
    from dlprov.prov.stream.probe import probe_document

    try:
        doc = probe_document()
        expected = doc.serialize(format="json")
        records = [r for container in (doc, *doc.bundles) for r in container.records]
        for whole in (True, False):
            parts: list[str] = []
            writer = JsonWriter(parts.append)
            for r in records:
                if whole or r.bundle.is_document():
                    writer.record(r)
                else:
                    writer.direct(r.bundle, r.get_type(), r.identifier, r.attributes)
            writer.close()
            if "".join(parts) != expected:
                return False
        return True
    except Exception:  # an internal of prov this relies on is not there
        return False
