"""The original DLProv client and REST test, replayed byte for byte against a real ``dlprov serve``.

The payloads are those of dbpina/dlprov (main, 934f724), rebuilt here rather than imported:

- ``DfAnalyzer/test-restful-services.sh``: its ``df`` and ``content`` strings, with ``num_msg``
  messages of one element each, as its shell loop expands them (``elements=,'"1;8;$j;r;w;p"'``
  leaves a leading comma: ``[,"1;8;1;r;w;p"]``, which the original server's parser read as a null
  element), posted with ``curl -H "Content-type: application/json"``.
- ``lib-python/dfa_lib_python``: ``ProvenanceObject.get_specification`` sends each ``_field``
  that is not empty under the name after its underscore (so ``_dataflow_tag`` and ``_dataflow``
  are both ``dataflow``, ``_sub_id`` is ``sub``, an empty ``email``/``workspace`` is left out);
  ``Task.__init__`` (task.py 32-66), ``begin`` (109-120: ``first``/``hardware`` for task "1"),
  ``end`` (122-130: ``performances`` of ``Performance(start_time, end_time)``, ``startTime``
  left out when ``begin()`` was never called), ``save`` (132-137: ``requests.post(json=...)``, an
  ``application/json`` body, to ``DFA_URL`` default ``http://localhost:22000/`` +
  ``/pde/task/json``: a double slash); ``Element`` stringifies every value (element.py 21).
- ``Example/mnist-torch.py``: its Task/DataSet calls (lines 27-214), with the transformations
  ``RandomHorizontal`` and ``Normalize`` that the predefined dataflow lacks, ``end()`` without
  ``begin()``, and one value for the two-attribute ``oTrainSet``.
"""
from __future__ import annotations

import json
from datetime import datetime

import httpx
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.query.catalogue import list_tasks
from dlprov.server.background import serve_in_thread

NUM_MSG = 3  # the script sends 50 at 0.1 s intervals; three show the same


def rest_dataflow() -> str:
    """``df`` of test-restful-services.sh, verbatim."""
    return ('{"tag":"uq_rtm","transformations":[{"programs":[{"name":"SparseGrid","path":".\\/bin'
            '\\/sparse_grid_cc_dataset"}],"tag":"sparse_grid_construction","sets":[{"tag":"sparse'
            'gridinput","attributes":[{"name":"vmid","type":"NUMERIC"},{"name":"dimension","type"'
            ':"NUMERIC"},{"name":"level","type":"NUMERIC"}],"type":"INPUT"},{"tag":"sparsegridou'
            'tput","attributes":[{"name":"vmid","type":"NUMERIC"},{"name":"dimension","type":"NUM'
            'ERIC"},{"name":"level","type":"NUMERIC"},{"name":"region","type":"FILE"},{"name":"we'
            'ights","type":"FILE"},{"name":"points","type":"FILE"}],"type":"OUTPUT"}]}]}')


def rest_task(i: int) -> str:
    """``content`` of test-restful-services.sh for message ``i``, one element per message."""
    elements = ',"1;8;1;r;w;p"'
    return ('{"subid":"' + str(i) + '","workspace":"\\/home\\/luciano\\/Desktop\\/pg","dataflow":'
            '"uq_rtm","sets":[{"elements":["1;8;1"],"tag":"sparsegridinput"}, {"elements":['
            + elements + '],"tag":"sparsegridoutput"}],"dependency":{},"resource":"local","id":"'
            + str(i) + '","transformation":"sparse_grid_construction","status":"FINISHED"}')


CURL = {"Content-type": "application/json"}


def test_rest_test_payloads_are_stored(server, sql):
    with httpx.Client(base_url=server) as http:
        answer = http.post("/pde/dataflow/json", content=rest_dataflow(), headers=CURL)
        assert answer.status_code == 200, answer.text
        execs = set()
        for i in range(1, NUM_MSG + 1):
            answer = http.post("/pde/task/json", content=rest_task(i), headers=CURL)
            assert answer.status_code == 200, answer.text
            found = answer.json()
            execs.add(found["exec"])
            assert any("names no execution" in w for w in found["warnings"])
    [exec_tag] = execs  # the server opened one execution for the dataflow
    assert exec_tag.startswith("uq_rtm-")
    rows = sql("SELECT t.identifier, t.sub_id, t.status, t.workspace, t.computing_resource, "
               "t.pid FROM task t WHERE t.df_exec = ? ORDER BY t.identifier", exec_tag)
    assert rows == [(i, str(i), "finished", "/home/luciano/Desktop/pg", "local", None)
                    for i in range(1, NUM_MSG + 1)]
    assert sql("SELECT vmid, dimension, level FROM uq_rtm__sparsegridinput") == \
        [(1.0, 8.0, 1.0)] * NUM_MSG
    assert sql("SELECT vmid, dimension, level, region, weights, points "
               "FROM uq_rtm__sparsegridoutput") == [(1.0, 8.0, 1.0, "r", "w", "p")] * NUM_MSG
    # the transformation's program, once per execution (the original's program/use_program)
    assert sql("SELECT name, path FROM uq_rtm__program") == [
        ("SparseGrid", "./bin/sparse_grid_cc_dataset")]
    assert sql("SELECT status, pid FROM dataflow_execution WHERE tag = ?", exec_tag) == [
        ("running", None)]


# -- the original client's payloads (see the module's docstring) ------------------------------
def client_task(tid: int, transformation: str, status: str, *, df: str, exec_tag: str,
                sets=(), deps=(), begun: bool = True, email: str = "") -> dict:
    body = {"tag": transformation.lower(), "first": "0", "dataflow": df, "exec": exec_tag,
            "sets": [{"tag": tag.lower(), "elements": [[str(v) for v in e] for e in els]}
                     for tag, els in sets][-1:],  # add_dataset keeps the last one only
            "status": status, "transformation": transformation.lower(), "id": str(tid)}
    if email:
        body["email"] = email
    if status == "RUNNING" and tid == 1:
        body["first"] = "1"
        body["hardware"] = json.dumps({"hostname": "client-host", "os": "Linux",
                                       "gpus": "Not available", "in_container": False})
    if deps:
        body["dependency"] = {"tags": [{"tag": t.lower()} for t, _ in deps],
                              "ids": [{"id": str(i)} for _, i in deps]}
    if status == "FINISHED":
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        body["performances"] = [{"startTime": now, "endTime": now} if begun
                                else {"endTime": now}]
    if not body["sets"]:
        del body["sets"]
    return body


def predefined_dataflow(tag: str) -> dict:
    """``Dataflow(tag, predefined=True).get_specification()`` (dataflow.py 60-150)."""
    ds = {"iinputdataset": [("DATASET_NAME", "TEXT"), ("DATASET_SOURCE", "TEXT")],
          "oloaddata": [("DATASET_DIR", "FILE")], "ifilter": [("FILTER_TYPE", "TEXT")],
          "ofilter": [("PP_DATASET", "FILE")],
          "isplitconfig": [("TRAIN_SIZE", "NUMERIC"), ("VAL_SIZE", "NUMERIC"),
                           ("TEST_SIZE", "NUMERIC")],
          "otrainset": [("TrainSetX", "FILE"), ("TrainSetY", "FILE")],
          "ovalset": [("ValSetX", "FILE"), ("ValSetY", "FILE")],
          "otestset": [("TestSetX", "FILE"), ("TestSetY", "FILE")],
          "itrain": [("OPTIMIZER_NAME", "TEXT"), ("LEARNING_RATE", "NUMERIC"),
                     ("NUM_EPOCHS", "NUMERIC"), ("BATCH_SIZE", "NUMERIC"),
                     ("NUM_LAYERS", "NUMERIC")],
          "otrain": [("TIMESTAMP", "TEXT"), ("ELAPSED_TIME", "TEXT"), ("LOSS", "NUMERIC"),
                     ("ACCURACY", "NUMERIC"), ("VAL_LOSS", "NUMERIC"),
                     ("VAL_ACCURACY", "NUMERIC"), ("EPOCH", "NUMERIC")],
          "otrainedmodel": [("MODEL_NAME", "TEXT"), ("MODEL_DIR", "FILE")],
          "oweights": [("WEIGHTS_PATH", "FILE")], "otest": [("LOSS", "NUMERIC"),
                                                           ("ACCURACY", "NUMERIC")]}

    def s(tag, kind, dependency=""):
        body = {"tag": tag, "type": kind,
                "attributes": [{"name": n, "type": t} for n, t in ds[tag]]}
        if dependency:
            body["dependency"] = dependency
        return body

    return {"tag": tag, "transformations": [
        {"tag": "loaddata", "sets": [s("iinputdataset", "INPUT"), s("oloaddata", "OUTPUT")]},
        {"tag": "applyfilter", "sets": [s("ifilter", "INPUT"),
                                        s("oloaddata", "INPUT", "loaddata"),
                                        s("ofilter", "OUTPUT")]},
        {"tag": "splitdata", "sets": [s("ofilter", "INPUT", "applyfilter"),
                                      s("isplitconfig", "INPUT"), s("otrainset", "OUTPUT"),
                                      s("ovalset", "OUTPUT"), s("otestset", "OUTPUT")]},
        {"tag": "train", "sets": [s("otrainset", "INPUT", "splitdata"),
                                  s("ovalset", "INPUT", "splitdata"), s("itrain", "INPUT"),
                                  s("otrain", "OUTPUT"), s("otrainedmodel", "OUTPUT"),
                                  s("oweights", "OUTPUT")]},
        {"tag": "test", "sets": [s("otestset", "INPUT", "splitdata"),
                                 s("otrainedmodel", "INPUT", "train"), s("otest", "OUTPUT")]}]}


def mnist_torch_posts(df: str, exec_tag: str, epochs: int = 2) -> list[dict]:
    """What Example/mnist-torch.py posts, in order (lines 58-214)."""
    t = lambda *a, **k: client_task(*a, df=df, exec_tag=exec_tag, **k)  # noqa: E731
    posts = [t(1, "LoadData", "RUNNING", sets=[("iInputDataset", [["EMNIST", "https://x"]])]),
             t(1, "LoadData", "FINISHED", sets=[("oLoadData", [["/w/./data/EMNIST/raw"]])]),
             # RandomHorizontal and Normalize: not in the predefined dataflow; end() only
             t(2, "RandomHorizontal", "FINISHED", deps=[("loaddata", 1)], begun=False,
               sets=[("oRandomHorizontal", [["/w/data"]])]),
             t(3, "Normalize", "FINISHED", deps=[("randomhorizontal", 2)], begun=False,
               sets=[("oNormalize", [["/w/data"]])]),
             t(4, "SplitData", "RUNNING", deps=[("normalize", 3)],
               sets=[("iSplitConfig", [["900", "100", "200"]])]),
             # one value (a batch size) for the two attributes of each split set
             t(4, "SplitData", "RUNNING", deps=[("normalize", 3)], sets=[("oTrainSet", [[64]])]),
             t(4, "SplitData", "RUNNING", deps=[("normalize", 3)], sets=[("oValSet", [[64]])]),
             t(4, "SplitData", "FINISHED", deps=[("normalize", 3)], sets=[("oTestSet", [[64]])]),
             t(5, "Train", "RUNNING", deps=[("splitdata", 4)],
               sets=[("iTrain", [["Adam", 0.001, epochs, 64, 4]])])]
    for epoch in range(epochs):
        posts.append(t(5, "Train", "RUNNING", deps=[("splitdata", 4)], sets=[("oTrain", [[
            "2025-01-01 10:00:00", 1.5, 0.9 - epoch / 10, 0.7, 0.8, 0.6, epoch + 1]])]))
    posts += [t(5, "Train", "FINISHED", deps=[("splitdata", 4)],
                sets=[("oTrainedModel", [["modelv1.pth", "/w/modelv1.pth"]])]),
              t(6, "Test", "RUNNING", deps=[("splitdata", 4), ("train", 5)]),
              t(6, "Test", "FINISHED", deps=[("splitdata", 4), ("train", 5)],
                sets=[("oTest", [[0.5, 80.0]])])]
    return posts


def test_mnist_torch_through_the_default_url_stores_every_element_once(server, store_path, sql):
    exec_tag = "example-" + str(datetime.now())
    default_url = server + "/"  # DFA_URL's default ends in "/": the client posts to //pde/...
    posts = mnist_torch_posts("example", exec_tag)
    warnings = []
    with httpx.Client() as http:
        answer = http.post(default_url + "/pde/dataflow/json", json=predefined_dataflow("example"))
        assert answer.status_code == 200, answer.text
        for body in posts:
            answer = http.post(default_url + "/pde/task/json", json=body)
            assert answer.status_code == 200, (body, answer.text)
            assert answer.json()["exec"] == exec_tag
            warnings += answer.json()["warnings"]
    assert any("no transformation 'randomhorizontal'" in w for w in warnings)
    assert any("no set 'orandomhorizontal'" in w for w in warnings)
    assert any("without a start time" in w for w in warnings)
    assert any("'otrainset' has 2 attributes" in w for w in warnings)
    ids = dict(sql("SELECT identifier, id FROM task WHERE df_exec = ?", exec_tag))
    assert sorted(ids) == [1, 2, 3, 4, 5, 6]
    assert sql("SELECT status FROM task WHERE df_exec = ?", exec_tag) == [("finished",)] * 6
    counts = {tag: sql(f"SELECT count(*) FROM example__{tag}")[0][0] for tag in (
        "iinputdataset", "oloaddata", "orandomhorizontal", "onormalize", "isplitconfig",
        "otrainset", "ovalset", "otestset", "itrain", "otrain", "otrainedmodel", "otest")}
    assert counts == {"iinputdataset": 1, "oloaddata": 1, "orandomhorizontal": 1,
                      "onormalize": 1, "isplitconfig": 1, "otrainset": 1, "ovalset": 1,
                      "otestset": 1, "itrain": 1, "otrain": 2, "otrainedmodel": 1, "otest": 1}
    assert sql("SELECT trainsetx, trainsety FROM example__otrainset") == [("64", None)]
    assert set(sql("SELECT task_id, depends_on_id FROM task_dependency")) == {
        (ids[2], ids[1]), (ids[3], ids[2]), (ids[4], ids[3]), (ids[5], ids[4]),
        (ids[6], ids[4]), (ids[6], ids[5])}
    # the end-only task: start = end, and the warning kept with it for `dlprov tasks`
    assert sql("SELECT start_time = end_time FROM task WHERE id = ?", ids[2]) == [(1,)]
    shown = {row["identifier"]: row["warnings"] or "" for row in list_tasks(exec_tag, store_path)}
    assert "without a start time" in shown[2]
    assert "no transformation 'randomhorizontal'" in shown[2]
    # the run is the client's: its host from the hardware JSON, no pid, open
    assert sql("SELECT hostname, pid, status FROM dataflow_execution WHERE tag = ?",
               exec_tag) == [("client-host", None, "running")]


def test_extra_values_and_unresolved_dependencies_are_kept(server, store_path, sql):
    exec_tag = "extra-1"
    with httpx.Client(base_url=server) as http:
        assert http.post("/pde/dataflow/json",
                         json=predefined_dataflow("extra")).status_code == 200
        body = client_task(1, "Test", "FINISHED", df="extra", exec_tag=exec_tag,
                           deps=[("train", 99)], sets=[("oTest", [[0.5, 80.0, "more", 7]])])
        answer = http.post("/pde/task/json", json=body)
        assert answer.status_code == 200, answer.text
        assert any("unresolved" in w for w in answer.json()["warnings"])
    assert sql("SELECT loss, accuracy, dlprov_extra FROM extra__otest") == [
        (0.5, 80.0, json.dumps({"extra": ["more", "7"]}))]
    [(output,)] = sql("SELECT output_msg FROM task WHERE df_exec = ?", exec_tag)
    assert "unresolved" in output and "task 99" in output
    result = CliRunner().invoke(cli, ["--store", str(store_path), "tasks", exec_tag, "--format", "json"])
    [row] = json.loads(result.output)
    assert "task 99" in row["warnings"] and "unresolved" in row["warnings"]


def test_client_runs_stay_open_and_go_on_after_a_restart(store_path, sql, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    exec_tag = "alexnet-restart"
    t = lambda *a, **k: client_task(*a, df="alexnet", exec_tag=exec_tag,  # noqa: E731
                                    email="bob@fictional.com", **k)
    with serve_in_thread(str(store_path)) as url:
        assert httpx.post(url + "/pde/dataflow/json",
                          json=predefined_dataflow("alexnet")).status_code == 200
        for body in (t(1, "LoadData", "RUNNING", sets=[("iInputDataset", [["f17", "http://x"]])]),
                     t(1, "LoadData", "FINISHED", sets=[("oLoadData", [["/raw"]])]),
                     t(2, "ApplyFilter", "RUNNING", deps=[("loaddata", 1)],
                       sets=[("iFilter", [["gray"]])])):
            assert httpx.post(url + "/pde/task/json", json=body).status_code == 200
    assert sql("SELECT status, end_time, username, hostname FROM dataflow_execution") == [
        ("running", None, "bob@fictional.com", "client-host")]
    assert sql("SELECT identifier, status FROM task ORDER BY identifier") == [
        (1, "finished"), (2, "running")]
    with serve_in_thread(str(store_path)) as url:  # the dataflow is not posted again
        for body in (t(2, "ApplyFilter", "FINISHED", deps=[("loaddata", 1)],
                       sets=[("oFilter", [["/gray"]])]),
                     t(3, "SplitData", "RUNNING", deps=[("applyfilter", 2)],
                       sets=[("iSplitConfig", [[0.8, 0.1, 0.1]])])):
            answer = httpx.post(url + "/pde/task/json", json=body)
            assert answer.status_code == 200, answer.text
    ids = dict(sql("SELECT identifier, id FROM task"))
    assert sorted(ids) == [1, 2, 3]
    assert sql("SELECT identifier, status FROM task ORDER BY identifier") == [
        (1, "finished"), (2, "finished"), (3, "running")]
    assert sql("SELECT pp_dataset FROM alexnet__ofilter") == [("/gray",)]
    assert sql("SELECT splitdata_task_id FROM alexnet__ofilter") == [(ids[3],)]
    assert set(sql("SELECT task_id, depends_on_id FROM task_dependency")) == {
        (ids[2], ids[1]), (ids[3], ids[2])}
    assert sql("SELECT count(*), min(status) FROM dataflow_execution") == [(1, "running")]
