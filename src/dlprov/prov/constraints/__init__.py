"""Validity of PROV documents: the W3C PROV-CONSTRAINTS Recommendation's constraints.

::

    from dlprov.prov.constraints import validate
    report = validate(document)          # a prov.model.ProvDocument
    if not report.valid:
        print(report.table())            # each violation: constraint number, name, records

What is checked, family by family (:mod:`~dlprov.prov.constraints.catalog`):

- uniqueness and keys (22-29): statements that must describe one thing are unified, their
  attributes merged (:mod:`~dlprov.prov.constraints.unify`);
- event ordering (30-49), from the relations and from the times given
  (:mod:`~dlprov.prov.constraints.ordering`);
- typing, impossibility and disjointness (50-56) (:mod:`~dlprov.prov.constraints.typecheck`).

The top level of a document and each of its bundles are validated separately, as the
Recommendation asks. Files: :func:`dlprov.prov.constraints.files.validate_file`.
"""
from __future__ import annotations

from typing import Callable, Iterable

from prov.model import ProvBundle, ProvDocument, ProvRecord

from dlprov.prov.constraints.catalog import CONSTRAINTS, FAMILIES
from dlprov.prov.constraints.ordering import check_ordering
from dlprov.prov.constraints.report import Report, Violation
from dlprov.prov.constraints.statements import Instance
from dlprov.prov.constraints.typecheck import check_types
from dlprov.prov.constraints.unify import unify
from dlprov.prov.memory import paused_gc

__all__ = ["validate", "Validation", "Report", "Violation", "CONSTRAINTS", "FAMILIES"]


def validate(document: ProvDocument | ProvBundle, *, times: bool = True,
             source: str = "<document>") -> Report:
    """Check ``document`` against PROV-CONSTRAINTS: the :class:`Report` lists every
    violation found (none: valid). ``times=False`` leaves out the checks of the times
    events carry (the Recommendation's ordering is over events, times are informative)."""
    validation = Validation(times=times, source=source)
    with paused_gc():  # millions of live objects, no cycles to find among them
        validation.add(document.get_records())
        if isinstance(document, ProvDocument):
            for bundle in document.bundles:
                validation.add(bundle.get_records(), bundle=str(bundle.identifier))
    return validation.report()


class Validation:
    """A validation fed records a batch at a time (as :func:`dlprov.prov.reading.
    read_batches` hands them out), so that the ``prov`` objects of a large document need
    not all be alive at once; :meth:`report` checks what was added."""

    def __init__(self, *, times: bool = True, source: str = "<document>") -> None:
        self.times = times
        self.source = source
        self.instances: dict[str | None, Instance] = {}

    def add(self, records: Iterable[ProvRecord], *, bundle: str | None = None) -> None:
        """Add ``records`` of ``bundle`` (None: the document's top level)."""
        found = self.instances.get(bundle)
        if found is None:
            found = self.instances[bundle] = Instance(bundle)
        for record in records:
            found.add(record)

    def report(self) -> Report:
        """Check each bundle, and the top level, separately, as the Recommendation asks."""
        report = Report(self.source)
        seen: set[tuple] = set()

        def found(violation: Violation) -> None:
            if violation.key not in seen:
                seen.add(violation.key)
                report.add(violation)

        with paused_gc():
            for instance in self.instances.values():
                check(instance, found, times=self.times)
                report.records += instance.records
        report.bundles = sum(name is not None for name in self.instances)
        return report


def check(instance: Instance, found: Callable[[Violation], None], *,
          times: bool = True) -> None:
    """Check one bundle's statements (unifying them first), calling ``found`` with each
    :class:`Violation`."""
    unify(instance, found)
    check_types(instance, found)
    check_ordering(instance, found, times=times)
