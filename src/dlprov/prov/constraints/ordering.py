"""Event ordering (constraints 30-49): the events of an instance (starts and ends of
activities, generations, usages and invalidations of entities) as a graph whose edges are
"precedes or is simultaneous with" (and, for derivations, 42, "strictly precedes"). The
instance is invalid when some event strictly precedes itself: a strongly connected
component holding a strict edge. Tarjan's algorithm makes this linear in events and edges.

Every generation of one entity is one node (generation-generation-ordering, 39, makes them
simultaneous), likewise invalidations (40), starts (31) and ends (32) of one activity; so the
events inference 7 and 8 add for every entity and activity are those nodes too.

When events carry times, they are ordered by them as well (optional, on by default): an
event after another by its time is a strict edge; a cycle holding one says that the times
contradict the relations.
"""
from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any, Callable

from dlprov.prov.constraints.graph import path_within, strongly_connected
from dlprov.prov.constraints.report import Violation
from dlprov.prov.constraints.statements import Instance, Statement
from dlprov.prov.constraints.terms import value_key

_WHAT = {"gen": "generation of", "inv": "invalidation of", "start": "start of",
         "end": "end of", "use": "usage"}
_SAME = {"gen": 39, "inv": 40, "start": 31, "end": 32, "use": 23}
TIME = 0  # the "constraint" of an edge from times


class _Events:
    def __init__(self, found: Instance) -> None:
        self.terms = found.terms
        self.nodes: dict[tuple[str, int], int] = {}
        self.keys: list[tuple[str, int]] = []
        self.successors: list[list[int]] = []
        self.edges: dict[tuple[int, int], tuple[bool, int, Statement | None]] = {}
        self.times: dict[int, dict[Any, Statement]] = defaultdict(dict)

    def node(self, what: str, term: int) -> int | None:
        if self.terms.is_placeholder(term):
            return None
        key = (what, self.terms.find(term))
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = len(self.successors)
            self.successors.append([])
            self.keys.append(key)
        return node

    def edge(self, before: int | None, after: int | None, number: int,
             statement: Statement | None, strict: bool = False) -> None:
        if before is None or after is None:
            return
        known = self.edges.get((before, after))
        if known is None:
            self.successors[before].append(after)
        if known is None or (strict and not known[0]):
            self.edges[(before, after)] = (strict, number, statement)

    def at(self, node: int | None, term: int, statement: Statement) -> None:
        value = self.terms.concrete(term)
        if node is not None and isinstance(value, datetime.datetime):
            self.times[node].setdefault(value_key(value)[1], statement)

    def describe(self, node: int) -> str:
        what, root = self.keys[node]
        value = self.terms.concrete(root)
        return f"{_WHAT[what]} {value if value is not None else '(unnamed)'}"


def check_ordering(found: Instance, report: Callable[[Violation], None], *,
                   times: bool = True) -> None:
    """Report the cycles of strict precedence among ``found``'s events (already unified)."""
    events = _Events(found)
    _relations(found, events)
    for (what, root), node in list(events.nodes.items()):
        if what == "gen" and ("inv", root) in events.nodes:
            events.edge(node, events.nodes[("inv", root)], 36, None)
        if what == "start" and ("end", root) in events.nodes:
            events.edge(node, events.nodes[("end", root)], 30, None)
    if times:
        _times(found, events, report)
    _cycles(found, events, report)


def _relations(found: Instance, ev: _Events) -> None:
    for s in found.statements:
        kind, a = s.kind, s.args
        if kind == "activity":
            ev.at(ev.node("start", s.id), a[0], s)
            ev.at(ev.node("end", s.id), a[1], s)
        elif kind == "wasGeneratedBy":
            gen = ev.node("gen", a[0])
            ev.at(gen, a[2], s)
            ev.edge(ev.node("start", a[1]), gen, 34, s)
            ev.edge(gen, ev.node("end", a[1]), 34, s)
        elif kind == "used":
            use = ev.node("use", s.id)
            ev.at(use, a[2], s)
            ev.edge(ev.node("start", a[0]), use, 33, s)
            ev.edge(use, ev.node("end", a[0]), 33, s)
            ev.edge(ev.node("gen", a[1]), use, 37, s)
            ev.edge(use, ev.node("inv", a[1]), 38, s)
        elif kind == "wasInvalidatedBy":
            ev.at(ev.node("inv", a[0]), a[2], s)
        elif kind == "wasInformedBy":
            ev.edge(ev.node("start", a[1]), ev.node("end", a[0]), 35, s)
        elif kind in ("wasStartedBy", "wasEndedBy"):
            what, number = ("start", 43) if kind == "wasStartedBy" else ("end", 44)
            event = ev.node(what, a[0])
            ev.at(event, a[3], s)
            trigger = ev.node("gen", a[1])
            ev.edge(trigger, event, number, s)
            ev.edge(event, ev.node("inv", a[1]), number, s)
            # inferences 9 and 10: the trigger was generated by the starter (ender)
            ev.edge(ev.node("start", a[2]), trigger, 34, s)
            ev.edge(trigger, ev.node("end", a[2]), 34, s)
        elif kind == "wasDerivedFrom":
            ev.edge(ev.node("gen", a[1]), ev.node("gen", a[0]), 42, s, strict=True)
            if not ev.terms.is_placeholder(a[2]):
                ev.edge(ev.node("use", a[4]), ev.node("gen", a[0]), 41, s)
        elif kind in ("specializationOf", "mentionOf"):
            ev.edge(ev.node("gen", a[1]), ev.node("gen", a[0]), 45, s)
            ev.edge(ev.node("inv", a[0]), ev.node("inv", a[1]), 46, s)
        elif kind == "wasAssociatedWith":
            _association(ev, a[0], a[1], s)
        elif kind == "wasAttributedTo":
            ev.edge(ev.node("gen", a[1]), ev.node("gen", a[0]), 48, s)
            ev.edge(ev.node("start", a[1]), ev.node("gen", a[0]), 48, s)
        elif kind == "actedOnBehalfOf":
            ev.edge(ev.node("gen", a[1]), ev.node("inv", a[0]), 49, s)
            ev.edge(ev.node("start", a[1]), ev.node("end", a[0]), 49, s)
            if ev.terms.concrete(a[2]) is not None:  # delegation-inference (14)
                _association(ev, a[2], a[0], s)
                _association(ev, a[2], a[1], s)


def _association(ev: _Events, activity: int, agent: int, s: Statement) -> None:
    ev.edge(ev.node("start", activity), ev.node("inv", agent), 47, s)
    ev.edge(ev.node("gen", agent), ev.node("end", activity), 47, s)
    ev.edge(ev.node("start", activity), ev.node("end", agent), 47, s)
    ev.edge(ev.node("start", agent), ev.node("end", activity), 47, s)


def _times(found: Instance, ev: _Events, report: Callable[[Violation], None]) -> None:
    """Events of one node must be simultaneous; timed nodes are chained in time order."""
    timed: list[tuple[Any, int]] = []
    for node, stamps in ev.times.items():
        if len(stamps) > 1:
            what = ev.keys[node][0]
            shown = ", ".join(sorted(t.isoformat() for t in stamps))
            report(Violation(_SAME[what], f"the {ev.describe(node)} has several times "
                             f"({shown}) but its events must be simultaneous",
                             list(dict.fromkeys(s.label for s in stamps.values())),
                             found.name))
        timed.append((min(stamps), node))
    timed.sort()
    for (t1, n1), (t2, n2) in zip(timed, timed[1:]):
        ev.edge(n1, n2, TIME, None, strict=t1 < t2)
        if t1 == t2:
            ev.edge(n2, n1, TIME, None)


def _cycles(found: Instance, ev: _Events, report: Callable[[Violation], None]) -> None:
    component = [0] * len(ev.successors)
    members: list[list[int]] = strongly_connected(ev.successors)
    for number, nodes in enumerate(members):
        for node in nodes:
            component[node] = number
    reported: set[int] = set()
    for (before, after), (strict, number, statement) in ev.edges.items():
        if not strict or component[before] != component[after] or \
                component[before] in reported:
            continue
        reported.add(component[before])
        inside = set(members[component[before]])
        cycle = [before, *path_within(ev.successors, inside, after, before)]
        steps = list(zip(cycle, cycle[1:]))
        used = [ev.edges[step] for step in steps]
        relational = [n for _, n, _ in used if n != TIME]
        by_time = any(n == TIME for _, n, _ in used)
        label = number if number != TIME else (relational[0] if relational else 30)
        events = " -> ".join(ev.describe(n) for n in cycle)
        involved = [s for _, _, s in used if s is not None]
        for (one, other), (_, n, _) in zip(steps, used):
            if n == TIME:  # the records that gave the times
                involved += [*ev.times[one].values(), *ev.times[other].values()]
        records = list(dict.fromkeys(s.label for s in involved))
        why = (" by the times given" if by_time else "")
        report(Violation(label, f"events precede themselves{why} (cycle: {events}; "
                         f"constraints {', '.join(map(str, sorted(set(relational))))})",
                         records, found.name))
