"""The renderers every listing uses: tables that fit, field/value lists, JSON that nests,
integers that stay integers; and a command line that imports only what it needs."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.cli.output import cut, render, render_records

LONG = "digits-2026-12-02T10:43:16-" + "x" * 40 + "-96ed72"


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_table_fits_the_width_cutting_long_values_with_an_ellipsis():
    rows = [[i, LONG, "finished", 0.5 * i] for i in range(3)]
    text = render(["id", "exec_tag", "status", "duration_s"], rows, width=50)
    assert all(len(line) <= 50 for line in lines_of(text)), text
    assert "…" in text and LONG not in text
    assert lines_of(text)[0].split() == ["id", "exec_tag", "status", "duration_s"]
    # a value without spaces keeps both ends: an id's unique tail stays visible
    assert "-96ed72" in lines_of(text)[2]
    whole = render(["id", "exec_tag", "status", "duration_s"], rows, wide=True)
    assert LONG in whole and "…" not in whole


def test_columns_that_cannot_fit_are_dropped_and_named():
    columns = [f"column_{i}" for i in range(12)]
    text = render(columns, [list(range(12)), list(range(12))], width=60)
    assert all(len(line) <= 60 for line in lines_of(text)), text
    shown = lines_of(text)[0].split()
    assert shown == columns[:len(shown)] and len(shown) < 12
    assert lines_of(text)[-1].startswith(f"(+{12 - len(shown)} columns: column_{len(shown)}, ")
    assert lines_of(text)[-1].endswith("; --wide shows them)")
    assert render(columns, [list(range(12))] * 2, width=100).splitlines()[-1] == (
        "(+2 columns: column_10, column_11; --wide shows them)")


def test_cut_marks_where_text_was_cut():
    assert cut("short", 10) == "short"
    assert cut("a path/that/is/long/model.pt", 12) == "a path/that…"  # prose: at the end
    assert cut("/tmp/out/mlp-adam/model.pt", 12) == "/tmp/…del.pt"  # one token: the middle
    assert len(cut("x" * 30, 9)) == 9


def test_one_record_prints_as_a_field_value_list_unless_a_table_is_asked_for():
    columns = ["model_id", "model_name", "learning_rate", "num_epochs"]
    row = ["53a0d2cb", "mlp-adam", 0.01, 8.0]
    text = render(columns, [row], width=80)
    assert lines_of(text) == ["model_id       53a0d2cb", "model_name     mlp-adam",
                              "learning_rate  0.01", "num_epochs     8"]
    table = render(columns, [row], width=80, layout="table")
    assert lines_of(table)[0].split() == columns
    assert render(["n"], [[3]]).splitlines() == ["n", "-", "3"]  # a narrow answer stays a table


def test_field_value_list_cuts_values_to_the_width():
    text = render(["a", "b", "c", "packages"], [[1, 2, 3, {"torch": "2.13.0", "numpy": "2.4"}]],
                  width=30)
    assert all(len(line) <= 30 for line in lines_of(text)), text
    assert lines_of(text)[-1].startswith('packages  {"torch": ') and text.endswith("…")


def test_whole_numbers_print_as_integers_in_every_format_only_when_the_whole_column_is():
    columns, rows = ["epoch", "loss", "size"], [[0.0, 1.0, Decimal("7")], [1.0, 0.5, None]]
    assert list(csv.reader(io.StringIO(render(columns, rows, "csv")))) == [
        ["epoch", "loss", "size"], ["0", "1.0", "7"], ["1", "0.5", ""]]
    assert json.loads(render(columns, rows, "json")) == [
        {"epoch": 0, "loss": 1.0, "size": 7}, {"epoch": 1, "loss": 0.5, "size": None}]
    assert type(json.loads(render(columns, rows, "json"))[0]["epoch"]) is int
    table = lines_of(render(columns, rows, layout="table"))
    assert table[2].split() == ["0", "1", "7"] and table[3].split() == ["1", "0.5"]


def test_json_nests_json_text_but_leaves_other_text_alone():
    rows = [['["gpu0"]', '{"torch": "2.13"}', "[not json"], ["[]", None, "{}"]]
    records = json.loads(render(["gpus", "packages", "note"], rows, "json"))
    assert records[0]["gpus"] == ["gpu0"] and records[1]["gpus"] == []
    assert records[0]["packages"] == {"torch": "2.13"} and records[1]["packages"] is None
    assert records[0]["note"] == "[not json"  # one value of the column is not JSON: all text
    # nested values (PostgreSQL's JSON) print as JSON text in tables and CSV
    as_csv = render(["gpus"], [[["a", "b"]]], "csv")
    assert as_csv.splitlines()[1] == '"[""a"", ""b""]"'


def test_unknown_format_and_layout_are_refused():
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        render(["a"], [], "xml")
    with pytest.raises(ValueError, match="unknown layout"):
        render(["a"], [], layout="grid")
    assert render_records([], ["a", "b"]).splitlines()[-1] == "(no rows)"


@pytest.fixture
def filled(store_path):
    for i, learning_rate in enumerate((0.1, 0.01)):
        with dlprov.run("mnist", exec_tag=f"mnist-{'long-' * 12}{i}") as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="sgd", learning_rate=learning_rate)
                for epoch in (1, 2):
                    train.output("otrain", epoch=epoch, accuracy=learning_rate * epoch)
    return store_path


def test_commands_fit_columns_and_wide_shows_everything(filled):
    runner = CliRunner()
    narrow = runner.invoke(cli, ["runs"], env={"COLUMNS": "60"})
    assert narrow.exit_code == 0, narrow.output
    assert all(len(line) <= 60 for line in lines_of(narrow.output)), narrow.output
    assert "…" in narrow.output and "-long-0 " in narrow.output
    wide = runner.invoke(cli, ["runs", "--wide"], env={"COLUMNS": "60"})
    assert wide.exit_code == 0, wide.output
    assert f"mnist-{'long-' * 12}0" in wide.output


def test_csv_of_a_query_prints_integer_epochs(filled):
    result = CliRunner().invoke(cli, ["sql", "--format", "csv",
                                      "SELECT epoch, accuracy FROM otrain ORDER BY 2"])
    assert result.exit_code == 0, result.output
    assert [row[0] for row in csv.reader(io.StringIO(result.output))] == [
        "epoch", "1", "2", "1", "2"]


def test_the_command_line_does_not_import_what_a_listing_does_not_need():
    heavy = ["matplotlib", "prov", "ladybug", "fastapi", "networkx", "cryptography",
             "dlprov.prov", "dlprov.graph", "dlprov.server"]
    code = ("import sys, dlprov.cli.main; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"
    plain = subprocess.run([sys.executable, "-c", "import sys, dlprov; "
                            "print('sqlalchemy' in sys.modules, dlprov.run.__module__)"],
                           capture_output=True, text=True, check=True)
    assert plain.stdout.split() == ["False", "dlprov.capture.run"]
