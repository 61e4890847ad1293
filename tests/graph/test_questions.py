"""Q7–Q12 in Cypher (dlprov.graph.ask) give the answers of their SQL twins (dlprov.query.ask)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov import query
from dlprov.cli.main import cli
from dlprov.errors import NotFound, QueryError
from dlprov.graph import ask
from dlprov.graph.questions import prepare
from tests.prov.workflows import capture

HYPERPARAMETERS = ("optimizer_name", "learning_rate", "batch_size", "layers")
MODELS = ("mlp-a", "mlp-b", "mlp-c")


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    """Three candidates; mlp-a has a three-step preprocessing chain and is tested twice."""
    return {rec.name: rec for rec in (
        capture(tmp_path, "mlp-a", ("clean", "normalize", "augment"), 0.001, tests=2),
        capture(tmp_path, "mlp-b", ("normalize",), 0.01, epochs=2),
        capture(tmp_path, "mlp-c", (), 0.1, epochs=1),
    )}


def _records(result) -> list[dict]:
    return [dict(zip(result.columns, row)) for row in result.rows]


def _keys(question: str, result) -> object:
    rows = _records(result)
    if question == "q7":
        return [{name: row[name] for name in HYPERPARAMETERS} for row in rows]
    if question == "q8":
        return {(row["hostname"], row["os"], row["python_version"]) for row in rows}
    if question == "q9":
        return {(row["username"], row["email"]) for row in rows}
    if question == "q10":
        return {(row["transformation"], row["task_id"]) for row in rows}
    if question == "q11":
        return {(row["set_tag"], row["element_id"]) for row in rows}
    ordered = []  # q12: the transformations, step by step
    for row in rows:
        if (row["transformation"], row["task_id"]) not in ordered:
            ordered.append((row["transformation"], row["task_id"]))
    return [name for name, _ in ordered]


@pytest.mark.parametrize("question", ["q7", "q8", "q9", "q10", "q11", "q12"])
def test_cypher_answers_like_sql(filled, question: str) -> None:
    for name in MODELS:
        expected = _keys(question, query.ask(question, model=name))
        assert expected, (question, name)
        assert _keys(question, ask(question, name)) == expected, (question, name)


def test_answers_follow_the_capture(filled) -> None:
    rec = filled["mlp-a"]
    assert _keys("q12", ask("q12", filled["mlp-a"].model_id)) == [
        "loaddata", "clean", "normalize", "augment", "splitdata", "train"]
    trace = ask("q10", "mlp-a")
    assert sorted(_keys("q10", trace)) == sorted(
        {(s.transformation, task_id) for s, task_id in zip(rec.steps, range(1, 99))
         if s.transformation not in rec.outside})
    assert [r["transformation"] for r in _records(trace)].count("test") == 2
    assert _records(ask("q7", "mlp-b"))[0]["learning_rate"] == 0.01
    assert _keys("q9", ask("q9", "mlp-c")) == {("user-mlp-c", "mlp-c@lab.example")}


def test_prepare_and_errors(filled) -> None:
    text, params = prepare("q10", "mlp-a")
    assert "ACYCLIC" in text and params == {"model_id": filled["mlp-a"].model_id}
    with pytest.raises(QueryError, match="q7, q8"):
        ask("q1", "mlp-a")
    with pytest.raises(NotFound):
        ask("q7", "no-such-model")


def test_cli_engine(filled, store_path: Path) -> None:
    runner = CliRunner()
    for engine in ("sql", "cypher"):
        result = runner.invoke(cli, ["--store", str(store_path), "query", "q12", "-m", "mlp-b",
                                     "--engine", engine, "--format", "csv"])
        assert result.exit_code == 0, result.output
        assert "normalize" in result.output
    shown = runner.invoke(cli, ["--store", str(store_path), "query", "q10", "-m", "mlp-b",
                                "--engine", "cypher", "--sql"])
    assert shown.exit_code == 0 and "ACYCLIC" in shown.output
    bad = runner.invoke(cli, ["--store", str(store_path), "query", "q7", "-m", "mlp-b",
                              "--engine", "neo4j"])
    assert bad.exit_code == 2
