"""`dlprov export --format cypher|neo4j-csv`: files that load the same graph into Neo4j."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from prov.model import ProvDocument

from dlprov.cli.main import cli
from dlprov.graph.build import flatten
from dlprov.graph.neo4j_files import csv_files, literal, to_cypher
from dlprov.prov import document
from tests.prov.workflows import experiment


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    return experiment(tmp_path)


def _counts(doc: ProvDocument) -> tuple[int, int]:
    flat = flatten(doc)
    return sum(len(n) for n in flat.nodes.values()), len(flat.relations)


def _read_csv(files: dict[str, str]) -> tuple[dict[str, list[dict]], list[dict]]:
    nodes = {name: list(csv.DictReader(io.StringIO(text)))
             for name, text in files.items() if name.startswith("nodes_")}
    rels = list(csv.DictReader(io.StringIO(files["relationships.csv"])))
    return nodes, rels


def _doc_elements(doc: ProvDocument) -> dict[str, int]:
    records = doc.flattened().get_records()
    kinds = {"entity": 0, "activity": 0, "agent": 0}
    for record in records:
        if record.is_element():
            kinds[type(record).__name__[4:].lower()] += 1
    return kinds


def test_csv_counts_headers_and_types(filled, tmp_path) -> None:
    doc = document()
    nodes, rels = _read_csv(csv_files(doc))
    elements = _doc_elements(doc)
    assert len(nodes["nodes_Entity.csv"]) == elements["entity"]
    assert len(nodes["nodes_Activity.csv"]) == elements["activity"]
    assert len(nodes["nodes_Agent.csv"]) == elements["agent"]
    assert (sum(map(len, nodes.values())), len(rels)) == _counts(doc)
    relation_count = sum(1 for r in doc.flattened().get_records() if r.is_relation())
    assert 0 < len(rels) <= relation_count
    header = list(nodes["nodes_Entity.csv"][0])
    assert header[:2] == ["id:ID", ":LABEL"]
    assert "dlprov:loss:double" in header and "dlprov:ds_tag:string" in header
    assert all(h.count(":") >= 1 for h in header)  # every property column typed
    assert list(rels[0]) == [":START_ID", ":END_ID", ":TYPE"]
    ids = {row["id:ID"] for rows in nodes.values() for row in rows}
    assert all(r[":START_ID"] in ids and r[":END_ID"] in ids for r in rels)
    assert {r[":TYPE"] for r in rels} >= {"used", "wasGeneratedBy", "wasInformedBy",
                                         "wasAssociatedWith", "wasDerivedFrom"}
    losses = [float(row["dlprov:loss:double"]) for row in nodes["nodes_Entity.csv"]
              if row["dlprov:ds_tag:string"] == "otrain"]
    assert sorted(losses) == sorted([1.0, 0.5, 1 / 3, 1.0, 0.5])


def test_cli_writes_folder_and_zip_and_cypher(filled, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--run", "exp-mlp-b", "--format", "neo4j-csv",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    folder = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert "neo4j-admin database import full" in folder["neo4j-admin-import.sh"]
    result = runner.invoke(cli, ["export", "--run", "exp-mlp-b", "-f", "neo4j-csv",
                                 "-o", str(tmp_path / "g.zip")])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "g.zip") as archive:
        zipped = {name: archive.read(name).decode() for name in archive.namelist()}
    assert zipped == folder
    nodes, rels = _read_csv(zipped)
    assert (sum(map(len, nodes.values())), len(rels)) == _counts(document(run="exp-mlp-b"))
    result = runner.invoke(cli, ["export", "--run", "exp-mlp-b", "-f", "neo4j-csv"])
    assert result.exit_code != 0 and "-o FOLDER" in result.output
    result = runner.invoke(cli, ["export", "--run", "exp-mlp-b", "-o", str(tmp_path / "b.cypher")])
    assert result.exit_code == 0, result.output
    stdout = runner.invoke(cli, ["export", "--run", "exp-mlp-b", "--format", "cypher"]).output
    assert stdout == (tmp_path / "b.cypher").read_text()


def test_cypher_merges_every_node_and_relation_stably(filled) -> None:
    doc = document()
    text = to_cypher(doc)
    assert text == to_cypher(document())  # same store, same text
    statements = [line for line in text.splitlines() if not line.startswith("//")]
    nodes, relations = _counts(doc)
    assert sum(s.startswith("MERGE (n:") for s in statements) == nodes
    assert sum(s.startswith("MATCH (a:") and "MERGE (a)-[:" in s for s in statements) == relations
    assert len(statements) == nodes + relations
    assert all(s.endswith(";") for s in statements)
    assert "CREATE" not in text and "DELETE" not in text
    assert "`dlprov:ds_tag`: 'otrain'" in text and "`dlprov:loss`: 0.5" in text


def test_cypher_literals_are_escaped() -> None:
    assert literal("it's a \\ \"q\"\nx\x01") == "'it\\'s a \\\\ \"q\"\\nx\\u0001'"
    assert literal(0.5) == "0.5"
    assert literal(float("nan")) == "0.0/0.0" and literal(float("-inf")) == "-1.0/0.0"
    doc = ProvDocument()
    doc.add_namespace("dlprov", "DLProv")
    doc.entity("dlprov:e1", {"dlprov:note": "x'}) DETACH DELETE n //", "dlprov:odd`name": 1})
    text = to_cypher(doc)
    assert "'x\\'}) DETACH DELETE n //'" in text
    assert "`dlprov:odd``name`: 1.0" in text
