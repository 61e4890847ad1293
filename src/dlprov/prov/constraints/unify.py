"""Uniqueness and key constraints (22-29): the statements that must describe one thing are
merged, term by term, until nothing changes; two different values that must be one are a
violation.

Each pass groups statements by their key (the identifier; for unique-generation the entity
and activity; ...) in a dictionary, so a pass is linear, and a merge in one pass can only
make more keys meet in the next: a fixpoint is reached in a few passes. Attributes are merged
by union (PROV-CONSTRAINTS' attribute merging), which cannot fail.
"""
from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Callable

from dlprov.prov.constraints.report import Violation
from dlprov.prov.constraints.statements import ELEMENTS, IDENTIFIED, KINDS, Instance, Statement
from dlprov.prov.constraints.terms import value_key

_POSITIONS = {kind: [p.localpart for p in positions] for kind, positions, _ in KINDS.values()}
#: uniqueness constraints: kind -> (number, the argument positions forming the key)
_UNIQUE = {"wasGeneratedBy": (24, (0, 1)), "wasInvalidatedBy": (25, (0, 1)),
           "wasStartedBy": (26, (0, 2)), "wasEndedBy": (27, (0, 2))}
#: unique-startTime / unique-endTime: kind -> (number, the activity's time position, the
#: statement's time position)
_TIMES = {"wasStartedBy": (28, 0, 3), "wasEndedBy": (29, 1, 3)}
_UNKEYED = {"alternateOf", "specializationOf", "hadMember"}


def _show(value: object) -> str:
    if isinstance(value, datetime.datetime):
        return value_key(value)[1].isoformat()
    return str(value)


def unify(found: Instance, report: Callable[[Violation], None]) -> None:
    """Merge what constraints 22-29 say is one, reporting each clash."""
    terms = found.terms
    by_kind: dict[str, list[Statement]] = defaultdict(list)
    for statement in found.statements:
        by_kind[statement.kind].append(statement)

    def clash(number: int, message: str, *statements: Statement) -> None:
        report(Violation(number, message, list(dict.fromkeys(s.label for s in statements)),
                         found.name))

    def merge(number: int, one: Statement, other: Statement) -> None:
        for index, (a, b) in enumerate(zip(one.args, other.args)):
            values = terms.unify(a, b)
            if values is not None:
                what = _POSITIONS[one.kind][index]
                clash(number, f"{one.kind} {one.label} has {what} {_show(values[0])} and "
                      f"{_show(values[1])}", one, other)

    while True:
        before = terms.merges
        for kind, statements in by_kind.items():
            if kind in _UNKEYED:
                continue
            number = 22 if kind in ELEMENTS else 23
            first: dict[int, Statement] = {}
            for statement in statements:
                key = statement.args[0] if kind == "mentionOf" else statement.id
                other = first.setdefault(terms.find(key), statement)
                if other is not statement:
                    merge(number, other, statement)
        _influences(found, by_kind, clash)
        for kind, (number, positions) in _UNIQUE.items():
            first = {}
            for statement in by_kind.get(kind, ()):
                key = tuple(terms.find(statement.args[p]) for p in positions)
                other = first.setdefault(key, statement)
                if other is not statement and terms.unify(other.id, statement.id):
                    clash(number, f"two {kind} of the same "
                          f"{_POSITIONS[kind][positions[0]]} by the same "
                          f"{_POSITIONS[kind][positions[1]]}", other, statement)
        activities = {terms.find(s.id): s for s in by_kind.get("activity", ())}
        for kind, (number, own, at) in _TIMES.items():
            for statement in by_kind.get(kind, ()):
                activity = activities.get(terms.find(statement.args[0]))
                if activity is not None:
                    values = terms.unify(activity.args[own], statement.args[at])
                    if values is not None:
                        clash(number, f"activity {activity.label} has time {_show(values[0])}"
                              f" but {kind} says {_show(values[1])}", activity, statement)
        if terms.merges == before:
            return


def _influences(found: Instance, by_kind: dict[str, list[Statement]],
                clash: Callable[..., None]) -> None:
    """Influence-inference (15) and key-properties: relations of different kinds sharing an
    identifier are one influence, so their influencees and influencers are one."""
    terms = found.terms
    first: dict[int, Statement] = {}
    for kind in IDENTIFIED:
        for statement in by_kind.get(kind, ()):
            if statement.inferred:
                continue
            other = first.setdefault(terms.find(statement.id), statement)
            if other is statement or other.kind == statement.kind:
                continue
            for index in (0, 1):
                values = terms.unify(other.args[index], statement.args[index])
                if values is not None:
                    clash(23, f"{other.kind} and {statement.kind} share identifier "
                          f"{statement.label}, so are one influence, but its "
                          f"{'influencee' if index == 0 else 'influencer'} is "
                          f"{_show(values[0])} and {_show(values[1])}", other, statement)
