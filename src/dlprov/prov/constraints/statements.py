"""A PROV instance as statements over :class:`~dlprov.prov.constraints.terms.Terms`, in the
normal form PROV-CONSTRAINTS reasons about (its definitions 1-4 and inference 11).

Every record becomes one :class:`Statement`: its kind (``wasGeneratedBy``), its identifier
(a fresh variable when it has none) and its positional arguments. An optional argument left
out becomes a fresh variable, except where the Recommendation keeps the placeholder ``-`` (a
derivation's activity, generation and usage when its activity is ``-``; an association's
plan); a required one left out is a malformed statement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prov import constants as pc
from prov.model import ProvBundle, ProvRecord

from dlprov.prov.constraints.terms import PLACEHOLDER, Terms

#: prov record type -> (PROV-N name, its positional attributes, which of them are required)
KINDS: dict[Any, tuple[str, tuple[Any, ...], tuple[bool, ...]]] = {
    pc.PROV_ENTITY: ("entity", (), ()),
    pc.PROV_AGENT: ("agent", (), ()),
    pc.PROV_ACTIVITY: ("activity", (pc.PROV_ATTR_STARTTIME, pc.PROV_ATTR_ENDTIME),
                       (False, False)),
    pc.PROV_GENERATION: ("wasGeneratedBy", (pc.PROV_ATTR_ENTITY, pc.PROV_ATTR_ACTIVITY,
                                            pc.PROV_ATTR_TIME), (True, False, False)),
    pc.PROV_USAGE: ("used", (pc.PROV_ATTR_ACTIVITY, pc.PROV_ATTR_ENTITY, pc.PROV_ATTR_TIME),
                    (True, False, False)),
    pc.PROV_COMMUNICATION: ("wasInformedBy", (pc.PROV_ATTR_INFORMED, pc.PROV_ATTR_INFORMANT),
                            (True, True)),
    pc.PROV_START: ("wasStartedBy", (pc.PROV_ATTR_ACTIVITY, pc.PROV_ATTR_TRIGGER,
                                     pc.PROV_ATTR_STARTER, pc.PROV_ATTR_TIME),
                    (True, False, False, False)),
    pc.PROV_END: ("wasEndedBy", (pc.PROV_ATTR_ACTIVITY, pc.PROV_ATTR_TRIGGER,
                                 pc.PROV_ATTR_ENDER, pc.PROV_ATTR_TIME),
                  (True, False, False, False)),
    pc.PROV_INVALIDATION: ("wasInvalidatedBy", (pc.PROV_ATTR_ENTITY, pc.PROV_ATTR_ACTIVITY,
                                                pc.PROV_ATTR_TIME), (True, False, False)),
    pc.PROV_DERIVATION: ("wasDerivedFrom", (pc.PROV_ATTR_GENERATED_ENTITY,
                                            pc.PROV_ATTR_USED_ENTITY, pc.PROV_ATTR_ACTIVITY,
                                            pc.PROV_ATTR_GENERATION, pc.PROV_ATTR_USAGE),
                         (True, True, False, False, False)),
    pc.PROV_ATTRIBUTION: ("wasAttributedTo", (pc.PROV_ATTR_ENTITY, pc.PROV_ATTR_AGENT),
                          (True, True)),
    pc.PROV_ASSOCIATION: ("wasAssociatedWith", (pc.PROV_ATTR_ACTIVITY, pc.PROV_ATTR_AGENT,
                                                pc.PROV_ATTR_PLAN), (True, False, False)),
    pc.PROV_DELEGATION: ("actedOnBehalfOf", (pc.PROV_ATTR_DELEGATE, pc.PROV_ATTR_RESPONSIBLE,
                                             pc.PROV_ATTR_ACTIVITY), (True, False, False)),
    pc.PROV_INFLUENCE: ("wasInfluencedBy", (pc.PROV_ATTR_INFLUENCEE, pc.PROV_ATTR_INFLUENCER),
                        (True, True)),
    pc.PROV_ALTERNATE: ("alternateOf", (pc.PROV_ATTR_ALTERNATE1, pc.PROV_ATTR_ALTERNATE2),
                        (True, True)),
    pc.PROV_SPECIALIZATION: ("specializationOf", (pc.PROV_ATTR_SPECIFIC_ENTITY,
                                                  pc.PROV_ATTR_GENERAL_ENTITY), (True, True)),
    pc.PROV_MENTION: ("mentionOf", (pc.PROV_ATTR_SPECIFIC_ENTITY, pc.PROV_ATTR_GENERAL_ENTITY,
                                    pc.PROV_ATTR_BUNDLE), (True, True, True)),
    pc.PROV_MEMBERSHIP: ("hadMember", (pc.PROV_ATTR_COLLECTION, pc.PROV_ATTR_ENTITY),
                         (True, True)),
}
ELEMENTS = frozenset({"entity", "activity", "agent"})
#: Relations with an identifier (every other kind but the three without: alternateOf,
#: specializationOf, mentionOf, hadMember).
IDENTIFIED = frozenset({"wasGeneratedBy", "used", "wasInformedBy", "wasStartedBy",
                        "wasEndedBy", "wasInvalidatedBy", "wasDerivedFrom", "wasAttributedTo",
                        "wasAssociatedWith", "actedOnBehalfOf", "wasInfluencedBy"})
#: influence-inference (15): which arguments are the influencee and the influencer
INFLUENCE = {"wasGeneratedBy": (0, 1), "used": (0, 1), "wasInformedBy": (0, 1),
             "wasStartedBy": (0, 1), "wasEndedBy": (0, 1), "wasInvalidatedBy": (0, 1),
             "wasDerivedFrom": (0, 1), "wasAttributedTo": (0, 1), "wasAssociatedWith": (0, 1),
             "actedOnBehalfOf": (0, 1), "wasInfluencedBy": (0, 1)}


@dataclass(slots=True)  # one per record of a document that may hold millions
class Statement:
    """One statement of the instance: a record as read, or one inferred from a record. It
    keeps the record's label, not the record, so that a document read a batch at a time
    (:func:`dlprov.prov.reading.read_batches`) need not stay in memory whole."""

    kind: str
    id: int                          # term
    args: list[int] | tuple[int, ...]  # terms, in PROV-N order
    label: str                       # the record's identifier, else its PROV-N text
    inferred: bool = False
    types: frozenset = frozenset()   # prov:type values, for collections


@dataclass
class Instance:
    """The statements of one bundle (or of a document's top level) and their terms; records
    are added one by one (:meth:`add`)."""

    name: str | None
    terms: Terms = field(default_factory=Terms)
    statements: list[Statement] = field(default_factory=list)
    malformed: list[tuple[Statement, str]] = field(default_factory=list)
    #: impossible-unspecified-derivation-generation-use (51): seen when reading
    unspecified: list[Statement] = field(default_factory=list)
    records: int = 0

    def add(self, record: ProvRecord) -> None:
        """Add the normal form of ``record``."""
        self.records += 1
        kind, positions, required = KINDS.get(record.get_type(), (None, (), ()))
        if kind is None:
            return
        terms = self.terms
        # prov's own attribute table: its formal_attributes property builds tuples per call,
        # the bulk of the time on a million-record document
        table = record._attributes
        values = {p: next(iter(table[p])) for p in positions if table.get(p)}
        ident = record.identifier
        statement = Statement(kind, terms.const(ident) if ident is not None else terms.fresh(),
                              [], _label(kind, ident, positions, values),
                              types=frozenset(table.get(pc.PROV_TYPE, ())))
        derivation_without_activity = (kind == "wasDerivedFrom"
                                       and values.get(pc.PROV_ATTR_ACTIVITY) is None)
        if derivation_without_activity and (pc.PROV_ATTR_GENERATION in values
                                            or pc.PROV_ATTR_USAGE in values):
            self.unspecified.append(statement)
        for index, (position, needed) in enumerate(zip(positions, required)):
            value = values.get(position)
            if value is not None:
                statement.args.append(terms.const(value))
                continue
            if needed:
                self.malformed.append((statement, f"{kind} needs its {position.localpart}"))
            keep = (kind == "wasAssociatedWith" and index == 2) or (
                derivation_without_activity and index >= 2)
            statement.args.append(terms.const(PLACEHOLDER) if keep else terms.fresh())
        statement.args = tuple(statement.args)
        self.statements.append(statement)
        if kind == "wasDerivedFrom" and not derivation_without_activity:
            self._derivation_generation_use(statement)

    def _derivation_generation_use(self, derivation: Statement) -> None:
        """Inference 11: a derivation through activity a, generation g2 and usage u1 means
        used(u1; a, e1) and wasGeneratedBy(g2; e2, a)."""
        e2, e1, activity, gen, use = derivation.args
        fresh = self.terms.fresh
        self.statements.append(Statement("used", use, (activity, e1, fresh()),
                                         derivation.label, inferred=True))
        self.statements.append(Statement("wasGeneratedBy", gen, (e2, activity, fresh()),
                                         derivation.label, inferred=True))


def _label(kind: str, ident: Any, positions: tuple, values: dict) -> str:
    if ident is not None:
        return str(ident)
    shown = ", ".join(str(values[p]) if p in values else "-" for p in positions)
    return f"{kind}({shown})"


def instance(bundle: ProvBundle, name: str | None = None) -> Instance:
    """The normal form of the records of ``bundle`` (its own records, not its bundles')."""
    found = Instance(name)
    for record in bundle.get_records():
        found.add(record)
    return found
