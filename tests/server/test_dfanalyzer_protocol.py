"""A script written for the original DfAnalyzer client, spoken as plain HTTP, captures into dlprov."""
from __future__ import annotations

import json

import httpx

from dlprov import sql as dlprov_sql
from dlprov.capture.dfa_spec import Dataflow

EMAIL = "bob@fictional.com"
HARDWARE = json.dumps({"hostname": "gpu-node-7", "os": "Linux", "os_version": "6.1",
                       "architecture": "x86_64", "processor": "Xeon", "gpus": "Not available",
                       "in_container": False})


def _original_dataflow(tag: str) -> dict:
    """The payload the original client posts for Dataflow(tag, predefined=True): upper-case
    attribute names, INPUT sets passed on with a dependency."""
    transformations = []
    for t in Dataflow(tag, predefined=True).transformations:
        sets = []
        for s in t.sets:
            body = {"tag": s.tag, "type": s.type.value,
                    "attributes": [{"name": a.name.upper(), "type": a.type.name}
                                   for a in s.attributes]}
            if s.dependency:
                body["dependency"] = s.dependency
            sets.append(body)
        transformations.append({"tag": t.tag, "sets": sets})
    return {"tag": tag, "transformations": transformations}


def _task(exec_tag: str, tid: int, transformation: str, status: str, sets=(), deps=None,
          **extra) -> dict:
    body = {"tag": transformation.lower(), "first": "1" if tid == 1 else "0",
            "dataflow": "alexnet", "email": EMAIL, "exec": exec_tag, "id": str(tid),
            "transformation": transformation.lower(), "status": status,
            "sets": [{"tag": tag, "elements": [[str(v) for v in e] for e in elements]}
                     for tag, elements in sets], **extra}
    if deps:
        body["dependency"] = {"tags": [{"tag": t} for t, _ in deps],
                              "ids": [{"id": str(i)} for _, i in deps]}
    return body


def test_original_client_script_captures_into_the_store(server, store_path):
    exec_tag = "alexnet-2025-11-24"
    perf = [{"startTime": "2025-11-24 13:48:21", "endTime": "2025-11-24 13:50:01"}]
    with httpx.Client(base_url=server) as http:
        def post(body: dict) -> None:
            answer = http.post("/pde/task/json", json=body)
            assert answer.status_code == 200, answer.text

        assert http.post("/pde/dataflow/json",
                         json=_original_dataflow("alexnet")).status_code == 200
        post(_task(exec_tag, 1, "LoadData", "RUNNING",
                   [("iInputDataset", [["OxfordFlowers17", "http://x"]])], hardware=HARDWARE))
        post(_task(exec_tag, 1, "LoadData", "FINISHED", [("oLoadData", [["/p/raw.npy"]])],
                   performances=perf))
        post(_task(exec_tag, 2, "ApplyFilter", "RUNNING", [("iFilter", [["Grayscale"]])],
                   deps=[("loaddata", 1)]))
        post(_task(exec_tag, 2, "ApplyFilter", "FINISHED", [("oFilter", [["/p/gray.npy"]])]))
        post(_task(exec_tag, 3, "SplitData", "RUNNING", [("iSplitConfig", [[0.7, 0.1, 0.2]])],
                   deps=[("applyfilter", 2)]))
        post(_task(exec_tag, 3, "SplitData", "RUNNING", [("oTrainSet", [["/x", "/y"]])]))
        post(_task(exec_tag, 3, "SplitData", "RUNNING", [("oValSet", [["/vx", "/vy"]])]))
        post(_task(exec_tag, 3, "SplitData", "FINISHED", [("oTestSet", [["/tx", "/ty"]])]))
        post(_task(exec_tag, 4, "Train", "RUNNING",
                   [("iTrain", [["Adam", 0.001, 2, 32, 8]])], deps=[("splitdata", 3)],
                   sub="a"))
        for epoch, loss in ((1, "0.9"), (2, "nan")):  # the original sent str(nan)
            post(_task(exec_tag, 4, "Train", "RUNNING",
                       [("oTrain", [["2025-11-24", "1.5", loss, "0.5", "None", "0.4", epoch]])],
                       sub="a"))
        # two elements in one DataSet: the original dropped them, dlprov keeps both
        post(_task(exec_tag, 4, "Train", "RUNNING",
                   [("oTrainedModel", [["alexnet", "/m/a.keras"], ["alexnet-2", "/m/b.keras"]])],
                   sub="a"))
        post(_task(exec_tag, 4, "Train", "FINISHED", [("oWeights", [["/m/w.h5"]])], sub="a"))
        post(_task(exec_tag, 5, "Test", "RUNNING", deps=[("splitdata", 3), ("train", 4)]))
        post(_task(exec_tag, 5, "Test", "FINISHED", [("oTest", [[0.5, 0.88]])]))

    q = lambda statement: dlprov_sql(statement, store=str(store_path),  # noqa: E731
                                     dataflow="alexnet").rows
    train_id, = q("SELECT t.id FROM task t JOIN data_transformation d ON d.id = t.dt_id "
                  "WHERE d.tag = 'train'")[0]
    test_id, = q("SELECT t.id FROM task t JOIN data_transformation d ON d.id = t.dt_id "
                 "WHERE d.tag = 'test'")[0]
    assert q("SELECT train_task_id, optimizer_name, learning_rate, batch_size FROM itrain") == \
        [(train_id, "Adam", 0.001, 32.0)]
    rows = q("SELECT train_task_id, epoch, loss, val_loss FROM otrain ORDER BY epoch")
    assert rows == [(train_id, 1.0, 0.9, None), (train_id, 2.0, None, None)]  # NaN: NULL in SQLite
    assert q("SELECT train_task_id, test_task_id, model_name FROM otrainedmodel "
             "ORDER BY model_name") == [(train_id, test_id, "alexnet"),
                                        (train_id, test_id, "alexnet-2")]
    assert q("SELECT sub_id FROM task WHERE id = :i".replace(":i", str(train_id))) == [("a",)]
    assert q("SELECT test_task_id FROM otestset") == [(test_id,)]
    assert q("SELECT username, hostname FROM dataflow_execution") == [(EMAIL, "gpu-node-7")]
    assert q("SELECT hostname, os FROM environment") == [("gpu-node-7", "Linux")]
    assert q("SELECT start_time, end_time FROM task WHERE identifier = 1") == [
        ("2025-11-24 13:48:21.000000", "2025-11-24 13:50:01.000000")]
    assert q("SELECT status FROM task ORDER BY identifier") == [("finished",)] * 5
    with httpx.Client(base_url=server) as http:
        tasks = http.get(f"/v1/runs/{exec_tag}/tasks").json()
        assert [t["transformation"] for t in tasks] == [
            "loaddata", "applyfilter", "splitdata", "train", "test"]


def test_task_before_its_dataflow_is_stored_with_a_warning(server):
    # The original dropped it; dlprov keeps it, makes the dataflow of it, and says so.
    answer = httpx.post(f"{server}/pde/task/json",
                        json=_task("never-declared", 1, "LoadData", "RUNNING"))
    assert answer.status_code == 200, answer.text
    assert any("/pde/dataflow/json" in w for w in answer.json()["warnings"])
