"""Terms of a PROV instance and their unification: a union-find over identifiers, values
and existential variables, where a class holds at most one concrete value.

Merging two classes that hold different values fails (a constraint is violated); merging a
class holding a variable only with any other always succeeds. Path halving and union by
size keep every operation nearly constant, so unifying a whole document is linear.
"""
from __future__ import annotations

import datetime
from typing import Any, Hashable

from prov.identifier import QualifiedName


class _Placeholder:
    """PROV-N's ``-`` where PROV-CONSTRAINTS keeps it (a derivation's activity, an
    association's plan): a value of its own, equal only to itself."""

    def __repr__(self) -> str:
        return "-"


PLACEHOLDER = _Placeholder()


def value_key(value: Any) -> Hashable:
    """The key under which equal values meet: times compared as instants (a naive time is
    taken as UTC), everything else as ``prov`` reads it."""
    if isinstance(value, QualifiedName):  # the common case: the name itself, no tuple
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return ("time", value.astimezone(datetime.timezone.utc))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return (type(value).__name__, value)


class Terms:
    """Every term of one instance: ``const(v)`` interns a value, ``fresh()`` makes a variable,
    ``unify(a, b)`` merges classes and returns the two clashing values, or None."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.value: list[Any] = []       # the class's value at its root, None for variables
        self.has_value: list[bool] = []
        self._interned: dict[Hashable, int] = {}
        self.merges = 0                  # successful merges, to know when a fixpoint is reached

    def _new(self, value: Any, has_value: bool) -> int:
        self.parent.append(len(self.parent))
        self.size.append(1)
        self.value.append(value)
        self.has_value.append(has_value)
        return len(self.parent) - 1

    def fresh(self) -> int:
        """A new existential variable."""
        return self._new(None, False)

    def const(self, value: Any) -> int:
        """The term of a concrete value (one term per distinct value)."""
        key = ("-",) if value is PLACEHOLDER else value_key(value)
        term = self._interned.get(key)
        if term is None:
            term = self._interned[key] = self._new(value, True)
        return term

    def find(self, term: int) -> int:
        parent = self.parent
        while parent[term] != term:
            parent[term] = parent[parent[term]]
            term = parent[term]
        return term

    def concrete(self, term: int) -> Any:
        """The value of ``term``'s class, or None for a variable."""
        root = self.find(term)
        return self.value[root] if self.has_value[root] else None

    def is_placeholder(self, term: int) -> bool:
        return self.concrete(term) is PLACEHOLDER

    def unify(self, a: int, b: int) -> tuple[Any, Any] | None:
        """Merge the classes of ``a`` and ``b``; on a clash of two values, leave them apart
        and return the pair."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self.has_value[ra] and self.has_value[rb]:
            return self.value[ra], self.value[rb]  # distinct roots: distinct values
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        if not self.has_value[ra] and self.has_value[rb]:
            self.value[ra], self.has_value[ra] = self.value[rb], True
        self.merges += 1
        return None
