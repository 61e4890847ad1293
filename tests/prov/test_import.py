"""Importing the PROV documents of another tool and following a model into them.

The documents are built with the ``prov`` library, as a data-preparation tool would write them
(a raw file, a cleaning activity, cleaned records that each carry a ``record_id``), in every
serialization ``prov`` writes; the store is filled by dlprov's capture API, whose elements carry
the same record ids. Expected answers come from the definitions below, never from the code under
test. The import and the lineage also run on the real PostgreSQL server (skipped only where none
answers).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from prov.model import ProvDocument

import dlprov
import dlprov.query as q
from dlprov.cli.imports import _FORMATS
from dlprov.cli.main import cli
from dlprov.errors import NotFound
from dlprov.prov.imports import ImportReport, ProvImportError, import_document
from dlprov.prov.reading import FORMATS, MAX_VALUE_CHARS
from dlprov.store import external
from tests.conftest import postgresql_home

EX = "http://example.org/dataprep#"
SPLIT_RECORDS = ("rec-0", "rec-1", "rec-2")  # what splitdata hands to the training of mlp-split
DIRECT_RECORD = "rec-7"                      # the input of mlp-direct's training
UNUSED_RECORD = "rec-99"                     # prepared, never trained on
PREPARED = (*SPLIT_RECORDS, DIRECT_RECORD)
TABLES = ("prov_document", "prov_node", "prov_relation")


# -- what another tool wrote ----------------------------------------------------------------
def prep_document(*, bundle: bool = True) -> ProvDocument:
    """A data-preparation tool's provenance: raw CSV → cleaning (by a bot) → one cleaned
    entity per record, each with ``ex:record_id``; and an unrelated resampling chain."""
    doc = ProvDocument()
    doc.add_namespace("ex", EX)
    raw = doc.entity("ex:raw-csv", {"ex:path": "data/raw.csv", "prov:label": "raw digits"})
    bot = doc.agent("ex:prep-bot", {"prov:type": "prov:SoftwareAgent"})
    cleaning = doc.activity("ex:cleaning", "2024-05-01T10:00:00", "2024-05-01T10:05:00",
                            {"ex:dropped_rows": 12})
    doc.used(cleaning, raw)
    doc.wasAssociatedWith(cleaning, bot)
    records = doc.bundle("ex:records") if bundle else doc
    for record in PREPARED:
        entity = records.entity(f"ex:clean-{record}", {"ex:record_id": record})
        records.wasGeneratedBy(entity, "ex:cleaning")
        records.wasDerivedFrom(entity, "ex:raw-csv", "ex:cleaning")
    other = doc.entity("ex:other-csv")
    resampling = doc.activity("ex:resampling")
    doc.used(resampling, other)
    sample = doc.entity(f"ex:sample-{UNUSED_RECORD}", {"ex:record_id": UNUSED_RECORD})
    doc.wasGeneratedBy(sample, resampling)
    return doc


# raw, bot, cleaning, other, resampling, sample and the cleaned records; and their relations
NODES = 6 + len(PREPARED)
RELATIONS = 2 + 2 * len(PREPARED) + 2


def serialized(doc: ProvDocument, fmt: str) -> bytes:
    """``doc`` in one of the import formats, written by ``prov`` itself."""
    writer, options = {"json": ("json", {}), "xml": ("xml", {}), "provn": ("provn", {}),
                       "jsonld": ("jsonld", {}), "trig": ("rdf", {"rdf_format": "trig"}),
                       "ttl": ("rdf", {"rdf_format": "turtle"}),
                       "rdfxml": ("rdf", {"rdf_format": "xml"})}[fmt]
    if fmt in ("ttl", "rdfxml"):  # no named graphs there
        doc = doc.flattened()
    text = doc.serialize(format=writer, **options)
    return text.encode() if isinstance(text, str) else text


# -- what dlprov captured -------------------------------------------------------------------
def capture(store: str, df_tag: str, folder: Path) -> dict[str, Path]:
    """mlp-split: splitdata outputs the records, train uses them; mlp-direct: train records
    its one input record itself. Returns the model files."""
    files = {name: folder / f"{name}.pt" for name in ("mlp-split", "mlp-direct")}
    for name, path in files.items():
        path.write_bytes(f"weights of {name}".encode())
    with dlprov.run(df_tag, store=store, capture_environment=False) as run:
        with run.task("splitdata") as split:
            for i, record in enumerate(SPLIT_RECORDS):
                split.output("otrainset", record_id=record, image=f"img-{i}.png")
        with run.task("train", depends_on=split, uses=["otrainset"]) as train:
            train.input("itrain", learning_rate=0.01)
            train.model(files["mlp-split"], name="mlp-split")
    with dlprov.run(df_tag, store=store, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("otrainset", record_id=DIRECT_RECORD, image="img-7.png")
            train.input("itrain", learning_rate=0.1)
            train.model(files["mlp-direct"], name="mlp-direct")
    return files


@pytest.fixture
def captured(store_path, tmp_path) -> dict[str, Path]:
    return capture(str(store_path), "prep", tmp_path)


def counts(store_path: Path) -> dict[str, int]:
    with sqlite3.connect(store_path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def lineage(model: str, store=None, dataflow: str | None = "prep") -> dict[str, dict]:
    return {row["node"]: row for row in
            q.external_lineage(model, store=store, dataflow=dataflow).records()}


def check_lineage(store=None, dataflow: str = "prep") -> None:
    split = lineage("mlp-split", store, dataflow)
    assert {n for n, r in split.items() if r["depth"] == 0} == \
        {f"ex:clean-{r}" for r in SPLIT_RECORDS}
    assert {split[f"ex:clean-{r}"]["record_id"] for r in SPLIT_RECORDS} == set(SPLIT_RECORDS)
    assert (split["ex:cleaning"]["kind"], split["ex:cleaning"]["depth"]) == ("activity", 1)
    assert split["ex:cleaning"]["reached_by"].startswith("wasGeneratedBy ex:clean-rec-")
    assert (split["ex:raw-csv"]["kind"], split["ex:raw-csv"]["depth"]) == ("entity", 1)
    assert split["ex:raw-csv"]["label"] == "raw digits"
    assert set(split) == {*(f"ex:clean-{r}" for r in SPLIT_RECORDS), "ex:cleaning", "ex:raw-csv"}
    direct = lineage("mlp-direct", store, dataflow)
    assert set(direct) == {f"ex:clean-{DIRECT_RECORD}", "ex:cleaning", "ex:raw-csv"}
    assert direct[f"ex:clean-{DIRECT_RECORD}"]["depth"] == 0


# -- import and lineage ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_imports_and_links_the_model_to_the_cleaning(fmt, captured, store_path,
                                                                  tmp_path):
    path = tmp_path / f"prep.{ {'rdfxml': 'rdf'}.get(fmt, fmt) }"
    path.write_bytes(serialized(prep_document(), fmt))
    report = import_document(path, source="dataprep")  # the format from the suffix
    assert isinstance(report, ImportReport) and report.created
    assert (report.source, report.format) == ("dataprep", fmt)
    assert (report.nodes, report.relations) == (NODES, RELATIONS)
    assert report.kinds == {"entity": 2 + len(PREPARED) + 1, "activity": 2, "agent": 1}
    assert report.records == len(PREPARED) + 1
    assert report.linked == len(PREPARED)  # rec-99 names nothing dlprov recorded
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    check_lineage()


def test_format_found_from_the_first_bytes():
    from dlprov.prov.reading import choose_format
    doc = prep_document()
    for fmt in ("json", "xml", "provn", "jsonld", "trig", "rdfxml"):
        assert choose_format(None, serialized(doc, fmt)) == fmt
    with pytest.raises(ProvImportError, match="cannot tell the document's format"):
        choose_format(None, b"hello")
    with pytest.raises(ProvImportError, match="unknown PROV format 'yaml'"):
        choose_format("yaml", b"{}")
    assert choose_format("Turtle", b"") == "ttl"


def test_bundles_are_flattened_and_their_nodes_kept(captured, store_path):
    report = import_document(serialized(prep_document(), "json"), source="dataprep")
    assert report.bundles == 1
    with sqlite3.connect(store_path) as conn:
        bundled = dict(conn.execute("SELECT name, bundle FROM prov_node"))
        relation_bundles = conn.execute(
            "SELECT COUNT(*) FROM prov_relation WHERE bundle = 'ex:records'").fetchone()[0]
        attributes = json.loads(conn.execute(
            "SELECT attributes FROM prov_node WHERE name = 'ex:cleaning'").fetchone()[0])
        derivation = json.loads(conn.execute(
            "SELECT attributes FROM prov_relation WHERE kind = 'wasDerivedFrom' "
            "LIMIT 1").fetchone()[0])
    assert all(bundled[f"ex:clean-{r}"] == "ex:records" for r in PREPARED)
    assert bundled["ex:raw-csv"] is None
    assert relation_bundles == 2 * len(PREPARED)
    assert attributes == {"prov:startTime": "2024-05-01T10:00:00",
                          "prov:endTime": "2024-05-01T10:05:00", "ex:dropped_rows": 12}
    assert derivation == {"prov:activity": "ex:cleaning"}


def test_importing_the_same_bytes_twice_stores_nothing_new(captured, store_path):
    data = serialized(prep_document(), "provn")
    first = import_document(data, source="dataprep")
    before = counts(store_path)
    again = import_document(data, source="another-name")
    assert not again.created and again.doc_id == first.doc_id
    assert again.source == "dataprep"  # the document as stored
    assert "already imported" in again.summary() and "nothing stored" in again.summary()
    assert counts(store_path) == before == {"prov_document": 1, "prov_node": NODES,
                                            "prov_relation": RELATIONS}
    # the same provenance in other bytes is another document
    other = import_document(serialized(prep_document(), "json"))
    assert other.created and other.doc_id != first.doc_id and other.source == "document"
    rows = q.external_lineage("mlp-split", dataflow="prep").records()
    assert {r["doc_id"] for r in rows} == {first.doc_id, other.doc_id}


def test_concurrent_imports_of_the_same_bytes_store_one_document(captured, store_path):
    from concurrent.futures import ThreadPoolExecutor

    from dlprov.store.store import Store
    data = serialized(prep_document(), "json")
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: import_document(data, store=Store(store_path)),
                                range(4)))
    assert sorted(r.created for r in reports) == [False, False, False, True]
    assert {r.doc_id for r in reports} == {1}
    assert counts(store_path)["prov_document"] == 1


def test_relations_may_name_undeclared_nodes(captured):
    doc = ProvDocument()
    doc.add_namespace("ex", EX)
    cleaned = doc.entity("ex:clean-rec-0", {"ex:record_id": "rec-0"})
    doc.wasDerivedFrom(cleaned, "ex:never-declared")
    report = import_document(serialized(doc, "json"), source="partial")
    assert (report.nodes, report.relations, report.linked) == (1, 1, 1)
    found = lineage("mlp-split")
    assert found[EX + "never-declared"]["kind"] is None
    assert found[EX + "never-declared"]["reached_by"] == "wasDerivedFrom ex:clean-rec-0"


def test_record_ids_from_other_attributes_or_the_name(captured):
    doc = ProvDocument()
    doc.add_namespace("ex", EX)
    # its local name is a record id, its ex:sample attribute another one
    named = doc.entity(f"ex:{DIRECT_RECORD}", {"ex:sample": "rec-0"})
    doc.wasGeneratedBy(named, doc.activity("ex:cropping"))
    data = serialized(doc, "json")
    assert import_document(data, store=None).linked == 0  # no record_id attribute
    store = Path("other.db")
    capture(str(store), "prep", Path("."))
    assert import_document(data, store=store, record_keys=("sample",)).linked == 1
    assert {r["record_id"] for r in q.linked_records(store).records()} == {"rec-0"}
    third = Path("third.db")
    capture(str(third), "prep", Path("."))
    report = import_document(data, store=third, record_id_from_name=True)
    assert report.linked == 1
    assert set(lineage("mlp-direct", third)) == {f"ex:{DIRECT_RECORD}", "ex:cropping"}


def test_a_file_digest_links_a_trained_model(captured):
    digest = hashlib.sha256(captured["mlp-split"].read_bytes()).hexdigest()
    doc = ProvDocument()
    doc.add_namespace("ex", EX)
    deployed = doc.entity("ex:deployed-model", {"ex:digest": "SHA256:" + digest.upper()})
    doc.wasGeneratedBy(deployed, "ex:packaging")
    import_document(serialized(doc, "xml"), source="deploy")
    [link] = q.linked_records(model="mlp-split", dataflow="prep").records()
    assert (link["set_tag"], link["record_key"], link["record_id"]) == \
        ("trained_model", "sha256", digest)
    assert (link["transformation"], link["role"], link["node"]) == \
        ("train", "produced", "ex:deployed-model")
    assert q.linked_records(model="mlp-direct", dataflow="prep").rows == []


def test_linked_records_per_model_dataflow_and_store(captured):
    assert q.linked_records().rows == []  # nothing imported yet: no rows, no error
    import_document(serialized(prep_document(), "trig"), source="dataprep")
    every = q.linked_records().records()
    assert {(r["record_id"], r["transformation"], r["role"]) for r in every} == {
        *((r, "splitdata", "produced") for r in SPLIT_RECORDS),
        *((r, "train", "used") for r in SPLIT_RECORDS), (DIRECT_RECORD, "train", "used")}
    assert {r["dataflow"] for r in every} == {"prep"}
    direct = q.linked_records(model="mlp-direct").records()
    assert [(r["set_tag"], r["record_id"], r["node"]) for r in direct] == \
        [("otrainset", DIRECT_RECORD, f"ex:clean-{DIRECT_RECORD}")]
    with pytest.raises(NotFound):
        q.external_lineage("no-such-model")


def test_a_store_made_before_the_import_tables_gets_them(captured, store_path):
    with sqlite3.connect(store_path) as conn:
        for table in reversed(TABLES):
            conn.execute(f"DROP TABLE {table}")
    assert q.linked_records().rows == []
    assert q.external_lineage("mlp-split").rows == []
    import_document(serialized(prep_document(), "json"))
    check_lineage()


# -- refusals: nothing is stored ------------------------------------------------------------
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<prov:document xmlns:prov="http://www.w3.org/ns/prov#" xmlns:ex="http://e/">
  <prov:entity prov:id="ex:a"><prov:label>&lol9;</prov:label></prov:entity>
</prov:document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<prov:document xmlns:prov="http://www.w3.org/ns/prov#" xmlns:ex="http://e/">
  <prov:entity prov:id="ex:a"><prov:label>&secret;</prov:label></prov:entity>
</prov:document>"""
RDF_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:prov="http://www.w3.org/ns/prov#">
  <prov:Entity rdf:about="http://e/a"><prov:value>&b;</prov:value></prov:Entity>
</rdf:RDF>"""


def _json(**records) -> bytes:
    return json.dumps({"prefix": {"ex": "http://e/"}, **records}).encode()


def _huge_value() -> bytes:
    doc = ProvDocument()
    doc.add_namespace("ex", "http://e/")
    doc.entity("ex:a", {"ex:note": "x" * (MAX_VALUE_CHARS + 1)})
    return serialized(doc, "json")


def _long_identifier() -> bytes:
    doc = ProvDocument()
    doc.add_namespace("ex", "http://e/")
    doc.entity("ex:" + "a" * 2000)
    return serialized(doc, "json")


REFUSED = {
    "not json": (b"hello", "json", "not a valid json PROV document"),
    "json, not PROV": (b'{"foo": 1}', "json", "not a recognised PROV-N record-type"),
    "a json list": (b"[1, 2]", "json", "must be a JSON object"),
    "an element of the wrong type": (_json(entity={"ex:a": 5}), "json", "must be a JSON"),
    "a relation of the wrong type": (
        _json(wasGeneratedBy={"_:g": {"prov:entity": 5, "prov:activity": "ex:b"}}), "json",
        "not a qualified name"),
    "a relation without its subject": (
        _json(wasGeneratedBy={"_:g": {"prov:activity": "ex:b"}}), "json",
        "lacks its prov:entity"),
    "no PROV records": (b"{}", "json", "holds no PROV records"),
    "nothing at all": (b"  \n", "json", "is empty"),
    "nesting deeper than any document": (b'{"entity": ' + b"[" * 200_000, "json",
                                         "nested too deeply|not a valid json"),
    "a billion laughs": (BOMB, "xml", "DOCTYPE"),
    "an external entity": (XXE, "xml", "DOCTYPE"),
    "a billion laughs in RDF/XML": (RDF_BOMB, "rdfxml", "DOCTYPE"),
    "XML cut short": (b'<prov:document xmlns:prov="http://www.w3.org/ns/prov#">', "xml",
                      "not well-formed XML"),
    "XML, not PROV": (b"<a><b/></a>", "xml", "Non PROV element"),
    "Turtle, not PROV": (b"@prefix ex: <http://e/> . ex:a ex:b ex:c .", "ttl",
                         "holds no PROV records"),
    "Turtle cut short": (b"@prefix ex: <http://e/> . ex:a ex:b", "ttl", "not a valid ttl"),
    "PROV-N with an undeclared prefix": (b"document entity(ex:a) endDocument", "provn",
                                         "prefix 'ex' is not declared"),
    "a gigantic string": (_huge_value(), "json", "over the limit"),
    "a gigantic identifier": (_long_identifier(), "json", "over the limit of 1024 bytes"),
    "an entity that is an activity": (
        _json(entity={"ex:a": {}}, activity={"ex:a": {}}), "json",
        "both an entity and an activity"),
}


@pytest.mark.parametrize("case", REFUSED, ids=str)
def test_malformed_or_hostile_documents_are_refused_with_nothing_stored(case, captured,
                                                                        store_path):
    import_document(serialized(prep_document(), "json"))
    before = counts(store_path)
    data, fmt, message = REFUSED[case]
    with pytest.raises(ProvImportError, match=message) as refused:
        import_document(data, format=fmt)
    assert isinstance(refused.value, dlprov.DlprovError)
    assert counts(store_path) == before


def test_size_limit_is_checked_before_reading(captured, store_path, tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(serialized(prep_document(), "json"))
    with pytest.raises(ProvImportError, match="over the limit of 100"):
        import_document(path, max_bytes=100)
    with pytest.raises(ProvImportError, match="cannot read"):
        import_document(tmp_path / "missing.json")
    assert not Path(store_path).exists() or counts(store_path)["prov_document"] == 0


def test_a_failure_while_storing_leaves_nothing(captured, store_path, monkeypatch):
    import_document(serialized(prep_document(), "json"))
    before = counts(store_path)
    real = external._chunks

    def failing(rows, size):
        if rows and "subject" in rows[0]:  # the relations, after the document and its nodes
            raise RuntimeError("disk full")
        return real(rows, size)

    monkeypatch.setattr(external, "_chunks", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        import_document(serialized(prep_document(), "provn"))
    assert counts(store_path) == before


def test_lenient_reads_what_strict_refuses(captured, store_path):
    data = _json(entity={"ex:a": {}},
                 wasDerivedFrom={"_:d": {"prov:generatedEntity": "ex:a",
                                         "prov:usedEntity": "ex:b", "prov:activity": 5}})
    with pytest.raises(ProvImportError, match="will reject"):
        import_document(data)
    report = import_document(data, strict=False)
    assert report.created and any("not a qualified name" in w for w in report.warnings)


# -- on PostgreSQL ----------------------------------------------------------------------------
def test_import_and_lineage_on_postgresql(tmp_path):
    with postgresql_home() as (url, home):
        df_tag = f"{home}_df"
        capture(url, df_tag, tmp_path)
        data = serialized(prep_document(), "trig")
        first = import_document(data, store=url, source="dataprep")
        assert first.created and first.linked == len(PREPARED)
        assert not import_document(data, store=url).created
        with pytest.raises(ProvImportError):
            import_document(BOMB, store=url)
        check_lineage(url, df_tag)
        [row] = dlprov.sql("SELECT COUNT(*) AS n FROM prov_document", store=url,
                           dataflow=df_tag).records()
        assert row["n"] == 1


# -- the command line -------------------------------------------------------------------------
def test_cli_import_then_query_external(captured, tmp_path):
    runner = CliRunner()
    path = tmp_path / "prep.provn"
    path.write_bytes(serialized(prep_document(), "provn"))
    result = runner.invoke(cli, ["import", str(path), "--source", "dataprep"])
    assert result.exit_code == 0, result.output
    assert "imported document 1 from source 'dataprep' (provn)" in result.output
    assert f"nodes: {NODES} (2 activities, 1 agent, 7 entities)" in result.output
    assert f"linked to dlprov records: {len(PREPARED)}" in result.output
    again = runner.invoke(cli, ["import", str(path)])
    assert again.exit_code == 0 and "already imported as document 1" in again.output
    result = runner.invoke(cli, ["query", "external", "--model", "mlp-split", "--format",
                                 "json", "--dataflow", "prep"])
    assert result.exit_code == 0, result.output
    nodes = {r["node"]: r for r in json.loads(result.output)}
    assert nodes["ex:cleaning"]["kind"] == "activity" and "ex:raw-csv" in nodes
    sql = runner.invoke(cli, ["query", "external", "-m", "mlp-split", "--sql"])
    assert sql.exit_code == 0 and "WITH RECURSIVE" in sql.output and "prov_relation" in sql.output
    linked = runner.invoke(cli, ["query", "linked", "--model", "mlp-direct", "--format", "csv"])
    assert linked.exit_code == 0 and f"{DIRECT_RECORD},1,dataprep" in linked.output


def test_cli_import_from_stdin_and_errors(captured):
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "-", "--format", "json"],
                           input=serialized(prep_document(), "json"))
    assert result.exit_code == 0 and "from source 'stdin' (json)" in result.output
    doc = ProvDocument()
    doc.add_namespace("ex", EX)
    doc.entity("ex:sampled", {"ex:sample": DIRECT_RECORD})
    keyed = runner.invoke(cli, ["import", "-", "--record-key", "sample", "--source", "keyed"],
                          input=serialized(doc, "provn"))
    assert keyed.exit_code == 0 and "linked to dlprov records: 1" in keyed.output
    bomb = runner.invoke(cli, ["import", "-", "--format", "xml"], input=BOMB)
    assert bomb.exit_code == 1 and "error:" in bomb.stderr and "DOCTYPE" in bomb.stderr
    unknown = runner.invoke(cli, ["query", "external", "-m", "no-such-model"])
    assert unknown.exit_code == 1 and "no model 'no-such-model'" in unknown.stderr
    assert set(_FORMATS) == set(FORMATS)
