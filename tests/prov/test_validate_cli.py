"""``dlprov validate`` through click's runner: files, store exports, formats, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from tests.prov.workflows import experiment

CORPUS = Path(__file__).resolve().parents[1] / "data" / "provtoolbox"
VALID = CORPUS / "unification" / "generation-success1.provn"
INVALID = CORPUS / "ordering" / "derivation2.xml"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_valid_and_invalid_files():
    result = run("validate", str(VALID))
    assert result.exit_code == 0 and result.output.startswith("VALID")
    result = run("validate", str(VALID), str(INVALID))
    assert result.exit_code == 1
    assert "INVALID" in result.output
    assert "constraint 42 derivation-generation-generation-ordering" in result.output
    assert "records: ex:der1, ex:der2 (line" in result.output


def test_json_report_lists_violations_with_lines():
    result = run("validate", "--format", "json", str(INVALID), str(VALID))
    assert result.exit_code == 1
    reports = json.loads(result.output)
    assert [r["valid"] for r in reports] == [False, True]
    (violation,) = reports[0]["violations"]
    assert violation["constraint"] == 42 and violation["lines"]
    assert set(violation["records"]) == {"ex:der1", "ex:der2"}


def test_a_file_that_does_not_parse_exits_2(tmp_path):
    broken = tmp_path / "broken.provn"
    broken.write_text("document\n entity(\nendDocument\n")
    result = run("validate", str(broken), str(VALID))
    assert result.exit_code == 2
    assert "broken.provn" in result.output and "VALID" in result.output
    assert run("validate", str(tmp_path / "absent.json")).exit_code == 2


def test_times_can_be_left_out(tmp_path):
    early = tmp_path / "early.provn"
    early.write_text("document\nprefix ex <http://example.org/>\n"
                     "activity(ex:a, 2024-01-01T10:00:00, 2024-01-01T11:00:00)\n"
                     "used(ex:u; ex:a, ex:e, 2024-01-01T09:00:00)\nendDocument\n")
    result = run("validate", str(early))
    assert result.exit_code == 1 and "by the times given" in result.output
    assert run("validate", "--no-times", str(early)).exit_code == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_exports_of_a_store(store_path, tmp_path):
    experiment(tmp_path / "work")
    for args in ([], ["--run", "exp-mlp-a"], ["--model", "mlp-b"], ["--dataflow", "exp"]):
        result = run("--store", str(store_path), "validate", *args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("VALID export of")
    result = run("--store", str(store_path), "validate", "--run", "exp-mlp-a", "--format",
                 "json")
    assert json.loads(result.output)[0]["valid"] is True


def test_usage_errors(store_path):
    assert run("validate", str(VALID), "--run", "x").exit_code == 2
    assert run("validate", "--run", "x", "--model", "y").exit_code == 2
    result = run("--store", str(store_path), "validate", "--run", "nope")
    assert result.exit_code == 1 and "error:" in result.output
