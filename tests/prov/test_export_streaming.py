"""Turtle, TriG and PROV-JSON written while the mapping runs (dlprov.prov.stream): the same
graph as the whole-document path (``streaming=False``) read back with rdflib and with ``prov``,
and PROV-JSON byte for byte."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from prov.model import ProvDocument
from rdflib import Dataset, Graph, Literal, URIRef
from rdflib.compare import isomorphic

import dlprov
from dlprov.cli.main import cli
from dlprov.errors import NotFound
from dlprov.prov import deserialize, document, export, write
from dlprov.prov.ids import DLPROV
from dlprov.prov.scope import read_snapshot
from dlprov.prov.stream import STREAM_FORMATS, streams, write_scope
from dlprov.prov.stream import json_writer
from dlprov.prov.stream import turtle as turtle_module
from dlprov.prov.stream.builder import emit_records
from dlprov.prov.stream.compare import same_dataset, same_graph
from dlprov.prov.stream.json_writer import NeedsWholeDocument, json_agrees
from dlprov.prov.stream.turtle import TurtleWriter, fast_path_agrees
from tests.prov.workflows import capture, experiment

# prov's RDF codec (the whole-document path) uses APIs that rdflib 7 deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCOPES = [{}, {"run": "exp-mlp-b"}, {"model": "mlp-a"}]


@pytest.fixture
def runs(store_path, tmp_path):
    return experiment(tmp_path / "work")


def parsed(text: str, fmt: str) -> Graph | Dataset:
    if fmt == "ttl":
        return Graph().parse(data=text, format="turtle")
    dataset = Dataset()
    dataset.parse(data=text, format="trig")
    return dataset


def graphs(data: Graph | Dataset) -> dict:
    if isinstance(data, Dataset):
        return {g.identifier: g for g in data.graphs() if len(g)}
    return {None: data}


def assert_same_export(fmt: str, store: str | None = None, **scope) -> str:
    """The streamed export of ``scope`` is the graph (TriG: every named graph) of the
    whole-document export, by content and by rdflib's general isomorphism (small stores);
    PROV-JSON: the same bytes, and the same document read back."""
    old, new = (export(store, format=fmt, streaming=flag, **scope) for flag in (False, True))
    if fmt == "json":
        assert new == old
        assert same(deserialize(new, "json"), document(store, **scope))
        return new
    a, b = parsed(old, fmt), parsed(new, fmt)
    assert len(a) > 0
    if fmt == "ttl":
        assert same_graph(a, b)
    else:
        assert same_dataset(a, b)
    ga, gb = graphs(a), graphs(b)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert isomorphic(ga[name], gb[name]), name
    return new


def same(a: ProvDocument, b: ProvDocument) -> bool:
    return a == b and b == a and {x.identifier for x in a.bundles} == {
        x.identifier for x in b.bundles}


def test_the_probe_finds_the_direct_path_agrees_with_prov():
    assert fast_path_agrees() and json_agrees()
    assert streams("ttl") and streams("trig") and streams("json")
    assert not streams("provn") and not streams("xml")
    assert STREAM_FORMATS == {"ttl", "trig", "json"}


@pytest.mark.parametrize("fmt", ["ttl", "trig", "json"])
@pytest.mark.parametrize("scope", SCOPES)
def test_streamed_export_is_the_graph_of_the_whole_document(runs, fmt, scope):
    assert_same_export(fmt, **scope)


@pytest.mark.parametrize("scope", SCOPES)
def test_trig_reads_back_with_prov_as_the_document_and_its_bundles(runs, scope):
    doc = document(**scope)
    text = export(format="trig", **scope)
    back = deserialize(text, "trig")
    assert same(back, doc)
    assert len(list(back.bundles)) == (1 if scope else 2)
    # one named graph per execution, the dataflow (prov:Plan) in the default graph
    named = {g.identifier for g in parsed(text, "trig").graphs() if len(g)}
    assert named >= {URIRef(b.identifier.uri) for b in doc.bundles}


def test_turtle_reads_back_with_prov_as_the_flattened_document(runs):
    back = deserialize(export(format="ttl"), "ttl")
    assert not list(back.bundles)
    assert same(back.unified(), document().flattened().unified())


def test_the_prov_path_alone_gives_the_same_graph(runs):
    """Every record through prov's own encoder (fast=False) and the direct path: one graph."""
    snap = read_snapshot()
    texts = []
    for fast in (False, True):
        parts: list[str] = []
        writer = TurtleWriter(parts.append, named_graphs=True, fast=fast)
        emit_records(snap, writer.record)
        writer.close()
        texts.append("".join(parts))
    assert texts[0] != texts[1]  # the direct path was taken
    assert same_dataset(parsed(texts[0], "trig"), parsed(texts[1], "trig"))


def test_the_records_are_not_kept(runs):
    seen = []
    doc = emit_records(read_snapshot(), seen.append)
    full = document()
    assert len(seen) == len(full.records) + sum(len(b.records) for b in full.bundles)
    assert not doc.records and all(not b.records for b in doc.bundles)
    assert {b.identifier for b in doc.bundles} == {b.identifier for b in full.bundles}


def test_a_failed_task_a_model_tested_twice_and_odd_values(store_path, tmp_path):
    capture(tmp_path / "work", "twice", ("clean",), 0.01, epochs=2, tests=2)
    with pytest.raises(RuntimeError, match="out of memory"):
        with dlprov.run("exp", exec_tag="exp-broken", capture_environment=False) as run:
            with run.task("loaddata") as load:
                load.output("oloaddata", dataset_dir='a "quoted"\npath\\ ünïcode ✓')
            with run.task("train", depends_on=load) as train:
                train.input("itrain", learning_rate=1e-300, batch_size=2 ** 40)
                raise RuntimeError("out of memory")
    doc = document(run="exp-broken")
    statuses = {str(v) for b in doc.bundles for r in b.records
                for k, v in r.attributes if k == DLPROV["status"]}
    assert "failed" in statuses
    for fmt in ("ttl", "trig", "json"):
        for scope in ({}, {"run": "exp-broken"}, {"model": "twice"}):
            assert_same_export(fmt, **scope)
    graph = parsed(export(format="ttl", run="exp-broken"), "ttl")
    assert Literal('a "quoted"\npath\\ ünïcode ✓') in set(graph.objects())


def test_a_postgresql_store(tmp_path):
    from dlprov.store.store import Store
    from tests.paper_stores import fresh_postgresql_database
    with fresh_postgresql_database() as url:
        experiment(tmp_path / "work", store=url)
        store = Store(url)
        try:
            for fmt in ("ttl", "trig", "json"):
                for scope in ({}, {"model": "mlp-b"}):
                    assert_same_export(fmt, store, **scope)
        finally:
            store.dispose()


def test_imported_provenance_beside_the_export(runs, tmp_path):
    from dlprov.prov.imports import import_document
    prep = ProvDocument()
    prep.add_namespace("ex", "https://example.org/")
    prep.entity("ex:raw", {"ex:record_id": "digits"})
    prep.activity("ex:clean")
    prep.wasGeneratedBy("ex:raw", "ex:clean")
    import_document(prep.serialize(format="json").encode(), source="dataprep", format="json")
    for fmt in ("ttl", "trig", "json"):
        assert_same_export(fmt)


def test_write_streams_into_the_file_and_leaves_nothing_on_failure(runs, tmp_path,
                                                                   monkeypatch):
    path = write(tmp_path / "out" / "exp.trig")
    assert same_dataset(parsed(path.read_text("utf-8"), "trig"),
                        parsed(export(format="trig", streaming=False), "trig"))
    old = write(tmp_path / "out" / "old.ttl", streaming=False)
    assert same_graph(parsed(old.read_text("utf-8"), "ttl"),
                      parsed(write(tmp_path / "out" / "new.ttl").read_text("utf-8"), "ttl"))
    with pytest.raises(NotFound):
        write(tmp_path / "out" / "none.ttl", run="no-such-run")
    assert write(tmp_path / "out" / "exp.json").read_text("utf-8") == export(
        format="json", streaming=False)

    def broken(self, record):
        raise OSError("disk full")
    monkeypatch.setattr(TurtleWriter, "record", broken)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path / "out" / "exp.trig")
    assert path.read_text("utf-8").startswith("@prefix")  # the earlier file is untouched
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "exp.json", "exp.trig", "new.ttl", "old.ttl"]


def test_cli_export_writes_the_same_graph(runs, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--format", "ttl"])
    assert result.exit_code == 0, result.output
    assert same_graph(parsed(result.output, "ttl"),
                      parsed(export(format="ttl", streaming=False), "ttl"))
    result = CliRunner().invoke(cli, ["export", "--run", "exp-mlp-a", "-o",
                                      str(tmp_path / "run.trig")])
    assert result.exit_code == 0, result.output
    assert same_dataset(parsed((tmp_path / "run.trig").read_text("utf-8"), "trig"),
                        parsed(export(format="trig", run="exp-mlp-a", streaming=False), "trig"))


def test_the_comparison_sees_a_changed_graph(runs):
    text = export(format="ttl")
    graph = parsed(text, "ttl")
    assert same_graph(graph, parsed(text, "ttl"))
    changed = parsed(text, "ttl")
    s, p, o = next(t for t in changed if isinstance(t[2], Literal))
    changed.remove((s, p, o))
    changed.add((s, p, Literal(str(o) + "x")))
    assert not same_graph(graph, changed)
    # a qualified derivation pointing at another activity is another graph
    derivation = parsed(text, "ttl")
    hadActivity = URIRef("http://www.w3.org/ns/prov#hadActivity")
    node, activity = next((s, o) for s, p, o in derivation if p == hadActivity)
    derivation.remove((node, hadActivity, activity))
    derivation.add((node, hadActivity, URIRef(str(activity) + "x")))
    assert not same_graph(graph, derivation)


def test_a_failing_probe_keeps_the_whole_document_path(runs, monkeypatch):
    monkeypatch.setattr("dlprov.prov.stream.fast_path_agrees", lambda: False)
    assert not streams("ttl")
    called = []
    monkeypatch.setattr(turtle_module.TurtleWriter, "record",
                        lambda self, record: called.append(record))
    assert same_graph(parsed(export(format="ttl"), "ttl"),
                      parsed(export(format="ttl", streaming=False), "ttl"))
    assert not called


def test_write_scope_refuses_other_formats(runs):
    with pytest.raises(ValueError, match="not written streaming"):
        write_scope(read_snapshot(), "provn", print)


def test_json_falls_back_to_the_whole_document_where_a_prefix_must_be_minted(runs,
                                                                             monkeypatch):
    def refuse(self):
        raise NeedsWholeDocument("a name needs a prefix of its own")
    monkeypatch.setattr(json_writer.JsonWriter, "close", refuse)
    assert export(format="json") == export(format="json", streaming=False)


def test_a_failing_json_probe_keeps_the_whole_document_path(runs, monkeypatch):
    monkeypatch.setattr("dlprov.prov.stream.json_agrees", lambda: False)
    assert not streams("json")
    monkeypatch.setattr(json_writer.JsonWriter, "record",
                        lambda self, record: pytest.fail("streamed"))
    assert deserialize(export(format="json"), "json") == document()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    """The demo's workflow, two candidates for one epoch (real torch training)."""
    import torch

    from dlprov.demo.workflow import CANDIDATES, run_candidate
    from dlprov.store.store import Store
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("demo")
    store = Store(folder / "demo.db")
    for candidate in CANDIDATES[:2]:
        run_candidate(candidate, store=store, epochs=1, output_dir=folder / "out")
    store.dispose()
    return f"sqlite:///{folder / 'demo.db'}"


@pytest.mark.parametrize("fmt", ["ttl", "trig", "json"])
def test_the_demo_store(demo_store, fmt):
    from dlprov.store.store import Store
    store = Store(demo_store)
    try:
        old = export(store, format=fmt, streaming=False)
        new = export(store, format=fmt)
    finally:
        store.dispose()
    if fmt == "json":
        assert new == old and len(new) > 50_000
        return
    a, b = parsed(old, fmt), parsed(new, fmt)
    assert len(a) > 1000
    assert same_graph(a, b) if fmt == "ttl" else same_dataset(a, b)


def test_the_probes_catch_a_writer_that_strays_from_prov(monkeypatch):
    """The once-per-process checks are real: a direct path writing another triple, or a JSON
    writer spelling a number otherwise, fails them (``__wrapped__``: uncached)."""
    assert fast_path_agrees.__wrapped__() and json_agrees.__wrapped__()
    original = TurtleWriter._relation

    def swapped(self, kind, record):
        if kind.__name__ == "ProvUsage":
            self._emit("<urn:x> <urn:used> <urn:y> .\n")
            return True
        return original(self, kind, record)
    monkeypatch.setattr(TurtleWriter, "_relation", swapped)
    assert not fast_path_agrees.__wrapped__()
    monkeypatch.undo()
    monkeypatch.setattr(json_writer, "_xsd_double_text", lambda value: repr(round(value, 3)))
    assert not json_agrees.__wrapped__()
