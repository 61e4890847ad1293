"""Exported files: every text format reads back with ``prov`` into an equal document, and
pictures are written (summarised when large), with or without Graphviz."""
from __future__ import annotations

import os
import stat
import time

import pytest
from prov.model import ProvDocument

from dlprov.prov import (
    ExportError,
    deserialize,
    document,
    export,
    format_of,
    serialize,
    write,
    write_document,
    write_picture,
)
from dlprov.prov.picture import graph, layers, to_dot
from tests.prov.workflows import big_run, experiment

# prov's RDF codec, called directly below, uses APIs that rdflib 7 deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def runs(store_path, tmp_path):
    return experiment(tmp_path / "work")


def same(a: ProvDocument, b: ProvDocument) -> bool:
    """Equal records at the top and in every bundle, both ways (``==`` of prov looks only at
    the bundles of its left side)."""
    return a == b and b == a and {x.identifier for x in a.bundles} == {
        x.identifier for x in b.bundles}


@pytest.mark.parametrize("fmt", ["provn", "json", "xml", "trig"])
@pytest.mark.parametrize("scope", [{}, {"run": "exp-mlp-b"}, {"model": "mlp-a"}])
def test_round_trip_keeps_the_document_and_its_bundles(runs, fmt, scope):
    doc = document(**scope)
    text = export(format=fmt, **scope)
    assert isinstance(text, str)
    back = ProvDocument.deserialize(content=text, format="rdf" if fmt == "trig" else fmt,
                                    **({"rdf_format": "trig"} if fmt == "trig" else {}))
    assert same(back, doc)
    assert len(list(back.bundles)) == (1 if scope else 2)
    assert same(deserialize(text, fmt), doc)


@pytest.mark.parametrize("scope", [{}, {"model": "mlp-a"}])
def test_turtle_is_the_flattened_document(runs, scope):
    """Turtle has no named graphs: the export is flattened, and reading RDF back merges the
    records one identifier has in several bundles (the user of two runs, say), so the
    comparison is of the unified forms."""
    doc = document(**scope)
    back = ProvDocument.deserialize(content=export(format="ttl", **scope), format="rdf",
                                    rdf_format="turtle")
    assert not list(back.bundles)
    assert same(back.unified(), doc.flattened().unified())


def test_formats_from_extensions_and_errors(runs, tmp_path):
    for name, fmt in [("a.provn", "provn"), ("a.JSON", "json"), ("a.xml", "xml"),
                      ("a.ttl", "ttl"), ("a.trig", "trig"), ("a.svg", "svg"),
                      ("a.png", "png"), ("a.pdf", "pdf"), ("a.provx", "xml")]:
        assert format_of(name) == fmt
    with pytest.raises(ExportError, match="extension"):
        format_of("a.docx")
    with pytest.raises(ExportError, match="extension"):
        write(tmp_path / "noext")
    with pytest.raises(ExportError, match="unknown export format"):
        export(format="dot")
    with pytest.raises(ExportError, match="cannot be read back"):
        deserialize(b"", "png")
    path = write(tmp_path / "out" / "run.json", run="exp-mlp-a")
    assert same(deserialize(path.read_bytes(), "json"), document(run="exp-mlp-a"))
    path = write(tmp_path / "run.txt", run="exp-mlp-a", format="provn")
    assert path.read_text().startswith("document")


def test_serialize_gives_bytes_for_packaging(runs, tmp_path):
    doc = document(model="mlp-a")
    data = serialize(doc, "json")
    assert isinstance(data, bytes) and same(deserialize(data, "json"), doc)
    path = write_document(doc, tmp_path / "trace.provn")
    assert same(deserialize(path.read_bytes(), "provn"), doc)


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_pictures_are_written(runs, tmp_path, fmt, magic, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Graphviz: matplotlib draws
    data = export(format=fmt)
    assert isinstance(data, bytes) and magic in data[:400] and len(data) > 2000
    path = write(tmp_path / f"trace.{fmt}", model="mlp-a")
    assert path.read_bytes()[:400].find(magic) >= 0


def test_picture_is_deterministic_and_coloured(runs):
    doc = document(run="exp-mlp-a")
    first = serialize(doc, "svg")
    assert first == serialize(doc, "svg")
    text = first.decode()
    for colour in ("#9fb1fc", "#fed37f", "#c9a7e8"):  # entities, activities, agents
        assert colour in text.lower()
    assert "wasGeneratedBy" in text and "otrainedmodel" in text


def test_layers_put_causes_left_of_effects(runs):
    g = graph(document(run="exp-mlp-a"))
    column = {node: i for i, layer in enumerate(layers(g)) for node in layer}
    assert set(column) == set(g.nodes)
    for source, target, relation in g.edges:
        assert column[target] < column[source], (source, target, relation)


def test_a_large_run_is_summarised(store_path, tmp_path):
    big_run(1000)
    doc = document(run="big-1")
    assert len(doc.flattened().get_records()) > 2000
    g = graph(doc, max_nodes=150)
    assert g.summarised and len(g.nodes) <= 150
    labels = {n.label for n in g.nodes.values()}
    assert "otrain ×1000" in labels
    assert not graph(doc, max_nodes=5000).summarised
    started = time.perf_counter()
    path = write_picture(doc, tmp_path / "big.png")
    assert path.stat().st_size > 1000 and time.perf_counter() - started < 60


def test_many_tasks_are_summarised_by_transformation(store_path):
    import dlprov
    with dlprov.run("many", exec_tag="many-1", capture_environment=False) as run:
        for i in range(200):
            with run.task("augment") as task:
                task.output("oaugment", index=i)
                task.output("oaugment", index=i + 1000)
    g = graph(document(run="many-1"), max_nodes=150)
    assert len(g.nodes) <= 150
    assert {n.label for n in g.nodes.values()} >= {"augment ×200", "oaugment ×400"}


def test_graphviz_draws_when_dot_is_on_the_path(runs, tmp_path, monkeypatch):
    """With a ``dot`` binary the DOT text goes to it (here a stand-in that echoes it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    doc = document(run="exp-mlp-a")
    data = serialize(doc, "svg")
    assert (tmp_path / "args").read_text().strip() == "-Tsvg"
    assert data.decode() == to_dot(graph(doc, group=True))
    text = data.decode()
    assert text.startswith("digraph prov {") and "rankdir=RL" in text
    assert "shape=ellipse" in text and "shape=box" in text and "shape=house" in text
    assert 'label="wasGeneratedBy"' in text


def test_pictures_draw_the_batches_of_a_task_as_one_node(store_path, tmp_path, monkeypatch):
    """22 per-batch elements of one training task are one node ``otrainbatch ×22`` in export
    and package pictures; ``group=False`` (``--no-group``) draws each of them."""
    import dlprov

    with dlprov.run("batches", exec_tag="batches-1") as run:
        with run.task("train") as task:
            for step in range(22):
                task.output("otrainbatch", step=step, loss=1.0 / (step + 1))
            task.output("otrain", epoch=0, loss=0.5)
    doc = document(run="batches-1")
    grouped = {n.label for n in graph(doc, group=True).nodes.values()}
    assert "otrainbatch ×22" in grouped
    assert not any(label.startswith("otrainbatch ") and "×" not in label for label in grouped)
    every = [n.label for n in graph(doc).nodes.values() if n.tag == "otrainbatch"]
    assert len(every) == 22
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\ncat\n")  # echoes the DOT text it is given
    (bin_dir / "dot").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    assert "otrainbatch ×22" in serialize(doc, "svg").decode()
    assert serialize(doc, "svg", group=False).decode().count('label="otrainbatch ') == 22
