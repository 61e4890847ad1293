"""Naming a model: stores without ``trained_model`` rows (the dfa API, plain otrainedmodel
elements), ambiguous names, and dataflows that lack the paper's sets."""
from __future__ import annotations

import pytest

import dlprov
import dlprov.query as q
from dlprov.dfa import Dataflow, end_execution
from dlprov.errors import NotFound, QueryError
from dlprov.model.spec import AttributeType
from dlprov.store.store import Store
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


def test_q2_names_each_trainings_models_from_either_source(store_path, tmp_path):
    """Q2 finds each training's models by index: its trained_model rows where it has some
    (two here), its otrainedmodel elements where it has none, and NULL for a training that
    recorded no model; a training's other otrainedmodel elements do not add rows."""
    plain_candidates([0.1])  # an otrainedmodel element only
    with dlprov.run("plain") as run:
        with run.task("train") as twins:
            twins.input("itrain", optimizer_name="sgd", learning_rate=0.5)
            twins.output("otrain", epoch=1, accuracy=0.5, elapsed_time=4.0)
            twins.model(tmp_path / "twin-b.pt", name="twin-b")
            twins.model(tmp_path / "twin-a.pt", name="twin-a")
            twins.output("otrainedmodel", model_name="an element", model_dir="x.pt")
        with run.task("train") as bare:
            bare.input("itrain", optimizer_name="sgd", learning_rate=0.7)
            bare.output("otrain", epoch=1, accuracy=0.3, elapsed_time=1.0)
            bare.output("otrain", epoch=2, accuracy=0.4, elapsed_time=3.0)
    found = [(r["learning_rate"], r["model_name"], r["epochs"], r["avg_epoch_time"])
             for r in q.q2().records()]
    assert found == [(0.1, "m-0.1", 1, 2.0), (0.5, "twin-a", 1, 4.0), (0.5, "twin-b", 1, 4.0),
                     (0.7, None, 2, 2.0)]
    ids = {r["model_name"]: r["model_id"] for r in q.q2().records()}
    assert ids["m-0.1"] is None and ids["twin-a"] and ids["twin-a"] != ids["twin-b"]
    # a model names its training: the training's rows, each of its models
    assert [(r["model_name"], r["learning_rate"]) for r in q.q2(model="twin-b").records()] == [
        ("twin-a", 0.5), ("twin-b", 0.5)]


def test_task_model_records_into_a_set_that_took_model_dir_as_text(store_path, sql, tmp_path):
    """model_dir is a file attribute when task.model() records the set's first element; where
    a plain element came first (a string: a text attribute), task.model() gives it the path
    as text, which that attribute takes (a Path it would refuse)."""
    plain_candidates([0.1])
    with dlprov.run("plain") as run:
        with run.task("train") as train:
            model_id = train.model(tmp_path / "later.pt", name="later")
        assert run.recorder.rejected == 0
    assert sql("SELECT model_dir FROM plain__otrainedmodel WHERE model_id = ?",
               model_id) == [(str(tmp_path / "later.pt"),)]
    with dlprov.run("fresh") as run:
        with run.task("train") as train:
            train.model(tmp_path / "first.pt")
    assert Store(store_path).load_spec("fresh").sets["otrainedmodel"] \
        .attributes["model_dir"].type is AttributeType.FILE
