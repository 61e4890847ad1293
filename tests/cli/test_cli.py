"""The command line, through click's runner: output and exit codes, error paths included."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def filled(store_path):
    for learning_rate in (0.1, 0.01):
        with dlprov.run("mnist", exec_tag=f"mnist-lr{learning_rate}") as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="sgd", learning_rate=learning_rate)
                train.output("otrain", epoch=1, accuracy=learning_rate * 5)
            with run.task("test", depends_on=train) as test:
                test.output("otest", accuracy=0.5)
    try:
        with dlprov.run("mnist", exec_tag="mnist-broken") as run:
            with run.task("train"):
                raise ValueError("diverged")
    except ValueError:
        pass
    return store_path


def test_runs_lists_executions_with_status_and_counts(runner, filled):
    result = runner.invoke(cli, ["runs", "--format", "json"])
    assert result.exit_code == 0, result.output
    runs = {r["exec_tag"]: r for r in json.loads(result.output)}
    assert set(runs) == {"mnist-lr0.1", "mnist-lr0.01", "mnist-broken"}
    assert runs["mnist-lr0.1"]["status"] == "finished" and runs["mnist-lr0.1"]["tasks"] == 2
    assert runs["mnist-broken"]["status"] == "failed" and runs["mnist-broken"]["failed_tasks"] == 1


def test_tasks_of_a_run_show_dependencies_and_errors(runner, filled):
    result = runner.invoke(cli, ["tasks", "mnist-lr0.1", "--format", "json"])
    assert result.exit_code == 0, result.output
    train, test = json.loads(result.output)
    assert (train["transformation"], test["transformation"]) == ("train", "test")
    assert test["depends_on"] == str(train["identifier"])  # the client's id, not the row id
    broken = json.loads(runner.invoke(cli, ["tasks", "mnist-broken", "--format", "json"]).output)
    assert broken[0]["error"] == "ValueError: diverged"


def test_sql_formats(runner, filled):
    query = "SELECT learning_rate, optimizer_name FROM itrain ORDER BY learning_rate"
    as_csv = runner.invoke(cli, ["sql", "--format", "csv", query])
    assert as_csv.exit_code == 0
    assert list(csv.reader(io.StringIO(as_csv.output))) == [
        ["learning_rate", "optimizer_name"], ["0.01", "sgd"], ["0.1", "sgd"]]
    as_json = runner.invoke(cli, ["sql", "--format", "json", query])
    assert json.loads(as_json.output) == [{"learning_rate": 0.01, "optimizer_name": "sgd"},
                                          {"learning_rate": 0.1, "optimizer_name": "sgd"}]
    as_table = runner.invoke(cli, ["sql", query])
    assert "learning_rate" in as_table.output.splitlines()[0]


def test_sql_refuses_writes_with_exit_code_1(runner, filled):
    result = runner.invoke(cli, ["sql", "DELETE FROM task"])
    assert result.exit_code == 1
    assert "read-only" in result.output
    assert "Traceback" not in result.output


def test_schema_shows_sets_and_task_columns(runner, filled):
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert "dataflow mnist" in result.output
    assert "train: itrain -> otrain" in result.output
    assert "test_task_id" in result.output  # otrain is consumed by test


def test_unknown_run_and_store_errors(runner, filled, tmp_path):
    result = runner.invoke(cli, ["tasks", "no-such-run"])
    assert result.exit_code == 1 and "no execution 'no-such-run'" in result.output
    result = runner.invoke(cli, ["--store", str(tmp_path / "absent.db"), "runs"])
    assert result.exit_code == 1 and "no store" in result.output


@pytest.mark.parametrize("command", ["runs", "tasks", "sql", "schema", "demo", "query"])
def test_every_command_has_help(runner, command):
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
