"""dlprov's own documents are valid under PROV-CONSTRAINTS: every export (dataflow, each run,
each model, in every text format) of a demo-like store holding a failed task, a model tested
twice and imported external PROV; and the hooks: ``dlprov import`` validates what it imports,
``dlprov verify`` validates a package's document."""
from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.errors import ProvImportError
from dlprov.prov import deserialize, document, export
from dlprov.prov.constraints import validate
from dlprov.prov.imports import import_document
from dlprov.prov.package import PROV_JSON, package_model, verify_package
from tests.prov.test_import import PREPARED, prep_document, serialized
from tests.prov.workflows import capture, experiment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FORMATS = ("provn", "json", "xml", "ttl", "trig")


@pytest.fixture
def store(store_path, tmp_path):
    experiment(tmp_path / "work")                                   # mlp-a, mlp-b
    capture(tmp_path / "twice", "mlp-c", ("clean",), 0.1, tests=2)  # tested twice
    with pytest.raises(RuntimeError):
        with dlprov.run("exp", exec_tag="exp-failed", capture_environment=False) as run:
            with run.task("loaddata") as load:
                load.output("oloaddata", dataset_dir="raw.npz")
            with run.task("train", depends_on=load) as train:
                train.input("itrain", learning_rate=0.1)
                raise RuntimeError("diverged")
    report = import_document(serialized(prep_document(), "json"), store=store_path,
                             source="prep-tool")
    assert report.created and not report.warnings
    return store_path


SCOPES = [{}, {"run": "exp-mlp-a"}, {"run": "exp-mlp-c"}, {"run": "exp-failed"},
          {"model": "mlp-a"}, {"model": "mlp-b"}, {"model": "mlp-c"}]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: "-".join(map(str, s.items())) or
                         "dataflow")
def test_every_export_is_valid(store, scope):
    doc = document(**scope)
    report = validate(doc)
    assert report.valid, report.table()
    assert report.records > 10
    for fmt in FORMATS:
        back = deserialize(export(**scope, format=fmt), fmt)
        assert validate(back).valid, (fmt, validate(back).table())


def test_the_failed_run_is_in_the_export(store):
    text = export(run="exp-failed", format="provn")
    assert "failed" in text.lower()


def test_a_broken_export_is_caught(store):
    """The check is not vacuous: one relation more, a derivation cycle, makes it invalid."""
    doc = document(model="mlp-a")
    bundle = next(iter(doc.bundles))
    model = next(r for r in bundle.get_records() if "model/" in str(r.identifier))
    source = next(r for r in bundle.get_records()
                  if r.is_element() and "oloaddata" in str(r.identifier))
    bundle.wasDerivedFrom(source.identifier, model.identifier)
    report = validate(doc)
    assert not report.valid
    assert any(v.number == 42 and v.bundle for v in report.violations), report.table()


def test_import_warns_or_refuses_an_invalid_document(store_path, tmp_path):
    bad = prep_document(bundle=False)
    bad.wasDerivedFrom("ex:raw-csv", f"ex:clean-{PREPARED[0]}")   # a derivation cycle
    data = serialized(bad, "provn")
    with pytest.raises(ProvImportError,
                       match="derivation-generation-generation-ordering.*nothing stored"):
        import_document(data, store=store_path, source="bad", constraints="strict")
    report = import_document(data, store=store_path, source="bad")
    assert report.created
    assert any("PROV-CONSTRAINTS" in w and "constraint 42" in w for w in report.warnings)
    path = tmp_path / "bad2.provn"
    path.write_bytes(data + b"\n")
    result = CliRunner().invoke(cli, ["--store", str(store_path), "import", str(path),
                                      "--strict"])
    assert result.exit_code == 1 and "constraint 42" in result.output
    result = CliRunner().invoke(cli, ["--store", str(store_path), "import", str(path)])
    assert result.exit_code == 0
    assert "warning: the document breaks W3C PROV-CONSTRAINTS" in result.output


def test_verify_validates_the_package_document(store, tmp_path):
    path = package_model("mlp-c", tmp_path / "mlp-c.zip")
    verdict = verify_package(path)
    assert verdict.ok and "valid under W3C PROV-CONSTRAINTS" in str(verdict)

    def break_it(name: str, data: bytes) -> bytes:
        if name == PROV_JSON:
            doc = json.loads(data)
            doc.setdefault("activity", {})["dlprov:clash"] = {}
            doc.setdefault("entity", {})["dlprov:clash"] = {}
            return json.dumps(doc).encode()
        return data

    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, break_it(name, data))
    verdict = verify_package(path)
    assert not verdict.ok
    assert "breaks W3C PROV-CONSTRAINTS: constraint 55 entity-activity-disjoint" in str(verdict)
