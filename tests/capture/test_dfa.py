"""The DfAnalyzer-compatible API, end to end into a real SQLite store, checked with plain SQL."""
from __future__ import annotations

import math
from datetime import datetime

import pytest

from dlprov.dfa import (Attribute, AttributeType, Dataflow, DataSet, Dependency, Element, Set,
                        SetType, Task, TaskStatus, Transformation, end_execution)
from dlprov.errors import NotFound, SpecError, ValueRejected


@pytest.fixture(autouse=True)
def _end_executions(monkeypatch):
    # These tests check the refusals of strict mode; the lenient default: test_dfa_lenient.py.
    monkeypatch.setenv("DLPROV_DFA_STRICT", "1")
    yield
    end_execution()  # every test's executions end before its store goes away


def task_ids(sql, exec_tag: str) -> dict[int, int]:
    """identifier -> task.id of one execution."""
    return dict(sql("SELECT identifier, id FROM task WHERE df_exec = ?", exec_tag))


# -- the paper's Listing 1, with only the imports changed ----------------------------------------
class Callback:
    """Stands in for keras.callbacks.Callback."""

    def __init__(self, task=None) -> None:
        self.task = task


def fit(epochs: int, callbacks: Callback) -> None:
    """A fake model.fit: one callback per epoch, with Keras-like logs."""
    for epoch in range(epochs):
        callbacks.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + epoch / 10,
                                       "val_loss": 1.2 / (epoch + 1), "val_accuracy": 0.4})


def test_listing_1(sql):
    dataflow_tag = "example"
    df = Dataflow(dataflow_tag, predefined=True)
    df.save()
    exec_tag = dataflow_tag + "-" + str(datetime.now())
    # Not in the listing: t0, and the inputs and outputs of t1 ("omitted for simplicity").
    t0 = Task(0, dataflow_tag, exec_tag, "ApplyFilter")
    t0.add_dataset(DataSet("iFilter", [Element(["Grayscale"])]))
    t0.begin()
    t0.add_dataset(DataSet("oFilter", [Element(["/data/x_gray.npy"])]))
    t0.end()
    t1 = Task(1, dataflow_tag, exec_tag, "SplitData", dependency=t0)
    t1.add_dataset(DataSet("iSplitConfig", [Element([0.8, 0.1, 0.1])]))
    t1.begin()
    t1.add_dataset(DataSet("oTrainSet", [Element(["/data/x_train.npy", "/data/y_train.npy"])]))
    t1.add_dataset(DataSet("oValSet", [Element(["/data/x_val.npy", "/data/y_val.npy"])]))
    t1.end()
    started = datetime.now()

    class DLProvCallback(Callback):
        def on_epoch_end(self, epoch, logs=None):
            timestamp = str(datetime.now())
            elapsed_time = (datetime.now() - started).total_seconds()
            loss, accuracy = logs["loss"], logs["accuracy"]
            val_loss, val_accuracy = logs["val_loss"], logs["val_accuracy"]
            tf2_output = DataSet("oTrain", [
                Element([timestamp, elapsed_time, loss, accuracy,
                         val_loss, val_accuracy, epoch])])
            t2.add_dataset(tf2_output)
            t2.save()

    t2 = Task(2, dataflow_tag, exec_tag, "Train", dependency=t1)
    callbacks = DLProvCallback(t2)
    optimizer_name, learning_rate, epochs, batch_size, num_layers = "adam", 0.001, 3, 32, 4
    tf2_input = DataSet("iTrain", [Element([optimizer_name,
                                            learning_rate, epochs, batch_size, num_layers])])
    t2.add_dataset(tf2_input)
    t2.begin()
    fit(epochs, callbacks=callbacks)
    trained_model, trained_model_path = "trained_model", "/models/trained.keras"
    tf2_output_model = DataSet("oTrainedModel", [Element([trained_model,
                                                         trained_model_path])])
    t2.add_dataset(tf2_output_model)
    t2.end()

    t2.run.flush()
    ids = task_ids(sql, exec_tag)
    rows = sql("SELECT train_task_id, epoch, loss, accuracy, val_loss, val_accuracy, elapsed_time,"
               " timestamp FROM example__otrain ORDER BY epoch")
    assert [r[:6] for r in rows] == [
        (ids[2], float(e), 1.0 / (e + 1), 0.5 + e / 10, 1.2 / (e + 1), 0.4) for e in range(3)]
    assert all(isinstance(r[6], float) and r[6] >= 0 and r[7] for r in rows)
    assert sql("SELECT train_task_id, optimizer_name, learning_rate, num_epochs, batch_size, "
               "num_layers FROM example__itrain") == [(ids[2], "adam", 0.001, 3.0, 32.0, 4.0)]
    assert sql("SELECT train_task_id, test_task_id, model_name, model_dir "
               "FROM example__otrainedmodel") == [(ids[2], None, "trained_model",
                                                   "/models/trained.keras")]
    # t2 used what t1 produced; t1 used what t0 produced.
    assert sql("SELECT splitdata_task_id, train_task_id FROM example__otrainset") == [
        (ids[1], ids[2])]
    assert sql("SELECT applyfilter_task_id, splitdata_task_id FROM example__ofilter") == [
        (ids[0], ids[1])]


# -- the predefined workflow of the original's filter-prov.py (§2.5) -----------------------------
def run_predefined_workflow(df: Dataflow, exec_tag: str) -> list[Task]:
    t1 = Task(1, df, exec_tag, "LoadData")
    t1.add_dataset(DataSet("iInputDataset", [Element(["OxfordFlowers17", "http://x/17.tgz"])]))
    t1.begin()
    t1.add_dataset(DataSet("oLoadData", [Element(["/data/raw_images.npy"])]))
    t1.end()
    t2 = Task(2, df, exec_tag, "ApplyFilter", dependency=t1)
    t2.add_dataset(DataSet("iFilter", [Element(["Grayscale"])]))
    t2.begin()
    t2.add_dataset(DataSet("oFilter", [Element(["/data/x_gray.npy"])]))
    t2.end()
    t3 = Task(3, df, exec_tag, "SplitData", dependency=t2)
    t3.add_dataset(DataSet("iSplitConfig", [Element([1088, 136, 136])]))
    t3.begin()
    t3.add_dataset(DataSet("oTrainSet", [Element(["/data/x_train.npy", "/data/y_train.npy"])]))
    t3.save()
    t3.add_dataset(DataSet("oValSet", [Element(["/data/x_val.npy", "/data/y_val.npy"])]))
    t3.save()
    t3.add_dataset(DataSet("oTestSet", [Element(["/data/x_test.npy", "/data/y_test.npy"])]))
    t3.end()
    t4 = Task(4, df, exec_tag, "Train", dependency=t3)
    t4.add_dataset(DataSet("iTrain", [Element(["adam", 0.002, 2, 32, 16])]))
    t4.begin()
    for epoch in range(2):
        t4.add_dataset(DataSet("oTrain", [Element([str(datetime.now()), 1.5, 0.9 - epoch / 10,
                                                   0.5, 1.0, 0.45, epoch + 1])]))
        t4.save()
    t4.add_dataset(DataSet("oTrainedModel", [Element(["trained_model", "/models/trained.keras"])]))
    t4.save()
    t4.add_dataset(DataSet("oWeights", [Element(["/weights/model.weights.h5"])]))
    t4.end()
    t5 = Task(5, df, exec_tag, "Test", dependency=[t3, t4])
    t5.begin()
    t5.add_dataset(DataSet("oTest", [Element([0.8, 0.61])]))
    t5.end()
    return [t1, t2, t3, t4, t5]


def test_predefined_workflow(sql):
    df = Dataflow("alexnet", predefined=True, email="bob@fictional.com")
    df.save()
    exec_tag = "alexnet-" + str(datetime.now())
    run_predefined_workflow(df, exec_tag)
    end_execution(exec_tag)

    ids = task_ids(sql, exec_tag)
    assert sorted(ids) == [1, 2, 3, 4, 5]
    assert sql("SELECT DISTINCT status FROM task") == [("finished",)]
    assert sql("SELECT status, username FROM dataflow_execution") == [
        ("finished", "bob@fictional.com")]
    assert set(sql("SELECT task_id, depends_on_id FROM task_dependency")) == {
        (ids[2], ids[1]), (ids[3], ids[2]), (ids[4], ids[3]), (ids[5], ids[3]), (ids[5], ids[4])}
    # Consumers are stamped on the rows they used, and only on those.
    assert sql("SELECT train_task_id, test_task_id, model_name FROM alexnet__otrainedmodel") == [
        (ids[4], ids[5], "trained_model")]
    assert sql("SELECT splitdata_task_id, test_task_id FROM alexnet__otestset") == [
        (ids[3], ids[5])]
    assert sql("SELECT splitdata_task_id, train_task_id FROM alexnet__ovalset") == [
        (ids[3], ids[4])]
    assert sql("SELECT loaddata_task_id, applyfilter_task_id FROM alexnet__oloaddata") == [
        (ids[1], ids[2])]
    assert sql("SELECT test_task_id, loss, accuracy FROM alexnet__otest") == [(ids[5], 0.8, 0.61)]
    assert sql("SELECT train_size, val_size, test_size FROM alexnet__isplitconfig") == [
        (1088.0, 136.0, 136.0)]
    assert sql("SELECT epoch, loss FROM alexnet__otrain ORDER BY epoch") == [(1.0, 0.9), (2.0, 0.8)]
    columns = [c[1] for c in sql("PRAGMA table_info('alexnet__otrain')")]
    assert columns == ["id", "train_task_id", "timestamp", "elapsed_time", "loss", "accuracy",
                       "val_loss", "val_accuracy", "epoch"]
    assert sql("SELECT type FROM attribute WHERE name = 'elapsed_time'") == [("numeric",)]


def test_two_executions_of_one_dataflow_at_once(sql):
    df = Dataflow("alexnet", predefined=True)
    df.save()
    a, b = "alexnet-a", "alexnet-b"
    ta = Task(1, df, a, "Train")
    tb = Task(1, df, b, "Train")
    ta.begin()
    tb.begin()
    for epoch in (1, 2):
        for task, loss in ((ta, 0.5), (tb, 0.7)):
            task.add_dataset(DataSet("oTrain", [Element(["t", 1.0, loss, 0.5, 0.5, 0.5, epoch])]))
            task.save()
    tb.end()
    ta.end()
    assert ta.run is not tb.run
    end_execution(a)
    end_execution(b)
    assert sql("SELECT d.tag, o.loss, count(*) FROM alexnet__otrain o JOIN task t "
               "ON t.id = o.train_task_id JOIN dataflow_execution d ON d.id = t.exec_id "
               "GROUP BY d.tag ORDER BY d.tag") == [(a, 0.5, 2), (b, 0.7, 2)]
    assert sql("SELECT tag, status FROM dataflow_execution ORDER BY tag") == [
        (a, "finished"), (b, "finished")]


# -- the original's losses, fixed ----------------------------------------------------------------
def test_every_element_and_every_dataset_before_save_is_kept(sql):
    Dataflow("mnist", predefined=True).save()
    t = Task(1, "mnist", "mnist-1", "SplitData")
    t.add_dataset(DataSet("iSplitConfig", [Element([0.8, 0.1, 0.1]), Element([0.7, 0.2, 0.1])]))
    t.begin()
    t.add_dataset(DataSet("oTrainSet", [Element(["x1", "y1"]), Element(["x2", "y2"])]))
    t.add_dataset(DataSet("oValSet", [Element(["xv", "yv"])]))
    t.set_datasets([DataSet("oTestSet", [["xt1", "yt1"], ["xt2", "yt2"], ["xt3", "yt3"]])])
    t.save()
    t.save()  # datasets are recorded once
    t.end()
    end_execution("mnist-1")
    assert sql("SELECT train_size FROM mnist__isplitconfig ORDER BY id") == [(0.8,), (0.7,)]
    assert sql("SELECT trainsetx, trainsety FROM mnist__otrainset ORDER BY id") == [
        ("x1", "y1"), ("x2", "y2")]
    assert sql("SELECT valsetx FROM mnist__ovalset") == [("xv",)]
    assert sql("SELECT testsetx FROM mnist__otestset ORDER BY id") == [
        ("xt1",), ("xt2",), ("xt3",)]


@pytest.mark.parametrize("values", [["adam", 0.1, 2, 32], ["adam", 0.1, 2, 32, 4, "extra"]])
def test_wrong_arity_raises_and_stores_nothing_of_that_dataset(sql, values):
    Dataflow("mnist", predefined=True).save()
    t = Task(1, "mnist", "mnist-1", "Train")
    t.begin()
    good = Element(["adam", 0.1, 2, 32, 4])
    with pytest.raises(SpecError) as caught:
        t.add_dataset(DataSet("iTrain", [good, Element(values)]))
    message = str(caught.value)
    assert "'itrain'" in message and f"gives {len(values)} values" in message
    assert "['optimizer_name', 'learning_rate', 'num_epochs', 'batch_size', 'num_layers']" \
        in message
    with pytest.raises(ValueRejected, match="'itrain', attribute 'learning_rate'"):
        t.add_dataset(DataSet("iTrain", [good, Element(["adam", "fast", 2, 32, 4])]))
    t.add_dataset(DataSet("iTrain", [good]))
    t.end()
    end_execution("mnist-1")
    assert sql("SELECT optimizer_name, num_layers FROM mnist__itrain") == [("adam", 4.0)]


def test_unknown_set_transformation_or_dataflow_is_a_clear_error(sql):
    Dataflow("mnist", predefined=True).save()
    t = Task(1, "mnist", "mnist-1", "Train")
    with pytest.raises(SpecError, match="transformation 'train' .* has no set 'otest'"):
        t.add_dataset(DataSet("oTest", [Element([0.1, 0.2])]))
    with pytest.raises(SpecError, match="no transformation 'trian'"):
        Task(2, "mnist", "mnist-1", "Trian")
    with pytest.raises(SpecError, match="dataflow 'nosuch' is not declared"):
        Task(1, "nosuch", "nosuch-1", "Train")
    with pytest.raises(ValueError, match="of dataflow 'mnist', not 'other'"):
        Task(3, Dataflow("other", predefined=True), "mnist-1", "Train")


def test_none_nan_and_quotes(sql):
    Dataflow("mnist", predefined=True).save()
    t = Task(1, "mnist", "mnist-1", "Train")
    quoted = "it's \"adam\"; DROP TABLE task; --"
    t.add_dataset(DataSet("iTrain", [Element([quoted, None, 2, 32, 4])]))
    t.begin()
    t.add_dataset(DataSet("oTrain", [Element([None, 1.0, float("nan"), math.inf, None, 0.5, 1])]))
    t.save()
    with pytest.raises(ValueRejected, match="'otrain', attribute 'epoch'.*allow_nan"):
        t.add_dataset(DataSet("oTrain", [Element(["t", 1.0, 0.1, 0.1, 0.1, 0.1, float("nan")])]))
    # As the original sent everything as text: numbers as text are numbers, text may be numbers.
    t.add_dataset(DataSet("oTrain", [Element([1234, "2.5", "0.25", 0.5, 0.5, 0.5, "2"])]))
    t.end()
    end_execution("mnist-1")
    assert sql("SELECT optimizer_name, learning_rate FROM mnist__itrain") == [(quoted, None)]
    rows = sql("SELECT timestamp, elapsed_time, loss, accuracy, val_loss, epoch "
               "FROM mnist__otrain ORDER BY epoch")
    # SQLite has no NaN: it is stored as NULL; inf is kept.
    assert rows == [(None, 1.0, None, math.inf, None, 1.0), ("1234", 2.5, 0.25, 0.5, 0.5, 2.0)]
    assert sql("SELECT count(*) FROM task") == [(1,)]


def test_failed_task(sql):
    Dataflow("mnist", predefined=True).save()
    t = Task(1, "mnist", "mnist-1", "Train", error="CUDA out of memory")
    t.begin()
    t.set_status(TaskStatus.FAILED)
    t.end()
    t2 = Task(2, "mnist", "mnist-1", "Test")
    try:
        with t2:
            raise RuntimeError("evaluation crashed")
    except RuntimeError:
        pass
    t3 = Task(3, "mnist", "mnist-1", "LoadData")
    t3.set_status(TaskStatus.FAILED)
    t3.end()
    t4 = Task(4, "mnist", "mnist-1", "ApplyFilter", output="done")
    t4.end()
    end_execution("mnist-1")
    rows = dict((r[0], r[1:]) for r in sql("SELECT identifier, status, error_msg, output_msg "
                                           "FROM task"))
    assert rows[1] == ("failed", "CUDA out of memory", None)
    assert rows[2][0] == "failed" and "RuntimeError: evaluation crashed" in rows[2][1]
    assert rows[3] == ("failed", "task set to FAILED", None)
    assert rows[4] == ("finished", None, "done")
    assert (t.status, t2.status, t4.status) == (TaskStatus.FAILED, TaskStatus.FAILED,
                                                TaskStatus.FINISHED)


# -- dependencies ------------------------------------------------------------------------------
def test_dependency_by_tags_and_ids(sql):
    df = Dataflow("alexnet", predefined=True)
    df.save()
    t3 = Task(3, df, "e1", "SplitData")
    t3.begin()
    t3.add_dataset(DataSet("oTestSet", [Element(["x", "y"])]))
    t3.end()
    t4 = Task(4, df, "e1", "Train", sub_id="a")
    t4.begin()
    t4.add_dataset(DataSet("oTrainedModel", [Element(["m", "/m"])]))
    t4.end()
    t5 = Task("5", df, "e1", "Test", dependency=Dependency(["splitdata", "train"], ["3", 4]))
    t5.begin()
    t5.end()
    t6 = Task(6, df, "e1", "Test")
    t6.add_dependency(Dependency(["splitdata"], ["3,9"]))
    with pytest.raises(NotFound, match="task 9"):
        t6.begin()
    t7 = Task(7, df, "e1", "Test", dependency=Task(8, df, "e1", "Train"))
    with pytest.raises(RuntimeError, match="which has not begun"):
        t7.begin()
    end_execution("e1")
    ids = task_ids(sql, "e1")
    assert set(sql("SELECT task_id, depends_on_id FROM task_dependency")) == {
        (ids[5], ids[3]), (ids[5], ids[4])}
    assert sql("SELECT test_task_id FROM alexnet__otrainedmodel") == [(ids[5],)]
    assert sql("SELECT sub_id FROM task WHERE identifier = 4") == [("a",)]


def test_user_defined_dataflow_with_the_original_set_reuse(sql):
    df = Dataflow("custom", email="ann@example.com")
    train = Transformation("Train")
    hyper = Set("iHyper", SetType.INPUT, [Attribute("LR", AttributeType.NUMERIC),
                                          Attribute("NOTES", AttributeType.LONG_TEXT)])
    model = Set("oModel", SetType.OUTPUT, [Attribute("PATH", AttributeType.RDFILE),
                                           Attribute("at", "timestamp"),
                                           Attribute("config", AttributeType.JSON)])
    train.set_sets([hyper, model])
    df.add_transformation(train)
    evaluate = Transformation("Evaluate")
    model.set_type(SetType.INPUT)  # the original re-used the producer's Set object
    model.dependency = train
    evaluate.add_set(model)
    evaluate.add_set(Set("oScore", SetType.OUTPUT, [Attribute("score", AttributeType.NUMERIC)]))
    df.add_transformation(evaluate)
    df.save()
    assert [s.type for s in df.transformations[0].sets] == [SetType.INPUT, SetType.OUTPUT]

    t1 = Task(1, df, "c1", "train")
    t1.add_dataset(DataSet("ihyper", [Element([0.1, "long " * 500])]))
    t1.begin()
    t1.add_dataset(DataSet("OMODEL", [Element(["/m.pt", "2025-01-02T03:04:05", {"layers": 3}])]))
    t1.end()
    t2 = Task(2, df, "c1", "evaluate", dependency=t1)
    t2.add_dataset(DataSet("oModel", [Element(["ignored: the producer's rows are used"])]))
    t2.begin()
    t2.add_dataset(DataSet("oScore", [Element([0.9])]))
    t2.end()
    end_execution("c1")
    ids = task_ids(sql, "c1")
    assert sql("SELECT train_task_id, evaluate_task_id, path, at, config FROM custom__omodel") == [
        (ids[1], ids[2], "/m.pt", "2025-01-02 03:04:05.000000", '{"layers": 3}')]
    assert sql("SELECT name, type FROM attribute ORDER BY id") == [
        ("lr", "numeric"), ("notes", "text"), ("path", "file"), ("at", "timestamp"),
        ("config", "json"), ("score", "numeric")]
    assert sql("SELECT username FROM dataflow_execution") == [("ann@example.com",)]


def test_declaration_errors(store_path):
    with pytest.raises(SpecError, match="unknown attribute type 'BLOB'"):
        Attribute("x", "BLOB")
    with pytest.raises(SpecError, match="extractors"):
        Set("s", SetType.INPUT, [], extractors=["csv"])
    orphan = Transformation("b", [Set("o", SetType.INPUT, [Attribute("x")], dependency="a")])
    with pytest.raises(SpecError, match="no transformation 'a' with output set 'o'"):
        Dataflow("broken", transformations=[orphan]).save()
    clash = Transformation("a", [Set("o", SetType.OUTPUT, [Attribute("x", "numeric")]),
                                 Set("o", SetType.INPUT, [Attribute("x", "text")])])
    with pytest.raises(SpecError, match="cannot redeclare"):
        Dataflow("broken", transformations=[clash]).save()
    with pytest.raises(ValueRejected, match="whole number"):
        Task("one", Dataflow("ok", predefined=True), "ok-1", "train")


def test_ended_execution_cannot_be_reopened(sql):
    Dataflow("mnist", predefined=True).save()
    Task(1, "mnist", "mnist-1", "Train").end()
    end_execution("mnist-1")
    end_execution("mnist-1")  # ending twice is harmless
    with pytest.raises(ValueError, match="has ended"):
        Task(2, "mnist", "mnist-1", "Test")
    with pytest.raises(NotFound):
        end_execution("never-started")


def test_open_executions_end_at_interpreter_exit(sql, store_path):
    import subprocess
    import sys
    script = """
from dlprov.dfa import Dataflow, Task, DataSet, Element
df = Dataflow("mnist", predefined=True); df.save()
done = Task(1, df, "done", "Train")
done.add_dataset(DataSet("oTrain", [Element(["t", 1.0, 0.5, 0.5, 0.5, 0.5, 1])]))
done.end()
crashed = Task(1, df, "crashed", "Train")
crashed.begin()
crashed.add_dataset(DataSet("oTrain", [Element(["t", 1.0, 0.5, 0.5, 0.5, 0.5, 1])]))
crashed.save()
"""  # no end_execution, and "crashed" never ends its task
    subprocess.run([sys.executable, "-c", script], check=True, cwd=store_path.parent, timeout=60)
    assert sql("SELECT e.tag, e.status, t.status, t.error_msg FROM dataflow_execution e "
               "JOIN task t ON t.exec_id = e.id ORDER BY e.tag") == [
        ("crashed", "failed", "failed", "the process exited before Task.end() was called"),
        ("done", "finished", "finished", None)]
    assert sql("SELECT count(*) FROM mnist__otrain") == [(2,)]


def test_tasks_of_a_dataflow_declared_by_another_process_use_the_stored_spec(sql, store_path):
    import subprocess
    import sys
    Dataflow("mnist", predefined=True).save()
    Task(1, "mnist", "first", "LoadData").end()
    end_execution("first")
    script = """
from dlprov.dfa import Task, DataSet, Element
t = Task(1, "mnist", "second", "Train")
t.add_dataset(DataSet("iTrain", [Element(["sgd", 0.1, 3, 8, 2])]))
t.end()
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=store_path.parent, timeout=60)
    assert sql("SELECT optimizer_name, learning_rate, num_layers FROM mnist__itrain") == [
        ("sgd", 0.1, 2.0)]
    assert sql("SELECT max(version) FROM dataflow_version") == [(1,)]  # the spec did not change
