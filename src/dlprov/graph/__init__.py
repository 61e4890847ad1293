"""The provenance graph: a store's PROV documents in an embedded graph database (ladybug), for
Cypher queries like the original DLProv's Neo4j ones.

- :func:`cypher`: run a query on a dataflow's (cached) graph, a run's, a model's or a file's;
- :func:`refresh`: bring the cached graph of a dataflow up to date;
- :func:`translate`: the Neo4j forms (shortestPath, ``[*]``, toFloat) in ladybug's Cypher;
- :func:`ask`: the model questions Q7–Q12 in Cypher, twins of :func:`dlprov.query.ask`.
"""
from dlprov.graph.engine import connect, refresh
from dlprov.graph.queries import cypher, translate
from dlprov.graph.questions import ask

__all__ = ["cypher", "refresh", "translate", "connect", "ask"]
