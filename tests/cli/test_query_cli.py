"""``dlprov query q1 … q12`` through click's runner: output formats, --sql, exit codes."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.query.questions import QUESTIONS

LEARNING_RATES = {"mlp-slow": 0.001, "mlp-fast": 0.01}
TEST_ACCURACY = {"mlp-slow": 0.9, "mlp-fast": 0.8}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def models(store_path, tmp_path) -> dict[str, str]:
    """Two candidates with a preprocessing chain; model name -> model id."""
    ids = {}
    for name, learning_rate in LEARNING_RATES.items():
        with dlprov.run("mnist", user="ada", email="ada@lab.example", organization="Lab",
                        capture_environment=False) as run:
            with run.task("loaddata") as load:
                load.input("iinputdataset", dataset_name="mnist")
                load.output("oloaddata", dataset_dir=tmp_path / f"{name}-raw.npz")
            with run.task("normalizedata", depends_on=load) as norm:
                norm.output("onormalizedata", dataset_dir=tmp_path / f"{name}-norm.npz")
            with run.task("splitdata", depends_on=norm) as split:
                split.output("otrainset", dataset_dir=tmp_path / f"{name}-train.npz")
                split.output("otestset", dataset_dir=tmp_path / f"{name}-test.npz")
            with run.task("train", depends_on=split, uses=["otrainset"]) as train:
                train.input("itrain", optimizer_name="adam", learning_rate=learning_rate,
                            batch_size=32)
                train.output("otrain", epoch=1, accuracy=0.5, loss=0.5, elapsed_time=1.5)
                path = tmp_path / f"{name}.pt"
                path.write_bytes(b"weights")
                ids[name] = train.model(path, name=name)
            with run.task("test", depends_on=[split, train]) as test:
                test.output("otest", loss=1 - TEST_ACCURACY[name], accuracy=TEST_ACCURACY[name])
    return ids


def test_q1_as_json_csv_and_table(runner, models):
    result = runner.invoke(cli, ["query", "q1", "--learning-rate", "0.001", "--format", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["model_id"], row["model_name"]) == (models["mlp-slow"], "mlp-slow")
    result = runner.invoke(cli, ["query", "q1", "--learning-rate", "0.01", "--format", "csv",
                                 "--dataflow", "mnist"])
    header, *rows = list(csv.reader(io.StringIO(result.output)))
    assert header[:2] == ["model_id", "model_name"] and [r[1] for r in rows] == ["mlp-fast"]
    result = runner.invoke(cli, ["query", "q4"])
    assert result.exit_code == 0 and "mlp-slow" in result.output and "mlp-fast" not in result.output


@pytest.mark.parametrize("args", [["q2"], ["q2", "--learning-rate", "0.01", "--batch-size", "32"],
                                  ["q2", "--model", "mlp-fast"], ["q3"], ["q4"], ["q5"],
                                  ["q6", "--training-set", "mnist"]])
def test_development_questions_run(runner, models, args):
    result = runner.invoke(cli, ["query", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)


@pytest.mark.parametrize("question", ["q7", "q8", "q9", "q10", "q11", "q12"])
def test_model_questions_take_a_name_or_an_id(runner, models, question):
    by_name = runner.invoke(cli, ["query", question, "--model", "mlp-fast", "--format", "json"])
    assert by_name.exit_code == 0, by_name.output
    by_id = runner.invoke(cli, ["query", question, "-m", models["mlp-fast"], "--format", "json"])
    assert json.loads(by_name.output) == json.loads(by_id.output) != []


def test_q12_lists_the_chain_in_order(runner, models):
    result = runner.invoke(cli, ["query", "q12", "--model", "mlp-slow", "--format", "json"])
    steps = [r["transformation"] for r in json.loads(result.output)]
    assert list(dict.fromkeys(steps)) == ["loaddata", "normalizedata", "splitdata", "train"]


def test_q9_names_the_agent(runner, models):
    [row] = json.loads(runner.invoke(cli, ["query", "q9", "-m", "mlp-slow", "--format", "json"])
                       .output)
    assert (row["username"], row["email"], row["organization"]) == (
        "ada", "ada@lab.example", "Lab")


def test_sql_prints_the_statement_and_its_parameters(runner, models):
    result = runner.invoke(cli, ["query", "q10", "--model", "mlp-slow", "--sql"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("-- Q10: Find the process that led to a given model")
    assert "WITH RECURSIVE" in result.output and ":train_task_id" in result.output
    assert "-- parameter train_task_id = " in result.output
    result = runner.invoke(cli, ["query", "q1", "--learning-rate", "0.001", "--sql"])
    assert "-- parameter learning_rate = 0.001" in result.output
    assert "mlp-slow" not in result.output


def test_errors_are_one_line_with_exit_codes(runner, models):
    result = runner.invoke(cli, ["query", "q7", "--model", "mlp-none"])
    assert result.exit_code == 1
    assert "error: no model 'mlp-none' in dataflow 'mnist'" in result.output
    assert "mlp-fast, mlp-slow" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["query", "q7"])
    assert result.exit_code == 2 and "Missing option '--model'" in result.output
    result = runner.invoke(cli, ["query", "q1"])
    assert result.exit_code == 2 and "Missing option '--learning-rate'" in result.output
    result = runner.invoke(cli, ["query", "q3", "--dataflow", "nope"])
    assert result.exit_code == 1 and "no dataflow 'nope'" in result.output


def test_help_lists_the_questions_in_order(runner):
    result = runner.invoke(cli, ["query", "--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.strip().startswith("q")]
    assert listed == list(QUESTIONS)
    for question in QUESTIONS:
        help_text = runner.invoke(cli, ["query", question, "--help"])
        assert help_text.exit_code == 0 and "--sql" in help_text.output
