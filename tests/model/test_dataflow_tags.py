"""Dataflow tags as the original's users wrote them (the paper's ``KerasProv-example``,
``dnnp-1``, ``resnet-cifar10``, ``exp.v2``): accepted by every API, matched case-insensitively,
shown as first written, on SQLite and PostgreSQL."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import dlprov
from dlprov.cli.main import cli
from dlprov.errors import NameRejected
from dlprov.model.names import MAX_TAG_LENGTH, check_name
from dlprov.model.spec import DataflowSpec
from dlprov.prov.export import deserialize, export, serialize
from dlprov.query.catalogue import list_runs
from dlprov.query.schema import describe
from dlprov.query.sql import sql
from dlprov.store.store import Store
from tests.paper_stores import BACKENDS, paper_store

PAPER_TAGS = ["KerasProv-example", "dnnp-1", "resnet-cifar10", "exp.v2", "Exp_3", "2024-run"]


@pytest.mark.parametrize("tag", PAPER_TAGS)
def test_the_tags_users_write_are_dataflow_names(tag):
    assert check_name("dataflow", tag) == tag.lower()
    spec = DataflowSpec(tag)
    assert spec.tag == tag.lower()
    assert spec.label == (tag if tag != tag.lower() else None)
    assert DataflowSpec.from_dict(spec.to_dict()).label == spec.label


def test_fifty_characters_as_in_the_original():
    assert check_name("dataflow", "a" * MAX_TAG_LENGTH) == "a" * 50
    with pytest.raises(NameRejected, match="at most 50 characters"):
        check_name("dataflow", "a" * 51)


@pytest.mark.parametrize("tag, why", [
    ("-x", "beginning with a letter or digit"), (".x", "beginning with a letter or digit"),
    ("exp.", "not ending with '.'"), ("a b", "letters, digits"), ("a;drop", "letters"),
    ('a"b', "letters"), ("café", "letters"), ("a__b", "double underscore"),
    ("public", "reserved"), ("pg_temp", "reserved"), ("", "letters"),
])
def test_tags_no_store_could_name_are_refused(tag, why):
    with pytest.raises(NameRejected, match=why):
        check_name("dataflow", tag)


def test_transformation_set_and_attribute_names_keep_their_rules():
    for kind in ("transformation", "set", "attribute"):
        with pytest.raises(NameRejected, match="not a plain identifier"):
            check_name(kind, "train-1")
        with pytest.raises(NameRejected, match="not a plain identifier"):
            check_name(kind, "exp.v2")


def test_a_label_must_be_the_same_tag():
    with pytest.raises(dlprov.SpecError, match="is not the same tag"):
        DataflowSpec("dnnp-1", label="dnnp-2")


def _record(tag: str, url: str, loss: float = 0.5) -> dlprov.Run:
    with dlprov.run(tag, store=url, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", optimizer_name="adam", learning_rate=0.01)
            train.output("otrain", epoch=1, loss=loss)
            train.output("otrainedmodel", model_name="alexnet", model_dir="model.keras")
        with run.task("test", depends_on=train) as test:
            test.output("otest", loss=loss / 2, accuracy=0.9)
    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_papers_tag_through_every_reader(backend, tmp_path):
    with paper_store(backend, tmp_path) as url:
        _record("KerasProv-example", url, 0.5)
        _record("kerasprov-EXAMPLE", url, 0.25)  # the same dataflow, whatever the case
        store = Store(url)
        with store.read() as conn:
            rows = conn.execute(text("SELECT tag, label FROM dataflow")).all()
            assert rows == [("kerasprov-example", "KerasProv-example")]
            if backend == "postgresql":  # the schema is the quoted (stored) tag
                assert conn.execute(text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = 'kerasprov-example' AND table_name = 'otrain'")
                ).scalar() == 1
        assert [r["df_tag"] for r in list_runs(url)] == ["KerasProv-example"] * 2
        assert [r["df_tag"] for r in list_runs(url, "KERASPROV-example")] == \
            ["KerasProv-example"] * 2
        # (the version depends on how the recorder batched the spec as it grew)
        assert describe(url, "kerasprov-example").startswith("dataflow KerasProv-example (version ")
        for asked in ("KerasProv-example", "kerasprov-example", None):
            assert sorted(sql("SELECT loss FROM otrain", store=url, dataflow=asked).rows) == \
                [(0.25,), (0.5,)]
        result = CliRunner().invoke(cli, ["--store", url, "sql", "--dataflow",
                                          "KerasProv-example", "SELECT count(*) AS n FROM otest"])
        assert result.exit_code == 0, result.output
        assert "2" in result.output
        result = CliRunner().invoke(cli, ["--store", url, "runs", "--format", "json"])
        assert result.exit_code == 0 and "KerasProv-example" in result.output, result.output


# PROV-N's local names: letters, digits, '_', '-', '.', ':', '/', and %-escapes; no final '.'.
_PN_LOCAL = re.compile(r"[\w:%/\d][\w.:%/\-]*(?<!\.)\Z")


@pytest.mark.parametrize("tag", ["KerasProv-example", "exp.v2", "2024-run"])
def test_prov_identifiers_stay_qualified_names(tag, tmp_path):
    url = f"sqlite:///{tmp_path / 'prov.db'}"
    run = _record(tag, url)
    doc = deserialize(export(store=url, run=run.exec_tag, format="json"), "json")
    local_parts = [str(record.identifier.localpart) for bundle in [doc, *doc.bundles]
                   for record in bundle.get_records() if record.identifier is not None]
    assert any(part.startswith(f"{tag.lower()}/otrain/") for part in local_parts)
    assert any(part == f"dataflow/{tag.lower()}" for part in local_parts)
    assert [p for p in local_parts if not _PN_LOCAL.match(p)] == []
    provn = serialize(doc, "provn").decode()
    assert f"dlprov:{tag.lower()}/otrain/" in provn
    assert deserialize(serialize(doc, "xml"), "xml") == doc


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_tag_and_a_long_set_name_are_refused_at_the_call(backend, tmp_path):
    """50 characters of tag leave 11 for a set: ``<tag>__<set>`` names the SQLite table and
    every derived identifier keeps to PostgreSQL's 63 bytes. The refusal names the limit."""
    tag = "Long-Tag." + "x" * 41
    with paper_store(backend, tmp_path) as url:
        with dlprov.run(tag, store=url, capture_environment=False) as run:
            with run.task("train") as train:
                train.output("otrain", loss=0.5)  # 50 + 2 + 6: fits
                with pytest.raises(dlprov.SpecError, match=r"at most 63 .*choose shorter names"):
                    train.output("otrainedmodel", model_name="m")
        assert sql("SELECT loss FROM otrain", store=url, dataflow=tag).rows == [(0.5,)]
        assert run.recorder.rejected == 0


def test_the_dfa_api_keeps_the_tag_as_written(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    from dlprov.dfa import (Attribute, DataSet, Dataflow, Element, Set, SetType, Task,
                            Transformation, end_execution)
    dataflow = Dataflow("KerasProv-example", transformations=[Transformation("Train", [
        Set("oTrain", SetType.OUTPUT, [Attribute("loss", "numeric")])])])
    dataflow.save()
    task = Task(1, dataflow, "kp-1", "Train")
    task.begin()
    task.add_dataset(DataSet("oTrain", [Element([0.5])]))
    task.end()
    end_execution("kp-1")
    assert [run["df_tag"] for run in list_runs(str(store_path))] == ["KerasProv-example"]
    found = sql('SET SCHEMA "kerasprov-example"; SELECT loss FROM otrain', store=str(store_path))
    assert found.rows == [(0.5,)]
