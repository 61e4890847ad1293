"""Set, attribute and transformation names are case-insensitive everywhere in capture, as in the
original DfAnalyzer: the paper's own spelling (``iTrain``, ``oTrain``, ``oTest``) and the
stored one (``itrain``, ...) are one set, on SQLite, PostgreSQL and through the server."""
from __future__ import annotations

from datetime import datetime

import pytest

import dlprov
from dlprov.dfa import Attribute, AttributeType, DataSet, Element, Set, SetType, Task
from dlprov.dfa import Dataflow, Transformation, end_execution
from tests.capture.stores import backend_for


@pytest.fixture(params=["sqlite", "postgresql", "http"])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with backend_for(request.param, tmp_path, "case") as found:
        yield found


def test_the_papers_spelling_is_one_set_with_the_stored_one(backend) -> None:
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("Train") as train:
            train.input("iTrain", Optimizer_Name="adam", LEARNING_RATE=0.01)
            for epoch in range(1, 4):
                train.output("oTrain", epoch=epoch, Loss=1 / epoch)
            train.output("otrain", EPOCH=4, loss=0.2)
            train.output("OTRAIN", Epoch=5, LOSS=0.1)
            train.model("model.pt", set_tag="oTrainedModel")
        with run.task("TEST", depends_on=train, uses=["OTRAINEDMODEL"]) as test:
            test.output("oTest", Accuracy=0.9)
    assert run.recorder.rejected == 0
    assert backend.rows("itrain", "optimizer_name, learning_rate") == [("adam", 0.01)]
    assert backend.rows("otrain", "epoch, loss") == [
        (1.0, 1.0), (2.0, 0.5), (3.0, 1 / 3), (4.0, 0.2), (5.0, 0.1)]
    assert backend.rows("otest", "accuracy") == [(0.9,)]
    [(producer, consumer)] = backend.rows("otrainedmodel", "train_task_id, test_task_id")
    assert producer is not None and consumer is not None  # the set used, by its stored name
    assert backend.set_tables() == {"itrain", "otrain", "otrainedmodel", "otest"}
    assert backend.query("SELECT tag FROM data_transformation ORDER BY id") == [
        ("train",), ("test",)]
    if backend.name != "http":  # SQL over a server goes through its read endpoints
        stored = dlprov.sql("SELECT epoch FROM OTRAIN WHERE LOSS < 0.3 ORDER BY epoch",
                            store=backend.url, dataflow=backend.df_tag.upper())
        assert [row[0] for row in stored.rows] == [4.0, 5.0]


def test_a_declared_set_takes_its_names_in_any_case(backend) -> None:
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        run.declare_set("oTrain", {"Loss": "numeric", "NOTE": "text"})
        with run.task("train") as train:
            train.output("OTRAIN", LOSS=0.5, note="a")
            train.output("otrain", loss=0.4, Note="b")
    assert backend.rows("otrain", "loss, note") == [(0.5, "a"), (0.4, "b")]


def test_one_attribute_given_twice_in_two_cases_is_refused(store_path, sql) -> None:
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.SpecError, match="'loss' is given twice"):
                train.output("otrain", Loss=0.5, loss=0.4)  # a first element
            train.output("otrain", loss=0.5, epoch=1)
            with pytest.raises(dlprov.SpecError, match="'loss' is given twice"):
                train.output("otrain", loss=0.5, LOSS=0.4)  # a later one
        with pytest.raises(dlprov.SpecError, match="given twice"):
            run.declare_set("other", {"Loss": "numeric", "loss": "numeric"})
    assert sql("SELECT loss, epoch FROM mnist__otrain") == [(0.5, 1.0)]
    assert "mnist__other" not in {n for (n,) in sql("SELECT name FROM sqlite_master")}


def test_the_server_stores_a_mixed_case_batch_under_the_stored_names(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from dlprov.model import records as r
    from dlprov.server.background import serve_in_thread
    from dlprov.store.http import HttpWriter

    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    now = datetime(2025, 1, 1, 12)
    spec = {"tag": "Mnist", "transformations": ["Train"],
            "sets": {"oTrain": [{"name": "Loss", "type": "numeric"}]},
            "dependencies": [["Train", None, "oTrain"]]}
    records = [
        (r.SPEC, "Mnist", spec),
        (r.EXEC_START, "e" * 32, {"tag": "x1", "df_tag": "Mnist", "start_time": now}),
        (r.TASK_START, "t" * 32, {"exec_key": "e" * 32, "transformation": "TRAIN",
                                  "identifier": 1, "status": "running", "start_time": now}),
        (r.ELEMENT, "t" * 32, "oTrain", {"LOSS": 0.5}),
        (r.ELEMENT, "t" * 32, "OTRAIN", {"loss": 0.25})]
    with serve_in_thread(str(tmp_path / "store.db")) as url:
        HttpWriter(url).write(records)
    with backend_for("sqlite", tmp_path, "mnist") as stored:
        assert stored.rows("otrain", "loss, train_task_id") == [(0.5, 1), (0.25, 1)]


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_the_dfa_api_is_case_insensitive(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with backend_for(name, tmp_path, "dfacase") as backend:
        df = Dataflow(backend.df_tag.upper(), store=backend.url)
        train = Transformation("Train")
        train.set_sets([
            Set("iTrain", SetType.INPUT, [Attribute("LR", AttributeType.NUMERIC)]),
            Set("oTrain", SetType.OUTPUT, [Attribute("Loss", AttributeType.NUMERIC)])])
        df.add_transformation(train)
        df.save()
        exec_tag = f"{backend.df_tag}-1"
        task = Task(1, backend.df_tag, exec_tag, "TRAIN")
        task.add_dataset(DataSet("ITRAIN", [Element([0.01])]))
        task.begin()
        task.add_dataset(DataSet("otrain", [Element([0.5]), Element(["0.25"])]))
        task.end()
        end_execution(exec_tag)
        assert backend.rows("itrain", "lr") == [(0.01,)]
        assert backend.rows("otrain", "loss") == [(0.5,), (0.25,)]
        with pytest.raises(dlprov.SpecError, match="more than once"):
            Dataflow("twice", transformations=[Transformation("t", [Set(
                "s", SetType.OUTPUT, [Attribute("A"), Attribute("a")])])]).save()
