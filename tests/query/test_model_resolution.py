"""Naming a model: stores without ``trained_model`` rows (the dfa API, plain otrainedmodel
elements), ambiguous names, and dataflows that lack the paper's sets."""
from __future__ import annotations

import pytest

import dlprov
import dlprov.query as q
from dlprov.dfa import Dataflow, end_execution
from dlprov.errors import NotFound, QueryError
from tests.capture.test_dfa import run_predefined_workflow


@pytest.fixture(autouse=True)
def _end_executions():
    yield
    end_execution()


def plain_candidates(learning_rates: list[float]) -> None:
    """Runs that record their model as an otrainedmodel element only (no task.model())."""
    for learning_rate in learning_rates:
        with dlprov.run("plain") as run:
            with run.task("splitdata") as split:
                split.output("otrainset", trainsetx="train_x.npy")
            with run.task("train", depends_on=split) as train:
                train.input("itrain", optimizer_name="adam", learning_rate=learning_rate)
                train.output("otrain", epoch=1, accuracy=1 - learning_rate, elapsed_time=2.0)
                train.output("otrainedmodel", model_name=f"m-{learning_rate}",
                             model_dir=f"models/m-{learning_rate}.pt")
            with run.task("test", depends_on=train) as test:
                test.output("otest", loss=learning_rate, accuracy=1 - learning_rate)


def test_otrainedmodel_elements_stand_in_for_trained_models(store_path, sql):
    plain_candidates([0.1, 0.01])
    assert sql("SELECT count(*) FROM trained_model") == [(0,)]
    [(train_task_id,)] = sql("SELECT train_task_id FROM plain__itrain WHERE learning_rate = 0.01")
    [row] = q.q1(0.01).records()
    assert (row["model_id"], row["model_name"], row["model_path"], row["train_task_id"]) == (
        None, "m-0.01", "models/m-0.01.pt", train_task_id)
    for name in ("m-0.01", "models/m-0.01.pt", str(store_path.parent / "models/m-0.01.pt")):
        assert q.q7(name).records()[0]["train_task_id"] == train_task_id
    assert q.q4().records()[0]["model_name"] == "m-0.01"
    assert {r["transformation"] for r in q.q10("m-0.01").records()} == {
        "splitdata", "train", "test"}


def test_the_dfa_predefined_workflow_answers_by_name_and_path(store_path, sql):
    df = Dataflow("alexnet", predefined=True)
    df.save()
    tasks = run_predefined_workflow(df, "alexnet-1")
    end_execution("alexnet-1")
    ids = dict(sql("SELECT identifier, id FROM task WHERE df_exec = 'alexnet-1'"))
    [hyper] = q.q7("trained_model").records()
    assert (hyper["train_task_id"], hyper["optimizer_name"], hyper["learning_rate"]) == (
        ids[4], "adam", 0.002)
    # two file attributes: both files of the training set
    assert {(r["set_tag"], r["files"]) for r in q.q11("/models/trained.keras").records()} == {
        ("otrainset", "/data/x_train.npy /data/y_train.npy"),
        ("ovalset", "/data/x_val.npy /data/y_val.npy")}
    steps = q.q12("trained_model").records()
    assert [r["transformation"] for r in steps if r["role"] == "produced"][:2] == [
        "loaddata", "applyfilter"]
    assert len(tasks) == len({r["task_id"] for r in q.q10("trained_model").records()})

    run_predefined_workflow(df, "alexnet-2")
    end_execution("alexnet-2")
    for name in ("trained_model", "/models/trained.keras"):
        with pytest.raises(QueryError, match=r"ambiguous.*alexnet-1.*alexnet-2|"
                                             r"ambiguous.*alexnet-2.*alexnet-1"):
            q.q9(name)


def test_a_name_shared_by_two_trainings_is_ambiguous_and_an_id_is_not(store_path, tmp_path):
    ids = []
    for attempt in (1, 2):
        with dlprov.run("retrain") as run:
            with run.task("train") as train:
                train.input("itrain", learning_rate=0.1 * attempt)
                path = tmp_path / f"attempt{attempt}.pt"
                path.write_bytes(b"weights")
                ids.append(train.model(path, name="resnet :v1"))
    with pytest.raises(QueryError, match=f"'resnet :v1' is ambiguous.*{ids[0]}.*{ids[1]}|"
                                         f"'resnet :v1' is ambiguous.*{ids[1]}.*{ids[0]}"):
        q.q7("resnet :v1")
    assert q.q7(ids[1]).records()[0]["learning_rate"] == pytest.approx(0.2)
    assert q.find_model(ids[0]).name == "resnet :v1"
    # the name lands in a comment of the printed SQL, where it is no bind parameter
    statement = q.prepare("q7", model=ids[0])
    assert "'resnet \\:v1'" in str(statement)
    assert dlprov.sql(str(statement), params=statement.params).rows == statement.run().rows


def test_a_dataflow_without_the_papers_sets_is_told_what_is_missing(store_path):
    with dlprov.run("bare") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1)
            train.output("otrain", epoch=1, loss=0.5)
    with pytest.raises(QueryError, match="Q4 needs set 'otest'.*it has: itrain, otrain"):
        q.q4()
    with pytest.raises(QueryError, match="Q3 needs attribute.*accuracy of set 'otrain'"):
        q.q3()
    with pytest.raises(NotFound, match="no model 'x'.*no trained model recorded"):
        q.q7("x")
