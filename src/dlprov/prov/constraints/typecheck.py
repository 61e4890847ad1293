"""Type, impossibility and disjointness constraints (50-56), and the malformed statements
PROV-DM itself rules out.

Typing (50) gives every term the types its uses imply; a term both entity and activity
breaks entity-activity-disjoint (55); a collection typed prov:EmptyCollection with a member
breaks membership-empty-collection (56). An identifier of two kinds of relation (53), or of
an element and a relation (54), and a derivation with no activity but a generation or usage
(51), are impossible; so is an entity specializing itself (52), here found as a cycle of
specializationOf (transitive by inference 19) with a strongly-connected-components pass.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

from prov.constants import PROV

from dlprov.prov.constraints.graph import strongly_connected
from dlprov.prov.constraints.report import Violation
from dlprov.prov.constraints.statements import ELEMENTS, Instance, Statement

ENTITY, ACTIVITY, AGENT = "entity", "activity", "agent"
#: typing (50): kind -> the type of each argument (None: not typed)
_TYPED: dict[str, tuple[str | None, ...]] = {
    "used": (ACTIVITY, ENTITY, None),
    "wasGeneratedBy": (ENTITY, ACTIVITY, None),
    "wasInformedBy": (ACTIVITY, ACTIVITY),
    "wasStartedBy": (ACTIVITY, ENTITY, ACTIVITY, None),
    "wasEndedBy": (ACTIVITY, ENTITY, ACTIVITY, None),
    "wasInvalidatedBy": (ENTITY, ACTIVITY, None),
    "wasDerivedFrom": (ENTITY, ENTITY, ACTIVITY, None, None),
    "wasAttributedTo": (ENTITY, AGENT),
    "wasAssociatedWith": (ACTIVITY, AGENT, ENTITY),
    "actedOnBehalfOf": (AGENT, AGENT, ACTIVITY),
    "alternateOf": (ENTITY, ENTITY),
    "specializationOf": (ENTITY, ENTITY),
    "mentionOf": (ENTITY, ENTITY, ENTITY),
    "hadMember": (ENTITY, ENTITY),
}
#: the relations of impossible-property-overlap (53) and -object-property-overlap (54)
#: prov:EmptyCollection, as a name or as the string a Python caller may have given
_EMPTY = (PROV["EmptyCollection"].uri, "prov:EmptyCollection")
_OVERLAP = frozenset({"used", "wasGeneratedBy", "wasInvalidatedBy", "wasStartedBy",
                      "wasEndedBy", "wasInformedBy", "wasAttributedTo", "wasAssociatedWith",
                      "actedOnBehalfOf"})


def check_types(found: Instance, report: Callable[[Violation], None]) -> None:
    """Report what breaks constraints 50-56 in ``found`` (already unified)."""
    terms = found.terms

    def emit(number: int, message: str, statements: list[Statement]) -> None:
        report(Violation(number, message, list(dict.fromkeys(s.label for s in statements)),
                         found.name))

    for statement, problem in found.malformed:
        emit(0, problem, [statement])
    for statement in found.unspecified:
        emit(51, "a derivation with no activity names a generation or usage", [statement])
    types: dict[int, dict[str, Statement]] = defaultdict(dict)
    ids: dict[int, dict[str, Statement]] = defaultdict(dict)
    elements: dict[int, Statement] = {}
    empty: dict[int, Statement] = {}
    members: list[Statement] = []
    specializations: list[tuple[int, int, Statement]] = []
    for statement in found.statements:
        kind, args = statement.kind, statement.args
        if kind in ELEMENTS:
            types[terms.find(statement.id)].setdefault(kind, statement)
            elements.setdefault(terms.find(statement.id), statement)
            if kind == ENTITY and any(getattr(t, "uri", str(t)) in _EMPTY
                                      for t in statement.types):
                empty.setdefault(terms.find(statement.id), statement)
        for term, typ in zip(args, _TYPED.get(kind, ())):
            if typ is not None and not terms.is_placeholder(term):
                types[terms.find(term)].setdefault(typ, statement)
        if kind in _OVERLAP and not statement.inferred:
            ids[terms.find(statement.id)].setdefault(kind, statement)
        if kind == "hadMember":
            members.append(statement)
        if kind in ("specializationOf", "mentionOf"):
            specializations.append((terms.find(args[0]), terms.find(args[1]), statement))
    for root, kinds in types.items():
        if ENTITY in kinds and ACTIVITY in kinds:
            emit(55, f"{terms.concrete(root)} is both an entity and an activity",
                 [kinds[ENTITY], kinds[ACTIVITY]])
    for root, kinds in ids.items():
        if len(kinds) > 1:
            emit(53, f"identifier {terms.concrete(root)} names a {' and a '.join(kinds)}",
                 list(kinds.values()))
        element = elements.get(root)
        if element is not None:
            emit(54, f"identifier {terms.concrete(root)} names an {element.kind} and a "
                 f"{next(iter(kinds))}", [element, *kinds.values()])
    _specializations(found, specializations, empty, members, emit)


def _specializations(found: Instance, edges: list[tuple[int, int, Statement]],
                     empty: dict[int, Statement], members: list[Statement],
                     emit: Callable[[int, str, list[Statement]], None]) -> None:
    """52 on cycles of specializationOf; 56 on members of an empty collection, the type
    passed down to specializations (inference 21: they have the general entity's
    attributes)."""
    terms = found.terms
    nodes = {root: n for n, root in enumerate(dict.fromkeys(
        [e for a, b, _ in edges for e in (a, b)]))}
    roots = list(nodes)
    successors: list[list[int]] = [[] for _ in nodes]
    for specific, general, _ in edges:
        successors[nodes[specific]].append(nodes[general])
    components = strongly_connected(successors)
    member_of = [0] * len(nodes)
    for number, component in enumerate(components):
        for node in component:
            member_of[node] = number
    inside: dict[int, list[Statement]] = defaultdict(list)  # component -> its statements
    for specific, general, statement in edges:
        if member_of[nodes[specific]] == member_of[nodes[general]]:
            inside[member_of[nodes[specific]]].append(statement)
    for number, statements in inside.items():
        names = [str(terms.concrete(roots[n])) for n in components[number]]
        emit(52, f"{', '.join(sorted(names))} specialize(s) themselves (transitively)",
             statements)
    down: dict[int, list[int]] = defaultdict(list)
    for specific, general, _ in edges:
        down[general].append(specific)
    emptied = dict(empty)
    stack = list(empty)
    while stack:
        general = stack.pop()
        for specific in down.get(general, ()):
            if specific not in emptied:
                emptied[specific] = emptied[general]
                stack.append(specific)
    for statement in members:
        collection = terms.find(statement.args[0])
        if collection in emptied:
            emit(56, f"{terms.concrete(collection)} is a prov:EmptyCollection with a member",
                 [emptied[collection], statement])
