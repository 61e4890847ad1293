"""``dlprov export`` through click's runner: formats, scopes, files, and the error paths."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.prov import deserialize, document
from tests.prov.workflows import experiment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib 7, via prov


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def runs(store_path, tmp_path):
    return experiment(tmp_path / "work")


def test_text_to_standard_output(runner, runs):
    result = runner.invoke(cli, ["export", "--run", "exp-mlp-a", "--format", "provn"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("document")
    assert deserialize(result.output, "provn") == document(run="exp-mlp-a")
    default = runner.invoke(cli, ["export"])  # the whole dataflow as PROV-JSON
    assert default.exit_code == 0 and deserialize(default.output, "json") == document()


@pytest.mark.parametrize("name", ["trace.json", "trace.xml", "trace.provn", "trace.trig"])
def test_format_from_the_file_extension(runner, runs, tmp_path, name):
    path = tmp_path / name
    result = runner.invoke(cli, ["export", "--model", "mlp-a", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.output
    fmt = path.suffix[1:]
    assert deserialize(path.read_bytes(), fmt) == document(model="mlp-a")


def test_turtle_and_the_dataflow_option(runner, runs, tmp_path):
    path = tmp_path / "exp.ttl"
    result = runner.invoke(cli, ["--store", "dlprov.db", "export", "--dataflow", "exp", "-o",
                                 str(path)])
    assert result.exit_code == 0, result.output
    back = deserialize(path.read_bytes(), "ttl")
    assert back.unified() == document(dataflow="exp").flattened().unified()


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_pictures(runner, runs, tmp_path, fmt, magic):
    path = tmp_path / f"run.{fmt}"
    result = runner.invoke(cli, ["export", "-r", "exp-mlp-b", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert magic in path.read_bytes()[:400]
    other = tmp_path / "run.out"
    result = runner.invoke(cli, ["export", "-r", "exp-mlp-b", "-f", fmt, "-o", str(other),
                                 "--max-nodes", "10"])
    assert result.exit_code == 0 and magic in other.read_bytes()[:400]


def test_errors(runner, runs, tmp_path):
    picture = runner.invoke(cli, ["export", "--format", "png"])
    assert picture.exit_code == 2 and "needs a file" in picture.output
    both = runner.invoke(cli, ["export", "--run", "exp-mlp-a", "--model", "mlp-a"])
    assert both.exit_code == 2 and "not both" in both.output
    unknown = runner.invoke(cli, ["export", "-o", str(tmp_path / "out.docx")])
    assert unknown.exit_code == 1 and "extension" in unknown.output
    assert not (tmp_path / "out.docx").exists()
    missing = runner.invoke(cli, ["export", "--run", "nope"])
    assert missing.exit_code == 1 and "no execution 'nope'" in missing.output
    no_model = runner.invoke(cli, ["export", "--model", "nope"])
    assert no_model.exit_code == 1 and "no model 'nope'" in no_model.output
    bad = runner.invoke(cli, ["export", "--format", "dot"])
    assert bad.exit_code == 2


def test_empty_store(runner, store_path):
    result = runner.invoke(cli, ["export"])
    assert result.exit_code == 1 and result.output.startswith("error:")
