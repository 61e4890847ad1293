"""The original DLProv Cypher queries on the ladybug graph, checked against SQL on the store."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.graph import cypher, refresh, translate
from dlprov.prov import document, serialize
from tests.prov.workflows import capture, experiment

LOSS = "MATCH (b:Entity)-[:wasGeneratedBy]->(c:Activity) RETURN avg(b.`dlprov:loss`)"
ELAPSED = ("MATCH (b:Entity)-[:wasGeneratedBy]->(c:Activity) "
           "RETURN avg(toFloat(b.`dlprov:elapsed_time`)) AS avg_elapsed_time")
SHORTEST = ("MATCH p = shortestPath((a:Entity {`dlprov:ds_tag`:'otest'})-[*]-"
            "(b:Entity {`dlprov:ds_tag`:'%s'})) RETURN p")


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    return experiment(tmp_path)


def _mean(sql, set_tag: str, column: str) -> float:
    values = [row[0] for row in sql(f'SELECT "{column}" FROM "exp__{set_tag}"')]
    return values


def test_average_loss_and_elapsed_time_match_sql(filled, sql) -> None:
    losses = _mean(sql, "otrain", "loss") + _mean(sql, "otest", "loss")
    assert cypher(LOSS).rows[0][0] == pytest.approx(sum(losses) / len(losses))
    elapsed = _mean(sql, "otrain", "elapsed_time")
    result = cypher(ELAPSED)
    assert result.columns == ["avg_elapsed_time"]
    assert result.rows[0][0] == pytest.approx(sum(elapsed) / len(elapsed))


def test_shortest_path_from_otest_back_to_loaded_data(filled) -> None:
    for target in ("oloaddata", "iinputdataset"):
        paths = [row[0] for row in cypher(SHORTEST % target).rows]
        assert paths and all(p.startswith("(dlprov:exp/otest/") for p in paths)
        assert all(f"(dlprov:exp/{target}/" in p for p in paths)
    test_step = ("MATCH p = shortestPath((a:Entity {`dlprov:ds_tag`:'otest'})-[:wasGeneratedBy]-"
                 "(b:Activity {`dlprov:dt_tag`:'test'})) RETURN p")
    assert len(cypher(test_step).rows) == 2  # one test per run


def test_derivation_path_within_one_run(filled) -> None:
    query = ("MATCH p = (a:Entity {`dlprov:ds_tag`:'otest'})-[:wasDerivedFrom*]->"
             "(b:Entity {`dlprov:ds_tag`:'oloaddata'}) RETURN p")
    paths = [row[0] for row in cypher(query, run="exp-mlp-b").rows]
    # otest <- otestset <- onormalize <- oloaddata, and through the trained model and trainset
    assert sorted(paths) == [
        "(dlprov:exp/otest/2)-[:wasDerivedFrom]->(dlprov:exp/otestset/2)"
        "-[:wasDerivedFrom]->(dlprov:exp/onormalize/2)-[:wasDerivedFrom]->(dlprov:exp/oloaddata/2)",
        "(dlprov:exp/otest/2)-[:wasDerivedFrom]->(dlprov:exp/otrainedmodel/2)"
        "-[:wasDerivedFrom]->(dlprov:exp/otrainset/2)-[:wasDerivedFrom]->"
        "(dlprov:exp/onormalize/2)-[:wasDerivedFrom]->(dlprov:exp/oloaddata/2)"]


def test_translate_neo4j_forms() -> None:
    assert translate("MATCH p = shortestPath((a)-[*]-(b)) RETURN p") == \
        "MATCH p = (a)-[* SHORTEST 1..30]-(b) RETURN p"
    assert translate("MATCH (a)-[:used*]->(b) RETURN toInteger(a.x)") == \
        "MATCH (a)-[:used* TRAIL 1..30]->(b) RETURN to_int64(a.x)"
    assert translate("MATCH (a)-[*1..3]-(b) RETURN a") == "MATCH (a)-[*1..3]-(b) RETURN a"


def test_graph_cache_is_incremental_and_rebuilt_on_change(filled, store_path, sql,
                                                          tmp_path) -> None:
    db = refresh()
    marks = json.loads((db.parent / "watermark.json").read_text())
    assert set(marks) == {"exp-mlp-a", "exp-mlp-b"}
    count = "MATCH (a:Activity) WHERE a.`dlprov:dt_tag` IS NOT NULL RETURN count(*)"
    assert cypher(count).rows == [(16,)]
    capture(tmp_path, "mlp-c", ("clean",), 0.1, epochs=1)
    assert cypher(count).rows == [(16 + 7,)]
    marks = json.loads((db.parent / "watermark.json").read_text())
    assert set(marks) == {"exp-mlp-a", "exp-mlp-b", "exp-mlp-c"}
    sql("UPDATE dataflow_execution SET status = 'failed' WHERE tag = 'exp-mlp-c'")
    assert cypher("MATCH (a:Activity) WHERE a.`dlprov:status` = 'failed' "
                  "RETURN a.`dlprov:exec_tag`").rows == [("exp-mlp-c",)]


def test_model_scope_and_prov_json_file(filled, tmp_path) -> None:
    name = "mlp-b"
    query = "MATCH (t:Activity) WHERE t.`dlprov:dt_tag` IS NOT NULL RETURN t.`dlprov:dt_tag`"
    tags = {row[0] for row in cypher(query, model=name).rows}
    assert tags == {"loaddata", "normalize", "splitdata", "train", "test"}
    path = tmp_path / "run.json"
    path.write_bytes(serialize(document(run="exp-mlp-a"), "json"))
    tags = {row[0] for row in cypher(query, source=path).rows}
    assert tags == {"audit", "loaddata", "clean", "normalize", "augment", "splitdata", "train",
                    "test", "report"}


def test_cli_cypher_formats_and_errors(filled) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["graph", "cypher", "--format", "json", ELAPSED])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["avg_elapsed_time"] == pytest.approx(0.25)
    result = runner.invoke(cli, ["graph", "cypher", "--run", "exp-mlp-a", "--format", "csv",
                                 "MATCH (e:Entity {`dlprov:ds_tag`:'otest'}) RETURN count(*)"])
    assert result.exit_code == 0 and result.output.splitlines()[1] == "1"
    result = runner.invoke(cli, ["graph", "cypher", "MATCH (n:Nope) RETURN n"])
    assert result.exit_code == 1 and "Cypher failed" in result.output
    result = runner.invoke(cli, ["graph", "cypher", "--run", "x", "--model", "y", "RETURN 1"])
    assert result.exit_code == 1 and "one of" in result.output


def test_cypher_over_a_model_package_alone(store_path, tmp_path):
    """`--from` takes a package written by `dlprov package`: its PROV-JSON member."""
    from click.testing import CliRunner

    from dlprov.cli.main import cli
    from dlprov.prov.package import package_model
    from tests.prov.workflows import experiment

    model = experiment(tmp_path)["mlp-a"].model_id
    target = package_model(model, tmp_path / "model.zip")
    store_path.unlink()
    result = CliRunner().invoke(cli, ["graph", "cypher", "--from", str(target), "--format", "json",
                                      "MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' "
                                      "RETURN count(e) AS n"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["n"] >= 1


def test_a_runaway_path_query_is_stopped_with_advice(store_path, tmp_path):
    from dlprov.errors import QueryError
    from dlprov.graph.queries import cypher
    from tests.prov.workflows import experiment

    experiment(tmp_path)
    everything = ("MATCH p = (a:Entity)-[*]-(b:Entity) RETURN count(p)")  # all trails: huge
    with pytest.raises(QueryError, match="bound the path"):
        cypher(everything, timeout_s=0.5)
