"""A model name unique in the store is found in whichever dataflow holds it, by every command;
one that names models in several dataflows lists them with their dataflows."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.errors import QueryError
from dlprov.query.models import find_model


def train(df_tag: str, model_name: str, tmp_path, accuracy: float) -> None:
    with dlprov.run(df_tag) as run:
        with run.task("train") as task:
            task.input("itrain", learning_rate=0.01)
            task.output("otrain", epoch=1, loss=0.3, accuracy=accuracy)
            path = tmp_path / f"{model_name}.pt"
            path.write_bytes(model_name.encode())
            task.model(path, name=model_name)
        with run.task("test", depends_on=task) as test:
            test.output("otest", loss=0.3, accuracy=accuracy)


@pytest.fixture
def two_dataflows(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    train("older", "resnet", tmp_path, 0.8)
    train("older", "shared", tmp_path, 0.7)
    train("newer", "mlp", tmp_path, 0.9)
    train("newer", "shared", tmp_path, 0.6)
    return store_path


def test_a_model_of_an_older_dataflow_is_found_without_naming_it(two_dataflows, tmp_path):
    assert find_model("resnet").exec_tag.startswith("older")
    runner = CliRunner()
    answer = runner.invoke(cli, ["query", "q8", "--model", "resnet", "--format", "json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)
    exported = runner.invoke(cli, ["export", "--model", "resnet", "-o", str(tmp_path / "m.json")])
    assert exported.exit_code == 0, exported.output
    packaged = runner.invoke(cli, ["package", "--model", "resnet", "-o", str(tmp_path / "m.zip")])
    assert packaged.exit_code == 0, packaged.output
    assert runner.invoke(cli, ["verify", str(tmp_path / "m.zip")]).exit_code == 0


def test_a_name_in_two_dataflows_lists_both(two_dataflows):
    with pytest.raises(QueryError, match=r"2 dataflows.*'newer'.*'older'|2 dataflows.*'older'.*'newer'"):
        find_model("shared")
    answer = CliRunner().invoke(cli, ["query", "q7", "--model", "shared"])
    assert answer.exit_code == 1
    assert "give --dataflow" in answer.output
    assert find_model("shared", dataflow="older").exec_tag.startswith("older")
