"""Packages of a model recorded DfAnalyzer-style, as a plain ``otrainedmodel`` element
(``model_name``, ``model_dir``) with no ``task.model()``: the store holds no digest, so the one
taken at packaging time is what verify checks, and the manifest says the store had none."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.prov.package import MANIFEST, package_model, verify_package
from dlprov.store.files import file_digest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib 7, via prov


def _plain_model(root: Path, url: str) -> Path:
    model = root / "alexnet.keras"
    model.write_bytes(b"weights of alexnet" * 100)
    with dlprov.run("dnnp-1", store=url, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", optimizer_name="adam", learning_rate=0.01)
            train.output("otrain", epoch=1, loss=0.5)
            train.output("otrainedmodel", model_name="alexnet", model_dir=str(model))
        with run.task("test", depends_on=train) as test:
            test.output("otest", loss=0.25, accuracy=0.9)
    return model


def _manifest(package: Path) -> dict:
    with zipfile.ZipFile(package) as zf:
        return json.loads(zf.read(MANIFEST))


def test_a_plain_model_packages_and_verifies(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    model = _plain_model(tmp_path, url)
    package = package_model("alexnet", tmp_path / "alexnet.zip", store=url)
    entry = _manifest(package)["model"]
    assert entry["recorded_sha256"] is None
    assert entry["packaged_sha256"] == file_digest(model)["sha256"]
    assert entry["store_recorded"].startswith("none")
    verdict = verify_package(package)
    assert verdict.ok, verdict.failures
    assert any("the one taken when it was packaged" in check for check in verdict.checks)
    result = CliRunner().invoke(cli, ["verify", str(package)])
    assert result.exit_code == 0, result.output


def test_verify_still_catches_a_changed_model(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _plain_model(tmp_path, url)
    package = package_model("alexnet", tmp_path / "alexnet.zip", store=url)
    manifest = _manifest(package)
    manifest["model"]["packaged_sha256"] = "0" * 64  # as if other bytes had been packaged
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(forged, "w") as out:
        for info in source.infolist():
            data = json.dumps(manifest).encode() if info.filename == MANIFEST else \
                source.read(info.filename)
            out.writestr(info, data)
    verdict = verify_package(forged)
    assert not verdict.ok
    assert any("taken when it was packaged (the store recorded none)" in reason
               for reason in verdict.failures), verdict.failures
