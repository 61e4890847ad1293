"""The original DLProv examples' provenance calls, through ``dlprov.dfa`` with only the imports
changed: nothing raises into the script, everything it sent is stored once, with warnings.

The calls are those of dbpina/dlprov (main, 934f724) ``Example/mnist-torch.py`` (lines 27-214),
``Example/mnist-simple.py`` (lines 29-153) and ``Example/alexnet_dnnprov.py`` (lines 40-239), in
order, with synthetic numbers instead of the datasets they download and the models they train.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime

import pytest

from dlprov.dfa import Dataflow, DataSet, Element, Task, end_execution
from dlprov.errors import SpecError


@pytest.fixture(autouse=True)
def _lenient(monkeypatch):
    monkeypatch.delenv("DLPROV_DFA_STRICT", raising=False)
    yield
    end_execution()


def counts(sql, df: str, *sets: str) -> dict[str, int]:
    return {s: sql(f"SELECT count(*) FROM {df}__{s}")[0][0] for s in sets}


def test_mnist_torch(sql):
    dataflow_tag = "example"
    exec_tag = dataflow_tag + "-" + str(datetime.now())
    df = Dataflow(dataflow_tag, predefined=True)
    df.save()
    t1 = Task(1, dataflow_tag, exec_tag, "LoadData")
    t1_1 = Task(2, dataflow_tag, exec_tag, "RandomHorizontal", dependency=t1)
    t1_2 = Task(3, dataflow_tag, exec_tag, "Normalize", dependency=t1_1)
    t2 = Task(4, dataflow_tag, exec_tag, "SplitData", dependency=t1_2)
    t3 = Task(5, dataflow_tag, exec_tag, "Train", dependency=t2)
    t4 = Task(6, dataflow_tag, exec_tag, "Test", dependency=[t2, t3])
    t1.add_dataset(DataSet("iInputDataset", [Element(["EMNIST", "https://x/emnist.zip"])]))
    t1.begin()
    t1.add_dataset(DataSet("oLoadData", [Element(["/w/./data/EMNIST/raw"])]))
    t1.end()
    t1_1.add_dataset(DataSet("oRandomHorizontal", [Element(["/w/data"])]))
    t1_1.end()
    t1_2.add_dataset(DataSet("oNormalize", [Element(["/w/data"])]))
    t1_2.end()
    t2.add_dataset(DataSet("iSplitConfig", [Element(["900", "100", "200"])]))
    t2.begin()
    for tag in ("oTrainSet", "oValSet"):
        t2.add_dataset(DataSet(tag, [Element([64])]))  # a batch size for two attributes
        t2.save()
    t2.add_dataset(DataSet("oTestSet", [Element([64])]))
    t2.end()
    t3.add_dataset(DataSet("iTrain", [Element(["Adam", 0.001, 2, 64, 4])]))
    t3.begin()
    for epoch in range(2):
        t3.add_dataset(DataSet("oTrain", [Element(["2025-01-01 10:00:00", 1.5, 0.5, 80.0, 0.6,
                                                   75.0, epoch + 1])]))
        t3.save()
    t3.add_dataset(DataSet("oTrainedModel", [Element(["modelv1.pth", "/w/modelv1.pth"])]))
    t3.end()
    t4.begin()
    t4.add_dataset(DataSet("oTest", [Element([0.5, 80.0])]))
    t4.end()
    end_execution(exec_tag)

    warned = "\n".join(t1_1.warnings + t1_2.warnings + t2.warnings)
    assert "no transformation 'randomhorizontal'" in warned
    assert "no set 'onormalize'" in warned and "'otrainset' has 2 attributes" in warned
    assert counts(sql, "example", "iinputdataset", "oloaddata", "orandomhorizontal",
                  "onormalize", "isplitconfig", "otrainset", "ovalset", "otestset", "itrain",
                  "otrain", "otrainedmodel", "otest") == {
        "iinputdataset": 1, "oloaddata": 1, "orandomhorizontal": 1, "onormalize": 1,
        "isplitconfig": 1, "otrainset": 1, "ovalset": 1, "otestset": 1, "itrain": 1,
        "otrain": 2, "otrainedmodel": 1, "otest": 1}
    assert sql("SELECT trainsetx, trainsety FROM example__otrainset") == [("64", None)]
    assert sql("SELECT status FROM task WHERE df_exec = ?", exec_tag) == [("finished",)] * 6
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
    ids = dict(sql("SELECT identifier, id FROM task"))
    assert (ids[2], ids[1]) in set(sql("SELECT task_id, depends_on_id FROM task_dependency"))
    # the warnings are kept with their task
    [(note,)] = sql("SELECT output_msg FROM task WHERE identifier = 2")
    assert "[dlprov warning]" in note and "randomhorizontal" in note


def test_mnist_simple(sql):
    dataflow_tag = "mnist"
    df = Dataflow(dataflow_tag, predefined=True)
    df.save()
    exec_tag = dataflow_tag + "-" + str(datetime.now())
    t1 = Task(1, dataflow_tag, exec_tag, "LoadData")
    t2 = Task(2, dataflow_tag, exec_tag, "SplitData", dependency=t1)
    t3 = Task(3, dataflow_tag, exec_tag, "TrainModel", dependency=t2)
    t4 = Task(4, dataflow_tag, exec_tag, "TestModel", dependency=[t2, t3])
    t1.add_dataset(DataSet("iInputDataset", [Element(["mnist", "tf.keras.datasets.mnist"])]))
    t1.begin()
    t1.add_dataset(DataSet("oLoadData", [Element(["/w/./temp_mnist"])]))
    t1.end()
    t2.add_dataset(DataSet("iSplitConfig", [Element(["80-20"])]))  # text in a numeric one
    t2.begin()
    t2.add_dataset(DataSet("oTrainSet", [Element(["/w/train.npz"])]))
    t2.save()
    t2.add_dataset(DataSet("oTestSet", [Element(["/w/test.npz"])]))
    t2.end()
    t3.add_dataset(DataSet("iTrainModel", [Element(["Adam", 0.001, 3, 8])]))
    t3.begin()
    for epoch in range(3):
        t3.add_dataset(DataSet("oTrainModel", [Element([
            "2025-01-01 10:00:00", 1.5, 0.4, 0.9, -9999999, -9999999, epoch])]))
        t3.save()
    t3.add_dataset(DataSet("oTrainedModel", [Element(["trained_model", "/w/model.keras"])]))
    t3.end()
    t4.begin()
    t4.add_dataset(DataSet("oTestModel", [Element([0.3, 0.91])]))
    t4.end()
    end_execution(exec_tag)

    assert counts(sql, "mnist", "iinputdataset", "oloaddata", "isplitconfig", "otrainset",
                  "otestset", "itrainmodel", "otrainmodel", "otrainedmodel", "otestmodel") == {
        "iinputdataset": 1, "oloaddata": 1, "isplitconfig": 1, "otrainset": 1, "otestset": 1,
        "itrainmodel": 1, "otrainmodel": 3, "otrainedmodel": 1, "otestmodel": 1}
    # "80-20" is no number: NULL, and kept as given
    assert sql("SELECT train_size, val_size, dlprov_extra FROM mnist__isplitconfig") == [
        (None, None, json.dumps({"train_size": "80-20"}))]
    assert sql("SELECT value_1, value_3 FROM mnist__itrainmodel") == [("Adam", 3.0)]
    assert sql("SELECT status FROM task") == [("finished",)] * 4


def test_alexnet_dnnprov(sql):
    # dnnp-1 in the example; a tag with "-" is another change's (model/names.py)
    dataflow_tag = "dnnp_1"
    exec_tag = dataflow_tag + "-" + str(datetime.now())
    df = Dataflow(dataflow_tag, True)
    df.save()
    t1 = Task(1, dataflow_tag, exec_tag, "TrainingModel")
    t1.add_dataset(DataSet("iTrainingModel", [Element(["SGD", 0.01, 3, 8])]))
    t1.begin()
    t2 = Task(2, dataflow_tag, exec_tag, "Adaptation", dependency=t1)
    t2.add_dataset(DataSet("iAdaptation", [Element([10, 0.5, 0.01])]))
    t2.begin()
    for epoch in range(3):
        t2.add_dataset(DataSet("oAdaptation", [Element([0.01 / (epoch + 1), "2025-01-01 10:00",
                                                        epoch, str(epoch + 1)])]))
        t2.end() if epoch == 2 else t2.save()
        t1.add_dataset(DataSet("oTrainingModel", [Element(["2025-01-01 10:00", 2.0, 0.5, 0.8,
                                                           0.6, 0.7, epoch])]))
        t1.end() if epoch == 2 else t1.save()
    t3 = Task(3, dataflow_tag, exec_tag, "TestingModel", dependency=t1)
    t3.begin()
    t3.add_dataset(DataSet("oTestingModel", [Element([0.4, 0.85])]))
    t3.end()
    end_execution(exec_tag)
    assert counts(sql, "dnnp_1", "itrainingmodel", "iadaptation", "oadaptation",
                  "otrainingmodel", "otestingmodel") == {
        "itrainingmodel": 1, "iadaptation": 1, "oadaptation": 3, "otrainingmodel": 3,
        "otestingmodel": 1}
    assert sql("SELECT identifier, status FROM task ORDER BY identifier") == [
        (1, "finished"), (2, "finished"), (3, "finished")]


def test_unresolved_dependency_and_strict_mode(sql, monkeypatch):
    Dataflow("strictness", predefined=True).save()
    t = Task(1, "strictness", "s-1", "Test", dependency=Task(9, "strictness", "s-1", "Train"))
    t.begin()  # task 9 never began: unresolved, not fatal
    t.end()
    end_execution("s-1")
    assert sql("SELECT status FROM task") == [("finished",)]
    assert any("unresolved" in w for w in t.warnings)
    monkeypatch.setenv("DLPROV_DFA_STRICT", "1")
    with pytest.raises(SpecError, match="has no transformation 'nosuch'"):
        Task(1, "strictness", "s-2", "NoSuch")


def test_a_script_that_dies_leaves_its_run_failed(store_path, sql):
    script = textwrap.dedent(f"""
        from dlprov.dfa import Dataflow, DataSet, Element, Task
        df = Dataflow("died", predefined=True, store={str(store_path)!r})
        df.save()
        t = Task(1, df, "died-1", "Train")
        t.add_dataset(DataSet("iTrain", [Element(["adam", 0.1, 2, 32, 4])]))
        t.begin()
        raise RuntimeError("out of memory")
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "out of memory" in done.stderr
    [(status, error)] = sql("SELECT status, error_msg FROM dataflow_execution")
    assert status == "failed" and "RuntimeError: out of memory" in error
    assert sql("SELECT status FROM task") == [("failed",)]
    assert sql("SELECT count(*) FROM died__itrain") == [(1,)]
