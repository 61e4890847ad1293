"""Pushing a PROV document into a running Neo4j server (the official ``neo4j`` driver, extra
``dlprov[neo4j]``), laid out like :mod:`dlprov.graph.build`.

Unlike the original DLProv, which wiped the database before each load, the push only merges:
nodes by label and ``id`` (``SET n += props``), relationships by their two ends and type. Pushing
the same document twice creates nothing new, and nothing already in the database is deleted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from prov.model import ProvDocument

from dlprov.errors import DlprovError
from dlprov.graph.build import RELATIONS, flatten
from dlprov.graph.neo4j_files import quote_name

DEFAULT_URI = "bolt://localhost:7687"
BATCH = 1000


class Neo4jUnavailable(DlprovError):
    """No Neo4j server answered at the URI given, or it refused the credentials."""


@dataclass
class PushReport:
    """What one push sent and what the server created (zero on a repeated push)."""

    nodes: int = 0
    relationships: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def statements(doc: ProvDocument) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(query, rows)`` pairs, one per label and one per relationship type, each query an
    ``UNWIND $rows AS row MERGE …``."""
    flat = flatten(doc)
    found: list[tuple[str, list[dict[str, Any]]]] = []
    for label, members in sorted(flat.nodes.items()):
        rows = [{"id": node_id, "props": props} for node_id, props in sorted(members.items())]
        if rows:
            found.append((f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) "
                          "SET n += row.props", rows))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, source, target in sorted(flat.relations):
        by_kind.setdefault(kind, []).append({"a": source, "b": target})
    for kind, rows in by_kind.items():
        src_label, dst_label = RELATIONS[kind]
        found.append((f"UNWIND $rows AS row MATCH (a:{src_label} {{id: row.a}}) "
                      f"MATCH (b:{dst_label} {{id: row.b}}) MERGE (a)-[:{quote_name(kind)}]->(b)",
                      rows))
    return found


def push(doc: ProvDocument, uri: str = DEFAULT_URI, user: str = "neo4j",
         password: str | None = None, *, database: str | None = None,
         timeout: float = 5.0, batch_size: int = BATCH) -> PushReport:
    """Merge ``doc`` into the Neo4j server at ``uri`` in batches of ``batch_size`` rows; raises
    :class:`Neo4jUnavailable` (after at most about ``timeout`` seconds) when it cannot connect."""
    try:
        import neo4j
        from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable
    except ImportError:
        raise DlprovError("pushing to Neo4j needs its driver: pip install 'dlprov[neo4j]'") \
            from None
    report = PushReport()
    try:
        driver = neo4j.GraphDatabase.driver(
            uri, auth=(user, password or ""), connection_timeout=timeout,
            connection_acquisition_timeout=timeout, max_transaction_retry_time=timeout)
    except (ValueError, neo4j.exceptions.ConfigurationError) as exc:
        raise Neo4jUnavailable(f"bad Neo4j URI {uri!r}: {exc}") from None
    try:
        driver.verify_connectivity()
        with driver.session(database=database) as session:
            for query, rows in statements(doc):
                if query.startswith("UNWIND $rows AS row MERGE (n:"):
                    report.nodes += len(rows)
                else:
                    report.relationships += len(rows)
                for batch in _batches(rows, batch_size):
                    counters = session.execute_write(
                        lambda tx, q=query, b=batch: tx.run(q, rows=b).consume().counters)
                    report.nodes_created += counters.nodes_created
                    report.relationships_created += counters.relationships_created
                    report.properties_set += counters.properties_set
    except ServiceUnavailable as exc:
        raise Neo4jUnavailable(f"no Neo4j server answered at {uri} "
                               f"({_first_line(exc)}): start it or give --uri") from None
    except AuthError as exc:
        raise Neo4jUnavailable(f"Neo4j at {uri} refused user {user!r} ({_first_line(exc)}): "
                               "give --user/--password or NEO4J_USERNAME/NEO4J_PASSWORD") \
            from None
    except Neo4jError as exc:
        raise DlprovError(f"Neo4j at {uri} failed: {_first_line(exc)}") from None
    finally:
        driver.close()
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(":")
