"""The records of :mod:`dlprov.prov.mapping`, handed on one at a time instead of kept.

The mapping builds one ``prov`` document holding every record of the scope: for a whole
dataflow of 1,000 executions that is 578k records and over a gigabyte. Here the mapping's own
builder runs unchanged, over a document whose bundles pass each record to a callback as it is
added (by ``prov``'s public calls or by :class:`~dlprov.prov.records.RecordAdder`) and keep
nothing: the records, their order and their bundles are those of
:func:`dlprov.prov.mapping.document`, and what stays in memory is the store's rows and the
builder's own index of element names.
"""
from __future__ import annotations

from typing import Any, Callable

from prov.identifier import QualifiedName
from prov.model import ProvBundle, ProvDocument, ProvRecord

from dlprov.prov import mapping
from dlprov.prov.ids import DLPROV
from dlprov.prov.memory import paused_gc
from dlprov.prov.records import Pairs, RecordAdder
from dlprov.prov.scope import Snapshot

Emit = Callable[[ProvRecord], None]
#: (bundle, record type, identifier or None, attribute pairs): a record not made at all
Direct = Callable[[ProvBundle, QualifiedName, "QualifiedName | None", Pairs], None]


class PassingDocument(ProvDocument):
    """A document whose records, and its bundles' records, go to ``emit`` and are not kept
    (the bundles themselves are kept, empty, so their names stay taken)."""

    def __init__(self, emit: Emit) -> None:
        super().__init__()
        self._emit = emit

    def _add_record(self, record: ProvRecord) -> None:
        self._emit(record)

    def bundle(self, identifier) -> ProvBundle:
        bundle = super().bundle(identifier)
        bundle._add_record = self._emit  # shadows the method: every record comes through it
        return bundle


class _PassingAdder(RecordAdder):
    """A :class:`RecordAdder` that hands the records it would store unchecked to ``direct``
    as their parts, without making a ``prov`` record (the bulk of a dataflow: making them was
    a third of the time of writing PROV-JSON)."""

    def __init__(self, namespace: Any, direct: Direct) -> None:
        super().__init__(namespace)
        self._direct = direct

    def _add(self, bundle: ProvBundle, record_type: QualifiedName,
             identifier: QualifiedName | None, attributes: Pairs) -> bool:
        if id(bundle) not in self._fast or not self._plain(identifier, attributes):
            return super()._add(bundle, record_type, identifier, attributes)
        self._direct(bundle, record_type, identifier, attributes)
        return True


class _PassingBuilder(mapping._Builder):
    def __init__(self, snap: Snapshot, emit: Emit, direct: Direct | None) -> None:
        super().__init__(snap)
        self.doc = PassingDocument(emit)
        self.doc.add_namespace(DLPROV)
        if direct is not None and self.add.enabled:
            self.add = _PassingAdder(DLPROV, direct)


def emit_records(snap: Snapshot, emit: Emit, direct: Direct | None = None) -> ProvDocument:
    """Run the mapping over ``snap``, handing each record to ``emit`` as it is made (and, with
    ``direct``, the bulk records as their parts, unmade); returns the (record-less) document,
    whose namespaces and bundles are those of the full one."""
    with paused_gc():
        return _PassingBuilder(snap, emit, direct).build()

