"""``dlprov package``, ``verify`` and ``inspect`` through click's runner, error paths included."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from click.testing import CliRunner

import dlprov.query as q
from dlprov.cli.main import cli
from tests.prov.test_package import torch_candidate
from tests.prov.workflows import experiment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib 7, via prov


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def package(runner, store_path, tmp_path):
    experiment(tmp_path / "work")
    (tmp_path / "torch").mkdir()
    torch_candidate(tmp_path / "torch")
    path = tmp_path / "mlp-t.zip"
    result = runner.invoke(cli, ["package", "--model", "mlp-t", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.output
    return path


def test_verify_ok(runner, package):
    result = runner.invoke(cli, ["verify", str(package)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {package}")


def test_verify_tampered_model(runner, package):
    with zipfile.ZipFile(package) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    model = members["model/mlp-t.pt"]
    members["model/mlp-t.pt"] = model[:-1] + bytes([model[-1] ^ 1])
    with zipfile.ZipFile(package, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    result = runner.invoke(cli, ["verify", str(package)])
    assert result.exit_code == 1
    assert "FAILED: member model/mlp-t.pt does not match its sha256" in result.output


def test_verify_not_a_package(runner, tmp_path):
    (tmp_path / "x.zip").write_text("plain text")
    result = runner.invoke(cli, ["verify", str(tmp_path / "x.zip")])
    assert result.exit_code == 2
    assert result.output.startswith("FAILED: ") and "not a readable dlprov package" in result.output


@pytest.mark.parametrize("question", ["q7", "q8", "q9", "q10", "q11", "q12"])
def test_inspect_matches_query(runner, package, question):
    inspected = runner.invoke(cli, ["inspect", str(package), question, "--format", "json"])
    queried = runner.invoke(cli, ["query", question, "--model", "mlp-t", "--format", "json"])
    assert inspected.exit_code == 0 and queried.exit_code == 0, inspected.output
    assert json.loads(inspected.output) == json.loads(queried.output)
    assert json.loads(inspected.output)


def test_inspect_formats_without_store(runner, package, store_path, tmp_path):
    expected = q.q10("mlp-t")
    store_path.unlink()
    result = runner.invoke(cli, ["--store", str(tmp_path / "nowhere.db"), "inspect",
                                 str(package), "q10", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == expected.columns and len(rows) == len(expected.rows) + 1
    table = runner.invoke(cli, ["inspect", str(package), "q11"])
    assert table.exit_code == 0 and "set_tag" in table.output
    assert not (tmp_path / "nowhere.db").exists()


def test_inspect_errors(runner, package, tmp_path):
    wrong = runner.invoke(cli, ["inspect", str(package), "q1"])
    assert wrong.exit_code == 2 and "Invalid value" in wrong.output
    (tmp_path / "x.zip").write_text("plain text")
    bad = runner.invoke(cli, ["inspect", str(tmp_path / "x.zip"), "q7"])
    assert bad.exit_code == 1 and "error: " in bad.output


def test_package_unknown_model(runner, package, tmp_path):
    result = runner.invoke(cli, ["package", "--model", "nope", "-o", str(tmp_path / "n.zip")])
    assert result.exit_code == 1 and "no model 'nope'" in result.output
    assert not (tmp_path / "n.zip").exists()
