"""Adding the bulk of a document's records (elements, usage, generation, derivation) quickly.

``prov``'s public calls (``bundle.entity``, ``bundle.used``, ...) check every identifier and
value of every record: they resolve each name against the bundle's namespaces and coerce each
value to the type its attribute expects. For a whole dataflow that is hundreds of thousands of
records whose names and values the exporter made itself, of the few types that ``prov`` stores
unchanged, and the checks were most of the time of building the document.

:class:`RecordAdder` stores such records as ``prov`` would, without the checks: a record's
identifier and names must be :class:`~prov.identifier.QualifiedName` of the one namespace the
bundle has registered as itself (see :meth:`RecordAdder.register`), its values of the types in
``_STORED_AS_IS``. Anything else (a Literal, another namespace) goes through the public call, so
the document is the same either way. Whether this ``prov`` stores records the way assumed here is
checked once, by building probe records both ways; if not, every record takes the public call.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Sequence

from prov.constants import (
    PROV_ATTR_ACTIVITY,
    PROV_ATTR_ENTITY,
    PROV_ATTR_GENERATED_ENTITY,
    PROV_ATTR_USED_ENTITY,
    PROV_DERIVATION,
    PROV_ENTITY,
    PROV_GENERATION,
    PROV_USAGE,
)
from prov.identifier import Namespace, QualifiedName
from prov.model import PROV_REC_CLS, ProvBundle, ProvDocument

# Values prov keeps as they are for a non-formal attribute: it converts or checks the others
# (Literal, QualifiedName, dates, Decimal, ...). Exact types, not subclasses.
_STORED_AS_IS = frozenset({str, int, float, bool, datetime})

Pairs = Sequence[tuple[QualifiedName, Any]]


class RecordAdder:
    """Adds entities and usage, generation and derivation relations to bundles whose names
    are all of ``namespace``."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self._fast: set[int] = set()   # id() of the bundles that hold ``namespace`` as itself
        self._bundles: list[ProvBundle] = []  # kept alive, so their id() stays theirs
        self.enabled = _stores_as_assumed(namespace)

    def register(self, bundle: ProvBundle) -> ProvBundle:
        """Register the namespace in ``bundle`` (prov would register a copy of it on the first
        name it meets, and re-mint every later name in that copy)."""
        if bundle.add_namespace(self.namespace) is self.namespace and self.enabled:
            self._fast.add(id(bundle))
            self._bundles.append(bundle)
        return bundle

    # -- the records --------------------------------------------------------------------------
    def entity(self, bundle: ProvBundle, identifier: QualifiedName, attributes: Pairs) -> None:
        if not self._add(bundle, PROV_ENTITY, identifier, attributes):
            bundle.entity(identifier, attributes)

    def used(self, bundle: ProvBundle, activity: QualifiedName, entity: QualifiedName) -> None:
        if not self._add(bundle, PROV_USAGE, None,
                         ((PROV_ATTR_ACTIVITY, activity), (PROV_ATTR_ENTITY, entity))):
            bundle.used(activity, entity)

    def generated(self, bundle: ProvBundle, entity: QualifiedName,
                  activity: QualifiedName) -> None:
        if not self._add(bundle, PROV_GENERATION, None,
                         ((PROV_ATTR_ENTITY, entity), (PROV_ATTR_ACTIVITY, activity))):
            bundle.wasGeneratedBy(entity, activity)

    def derived(self, bundle: ProvBundle, generated: QualifiedName, used: QualifiedName,
                activity: QualifiedName) -> None:
        if not self._add(bundle, PROV_DERIVATION, None,
                         ((PROV_ATTR_GENERATED_ENTITY, generated),
                          (PROV_ATTR_USED_ENTITY, used), (PROV_ATTR_ACTIVITY, activity))):
            bundle.wasDerivedFrom(generated, used, activity)

    def _add(self, bundle: ProvBundle, record_type: QualifiedName,
             identifier: QualifiedName | None, attributes: Pairs) -> bool:
        """Store the record unchecked if it is of the kind described above; False if not."""
        if id(bundle) not in self._fast or not self._plain(identifier, attributes):
            return False
        record = PROV_REC_CLS[record_type](bundle, identifier)
        stored = record._attributes
        for name, value in attributes:
            if value is not None:  # as prov: None means no attribute
                stored[name].add(value)
        bundle._add_record(record)
        return True

    def _plain(self, identifier: QualifiedName | None, attributes: Pairs) -> bool:
        """Whether a record can be stored unchecked: names in the exporter's namespace, and
        values of the types prov stores as they are."""
        namespace = self.namespace
        if identifier is not None and (type(identifier) is not QualifiedName
                                       or identifier.namespace is not namespace):
            return False
        for name, value in attributes:
            # prov's own names (prov:activity, ...) are the formal attributes, whose values
            # are names; the exporter's (dlprov:...) carry plain values
            if name.namespace is namespace:
                if value is not None and type(value) not in _STORED_AS_IS:
                    return False
            elif type(value) is not QualifiedName or value.namespace is not namespace:
                return False
        return True


@lru_cache(maxsize=None)
def _stores_as_assumed(namespace: Namespace) -> bool:
    """Whether records added unchecked equal those of the public calls, in this ``prov``
    (records, and each record's attributes in order); asked once per namespace."""
    try:
        docs = []
        for fast in (False, True):
            doc = ProvDocument()
            doc.add_namespace(namespace)
            bundle = doc.bundle(namespace["probe/bundle"])
            adder = RecordAdder.__new__(RecordAdder)
            adder.namespace, adder._bundles, adder._fast = namespace, [], set()
            adder.enabled = fast
            adder.register(bundle)
            entity, activity, source = (namespace["probe/e"], namespace["probe/a"],
                                        namespace["probe/s"])
            adder.entity(bundle, entity, [(namespace["text"], "x"), (namespace["n"], 1),
                                          (namespace["f"], 0.5), (namespace["b"], True),
                                          (namespace["t"], datetime(2024, 1, 2, 3, 4, 5))])
            adder.used(bundle, activity, source)
            adder.generated(bundle, entity, activity)
            adder.derived(bundle, entity, source, activity)
            docs.append(doc)
        slow, fast = docs
        return slow == fast and [r.attributes for b in slow.bundles for r in b.records] == [
            r.attributes for b in fast.bundles for r in b.records]
    except Exception:  # an internal this relies on is not there: use the public calls
        return False
