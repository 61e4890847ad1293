"""PROV records written as Turtle or TriG text one at a time, with the triples of ``prov``'s
PROV-O serializer.

``prov`` writes RDF by encoding the whole document into one rdflib graph (a dataset, for TriG)
and handing it to rdflib's serializer, which sorts and abbreviates the whole graph before writing
a byte: for a whole dataflow that was minutes and gigabytes. Here each record is turned into its
triples as ``prov`` turns it (its own ``_encode_element`` / ``_encode_relation``, given a list
for a graph) and written at once, each term spelled by rdflib (``Node.n3``). The bulk of a
dlprov document (element entities, plain usage, generation, and derivations through an
activity) takes a direct path that writes the same triples without the intermediate objects;
:func:`fast_path_agrees` checks once per process, on probe records, that the direct path and
``prov``'s encoder give the same graph, and every record takes ``prov``'s encoder if not.

A Turtle export is the flattened document (every record in one graph, as ``prov`` writes the
flattened document); TriG writes each bundle's records in a block named by the bundle (a bundle
whose records come apart in the stream gets several blocks: TriG merges blocks of one name).
"""
from __future__ import annotations

import warnings
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

from prov.constants import (
    PROV,
    PROV_ATTR_ACTIVITY,
    PROV_ATTR_ENTITY,
    PROV_ATTR_GENERATED_ENTITY,
    PROV_ATTR_USED_ENTITY,
    PROV_LOCATION,
    PROV_N_MAP,
)
from prov.identifier import QualifiedName
from prov.model import ProvActivity, ProvAgent, ProvDerivation, ProvEntity, ProvGeneration, \
    ProvRecord, ProvUsage, canonical_xsd_datatype
from prov.model.records import _xsd_datetime_text, _xsd_double_text
from prov.serializers import provrdf
from rdflib import RDF, RDFS, XSD, Graph, URIRef
from rdflib.namespace import NamespaceManager

from dlprov.prov.ids import DLPROV

#: the prefixes written at the top: predicates of these namespaces are written prefixed when
#: their local part needs no escaping, literal datatypes through rdflib's namespace manager
PREFIXES = {"prov": PROV.uri, "xsd": str(XSD), "rdfs": str(RDFS), DLPROV.prefix: DLPROV.uri}
_PLAIN_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
XSD_DOUBLE, XSD_DATETIME = str(XSD.double), str(XSD.dateTime)
_ELEMENTS = (ProvEntity, ProvActivity, ProvAgent)
_CACHED_VALUES = (str, bool)  # exact types whose term is the same for equal values
_CACHE_LIMIT = 100_000
_NAME_CACHE_LIMIT = 1_000_000
#: the characters of the lexical forms of numbers and times, none of which needs escaping
#: inside a quoted literal: those are written between quotes directly
_NUMERIC_LEXICAL = frozenset("0123456789+-.:eEINFaTZ")


class _Triples(list):
    """What ``prov``'s encoder takes for a graph: it only adds (and for an identified
    revision, removes) triples."""

    def add(self, triple: tuple[Any, Any, Any]) -> None:
        self.append(triple)

    def remove(self, triple: tuple[Any, Any, Any]) -> None:
        self[:] = [t for t in self if t != triple]


class TurtleWriter:
    """Writes records as Turtle (``named_graphs`` False: every record in one graph) or TriG
    (each record in the graph of its bundle; the document's own records in the default graph).
    ``write`` gets the text in pieces of about ``chunk`` characters; call :meth:`close` last."""

    def __init__(self, write: Callable[[str], Any], *, named_graphs: bool,
                 fast: bool | None = None, chunk: int = 1 << 16) -> None:
        self._write, self.named_graphs, self._chunk = write, named_graphs, chunk
        self.fast = fast_path_agrees() if fast is None else fast
        self._parts: list[str] = []
        self._size = 0
        self._graph: str | None = None  # the named graph whose block is open
        self._serializer = provrdf.ProvRDFSerializer()
        self._anonymous = provrdf.AnonymousIDGenerator()
        self._names = NamespaceManager(Graph(), bind_namespaces="none")
        for prefix, uri in PREFIXES.items():
            self._names.bind(prefix, uri)
        self._predicates: dict[Any, str] = {RDF.type: "a"}
        self._nodes: dict[QualifiedName, str] = {}
        self._terms: dict[Any, str] = {}
        self._datatypes: dict[str, str] = {}
        self._emit("".join(f"@prefix {p}: <{u}> .\n" for p, u in PREFIXES.items()) + "\n")

    # -- records ------------------------------------------------------------------------------
    def record(self, record: ProvRecord) -> None:
        """Write the triples of one record (of a bundle, or of the document)."""
        if self.named_graphs:
            bundle = record.bundle
            self._enter(None if bundle.is_document() else bundle.identifier.uri)
        if self.fast:
            kind = type(record)
            if kind in _ELEMENTS:
                if self._element(record):
                    return
            elif kind is ProvDerivation or kind is ProvUsage or kind is ProvGeneration:
                if self._relation(kind, record):
                    return
        self._triples(self._encoded(record))

    def close(self) -> None:
        """End the open block and hand the last text on."""
        self._enter(None)
        self._flush()

    # -- the direct path ----------------------------------------------------------------------
    def _element(self, record: ProvRecord) -> bool:
        """An entity, activity or agent with its attributes as direct triples (as ``prov``'s
        ``_encode_element``); False for one with a location or a record as a value."""
        identifier = record.identifier
        if type(identifier) is not QualifiedName:
            return False
        attributes = record._attributes
        if PROV_LOCATION in attributes:
            return False
        parts = [self._node(identifier), " a ", self._predicate(record.get_type())]
        for name, values in attributes.items():
            predicate = self._predicate(provrdf._ELEMENT_ATTR_PREDICATES.get(name) or name)
            for value in values:
                if value is None:
                    continue
                if isinstance(value, ProvRecord):
                    return False
                parts += (" ;\n    ", predicate, " ", self._value(value))
        parts.append(" .\n")
        self._emit("".join(parts))
        return True

    def _relation(self, kind: type, record: ProvRecord) -> bool:
        """A usage or generation of an entity by an activity, and a derivation through an
        activity, with nothing else: the triples ``prov`` writes for them."""
        if record.identifier is not None:
            return False
        attributes = record._attributes
        if kind is ProvDerivation:
            names = (PROV_ATTR_GENERATED_ENTITY, PROV_ATTR_USED_ENTITY, PROV_ATTR_ACTIVITY)
        elif kind is ProvUsage:
            names = (PROV_ATTR_ACTIVITY, PROV_ATTR_ENTITY)
        else:
            names = (PROV_ATTR_ENTITY, PROV_ATTR_ACTIVITY)
        if len(attributes) != len(names):
            return False
        nodes = []
        for name in names:
            values = attributes.get(name)
            if values is None or len(values) != 1:
                return False
            value = next(iter(values))
            if type(value) is not QualifiedName:
                return False
            nodes.append(self._node(value))
        if kind is ProvDerivation:
            self._emit(f"{nodes[0]} prov:qualifiedDerivation [ a prov:Derivation ;\n"
                       f"    prov:entity {nodes[1]} ;\n    prov:hadActivity {nodes[2]} ] .\n")
        elif kind is ProvUsage:
            self._emit(f"{nodes[0]} prov:used {nodes[1]} .\n")
        else:
            self._emit(f"{nodes[0]} prov:wasGeneratedBy {nodes[1]} .\n")
        return True

    # -- prov's own encoder -------------------------------------------------------------------
    def _encoded(self, record: ProvRecord) -> _Triples:
        """The triples of ``record`` as ``prov``'s ``encode_container`` adds them."""
        triples = _Triples()
        record_type = record.get_type()
        identifier = None
        if record.identifier:
            identifier = URIRef(str(self._anonymous_or_real(record)))
            triples.add((identifier, RDF.type, URIRef(record_type.uri)))
        if not record.attributes:
            return triples
        if record.is_relation():
            self._serializer._encode_relation(triples, record, record_type, identifier,
                                              PROV_N_MAP)
        else:
            self._serializer._encode_element(triples, record, identifier,
                                             self._anonymous_or_real)
        return triples

    def _anonymous_or_real(self, record: ProvRecord) -> str:
        identifier = record._identifier
        return identifier.uri if identifier else self._anonymous.get_anon_id(record)

    def _triples(self, triples: _Triples) -> None:
        """Triples as Turtle statements, one subject's in a row joined by ``;``."""
        parts: list[str] = []
        subject = None
        for s, p, o in dict.fromkeys(triples):  # prov repeats some, idempotent in a graph
            if s != subject:
                if subject is not None:
                    parts.append(" .\n")
                parts += (s.n3(), " ", self._predicate(p), " ", self._object(o))
                subject = s
            else:
                parts += (" ;\n    ", self._predicate(p), " ", self._object(o))
        if subject is not None:
            parts.append(" .\n")
            self._emit("".join(parts))

    # -- terms --------------------------------------------------------------------------------
    def _node(self, name: QualifiedName) -> str:
        text = self._nodes.get(name)
        if text is None:
            if len(self._nodes) > _NAME_CACHE_LIMIT:
                self._nodes.clear()
            text = self._nodes[name] = URIRef(name.uri).n3()
        return text

    def _value(self, value: Any) -> str:
        """An attribute value as ``prov`` encodes it (``encode_rdf_representation``): a name
        as its IRI, a number or time as a literal of the datatype prov gives it."""
        kind = type(value)
        if kind is QualifiedName:
            return self._node(value)
        if kind is float:
            return self._typed(_xsd_double_text(value), XSD_DOUBLE, value)
        if kind is int:
            datatype = canonical_xsd_datatype(value)
            if datatype is not None:
                return self._typed(str(value), datatype.uri, value)
        elif kind is datetime:
            return self._typed(_xsd_datetime_text(value), XSD_DATETIME, value)
        elif kind in _CACHED_VALUES:
            key = (kind, value)
            text = self._terms.get(key)
            if text is None:
                if len(self._terms) > _CACHE_LIMIT:
                    self._terms.clear()
                text = self._terms[key] = self._object(
                    self._serializer.encode_rdf_representation(value))
            return text
        return self._object(self._serializer.encode_rdf_representation(value))

    def _typed(self, lexical: str, datatype: str, value: Any) -> str:
        """``"lexical"^^datatype``, the datatype spelled by rdflib; through rdflib whole if
        the lexical form is not one of plain numbers or times."""
        if not _NUMERIC_LEXICAL.issuperset(lexical):
            return self._object(self._serializer.encode_rdf_representation(value))
        suffix = self._datatypes.get(datatype)
        if suffix is None:
            suffix = self._datatypes[datatype] = URIRef(datatype).n3(self._names)
        return f'"{lexical}"^^{suffix}'

    def _object(self, term: Any) -> str:
        return term.n3(self._names) if term.__class__ is not URIRef else term.n3()

    def _predicate(self, name: Any) -> str:
        """A predicate (a URIRef, or a QualifiedName standing for its IRI), prefixed when its
        namespace is one of :data:`PREFIXES` and its local part is plain."""
        text = self._predicates.get(name)
        if text is None:
            uri = URIRef(name.uri if isinstance(name, QualifiedName) else name)
            text = uri.n3()
            for prefix, base in PREFIXES.items():
                local = uri[len(base):]
                if uri.startswith(base) and local and local[0].isalpha() \
                        and set(local) <= _PLAIN_LOCAL:
                    text = f"{prefix}:{local}"
                    break
            self._predicates[name] = text
        return text

    # -- output -------------------------------------------------------------------------------
    def _enter(self, graph: str | None) -> None:
        """Open the block of ``graph`` (None: the default graph, outside any block)."""
        if graph == self._graph:
            return
        if self._graph is not None:
            self._emit("}\n\n")
        if graph is not None:
            self._emit(f"{URIRef(graph).n3()} {{\n")
        self._graph = graph

    def _emit(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        if self._parts:
            self._write("".join(self._parts))
            self._parts.clear()
            self._size = 0


@lru_cache(maxsize=None)
def fast_path_agrees() -> bool:
    """Whether this writer, by the direct path and by ``prov``'s encoder alone, writes the
    graph ``prov``'s Turtle serializer writes, on a probe document of every kind of record and
    value the exporter makes (checked once per process, in this ``prov`` and rdflib)."""
    from rdflib.compare import isomorphic

    from dlprov.prov.stream.probe import probe_document

    try:
        doc = probe_document()
        graphs = []
        for fast in (False, True):
            parts: list[str] = []
            writer = TurtleWriter(parts.append, named_graphs=False, fast=fast)
            for container in (doc, *doc.bundles):
                for record in container.records:
                    writer.record(record)
            writer.close()
            graphs.append(Graph().parse(data="".join(parts), format="turtle"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            reference = Graph().parse(data=doc.flattened().serialize(
                format="rdf", rdf_format="turtle"), format="turtle")
        return isomorphic(graphs[0], reference) and isomorphic(graphs[1], reference)
    except Exception:  # an internal of prov or rdflib this relies on is not there
        return False
