"""`dlprov neo4j push`: fails fast without a server; against a real one (only when
DLPROV_TEST_NEO4J_URI is set), idempotent and deleting nothing."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.graph.build import flatten
from dlprov.graph.push import Neo4jUnavailable, push, statements
from dlprov.prov import document
from tests.prov.workflows import experiment

NEO4J_URI = os.environ.get("DLPROV_TEST_NEO4J_URI")


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    return experiment(tmp_path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


def test_statements_one_per_label_and_type(filled) -> None:
    doc = document(run="exp-mlp-b")
    flat = flatten(doc)
    found = statements(doc)
    merges = [q for q, _ in found if q.startswith("UNWIND $rows AS row MERGE (n:")]
    assert len(merges) == 3 and all("SET n += row.props" in q for q in merges)
    assert sum(len(rows) for q, rows in found if q in merges) == \
        sum(len(n) for n in flat.nodes.values())
    assert sum(len(rows) for q, rows in found if q not in merges) == len(flat.relations)
    assert not any("DELETE" in q or "CREATE" in q for q, _ in found)


def test_push_fails_fast_with_one_line_when_no_server(filled) -> None:
    uri = f"bolt://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(Neo4jUnavailable, match="no Neo4j server answered"):
        push(document(run="exp-mlp-b"), uri, "neo4j", "x", timeout=2)
    assert time.monotonic() - started < 15
    result = CliRunner().invoke(cli, ["neo4j", "push", "--run", "exp-mlp-b", "--timeout", "2"],
                                env={"NEO4J_URI": uri, "NEO4J_PASSWORD": "x"})
    assert result.exit_code == 1
    assert result.output.startswith("error: no Neo4j server answered at " + uri)
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(not NEO4J_URI, reason="DLPROV_TEST_NEO4J_URI is not set (no Neo4j server)")
def test_push_twice_creates_nothing_new_and_keeps_other_data(filled) -> None:
    import neo4j
    user = os.environ.get("DLPROV_TEST_NEO4J_USER", "neo4j")
    password = os.environ.get("DLPROV_TEST_NEO4J_PASSWORD", "")
    doc = document()
    flat = flatten(doc)
    with neo4j.GraphDatabase.driver(NEO4J_URI, auth=(user, password)) as driver:
        driver.execute_query("MERGE (:DlprovTestKeep {id: 'keep-me'})")
        first = push(doc, NEO4J_URI, user, password)
        second = push(doc, NEO4J_URI, user, password)
        assert second.nodes_created == 0 and second.relationships_created == 0
        assert first.nodes == second.nodes == sum(len(n) for n in flat.nodes.values())
        ids = [i for nodes in flat.nodes.values() for i in nodes]
        records, _, _ = driver.execute_query(
            "MATCH (n) WHERE n.id IN $ids RETURN count(n) AS c", ids=ids)
        assert records[0]["c"] == len(ids)
        records, _, _ = driver.execute_query(
            "MATCH (b:Entity)-[:wasGeneratedBy]->(c:Activity) "
            "WHERE b.`dlprov:ds_tag` = 'otrain' AND b.id IN $ids RETURN count(b) AS c", ids=ids)
        assert records[0]["c"] == 5
        records, _, _ = driver.execute_query("MATCH (n:DlprovTestKeep) RETURN count(n) AS c")
        assert records[0]["c"] == 1
        driver.execute_query("MATCH (n:DlprovTestKeep {id: 'keep-me'}) DELETE n")
