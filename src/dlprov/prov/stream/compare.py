"""Whether two RDF exports hold the same graph, blank nodes matched by their content.

``rdflib.compare.isomorphic`` decides graph equality in general, but on an export with
thousands of blank nodes (one per qualified relation) it runs for minutes. In a PROV-O export
every blank node is a qualified relation: the node that points at it and what it says are what
identify it. :func:`content_key` replaces each blank node by those (recursively, for a node
hanging off another) and counts the triples so rewritten; equal counts are equal graphs up to
blank-node labels whenever two blank nodes never have the same content, and an equal count of
each where they do.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

from rdflib import BNode, Dataset, Graph

Triple = tuple[Any, Any, Any]


def content_key(triples: Iterable[Triple]) -> Counter:
    """The triples, each blank node replaced by its content: the (subject, predicate) pairs
    that point at it and the (predicate, object) pairs it has, as a multiset."""
    triples = list(triples)
    outgoing: dict[BNode, list[tuple[Any, Any]]] = defaultdict(list)
    incoming: dict[BNode, list[tuple[Any, Any]]] = defaultdict(list)
    for s, p, o in triples:
        if isinstance(s, BNode):
            outgoing[s].append((p, o))
        if isinstance(o, BNode):
            incoming[o].append((s, p))
    memo: dict[BNode, Any] = {}

    def name(node: Any, depth: int = 0) -> Any:
        if not isinstance(node, BNode):
            return node
        if node not in memo:
            if depth > 8:  # a cycle of blank nodes, never written by prov: say so, stay finite
                return ("bnode-cycle",)
            memo[node] = ("bnode",
                          tuple(sorted((str(s), str(p)) for s, p in incoming[node]
                                       if not isinstance(s, BNode))),
                          tuple(sorted((str(p), repr(name(o, depth + 1)))
                                       for p, o in outgoing[node])))
        return memo[node]

    return Counter((name(s), p, name(o)) for s, p, o in triples)


def same_graph(a: Graph, b: Graph) -> bool:
    """Whether ``a`` and ``b`` hold the same triples up to blank-node labels (see above)."""
    return len(a) == len(b) and content_key(a) == content_key(b)


def same_dataset(a: Dataset, b: Dataset) -> bool:
    """Whether two datasets hold the same named graphs, each the same graph (see above), and
    the same default graph."""
    graphs_a = {g.identifier: g for g in a.graphs() if len(g)}
    graphs_b = {g.identifier: g for g in b.graphs() if len(g)}
    return graphs_a.keys() == graphs_b.keys() and all(
        same_graph(graphs_a[name], graphs_b[name]) for name in graphs_a)
