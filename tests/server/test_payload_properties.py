"""Random and hostile payloads to ``dlprov serve`` (hypothesis): a legal DfAnalyzer dataflow and
task are answered 2xx and stored exactly, read back with SQL; a mutated one is answered 2xx or
refused with a 4xx and a message, never a 500, and a refusal leaves the store as it was. The
same holds for the batch endpoint of remote capture.

One server (FastAPI's TestClient) over one real SQLite store per test; each example uses its own
dataflow and exec tags, so examples never see each other's rows.
"""
from __future__ import annotations

import json
import math
import sqlite3
from itertools import count
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dlprov.errors import NameRejected  # noqa: E402
from dlprov.model.names import check_name  # noqa: E402
from dlprov.recorder.recorder import recorder_for  # noqa: E402
from dlprov.server.app import create_app  # noqa: E402

# derandomize: the same examples every run, so a failure is reproducible, never flaky
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])

SQL_FRAGMENTS = ["'; DROP TABLE task; --", "'); DELETE FROM dataflow; --", '"', "'", "\\",
                 "NULL", "1 OR 1=1", "%s", "?", ":name", "$1", "/* */", "\x00"]
MAX_VALUE = 100_000  # the longest value a DataSet may carry (dfanalyzer.DataSetIn)


# -- legal payloads ---------------------------------------------------------------------------
def _legal(kind: str):
    def check(name: str) -> bool:
        try:
            check_name(kind, name)
        except NameRejected:
            return False
        return True
    return check


def names(kind: str):
    """Names the store takes, in any case (the protocol lower-cases them)."""
    return st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True).filter(_legal(kind))


# Legal text holds no NUL: no store can keep it everywhere (dlprov.model.limits refuses it).
short_texts = st.one_of(st.text(max_size=40).filter(lambda t: "\x00" not in t),
                        st.sampled_from([f for f in SQL_FRAGMENTS if f != "\x00"]),
                        st.just("é\u2028\U0001F600 «quoted» \"x\" 'y'"))
texts = st.one_of(short_texts, st.just("x" * MAX_VALUE))
numbers = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.booleans(), st.none(),
                    st.sampled_from(["1.5", " 2 ", "-3e5", "nan", "inf", "None", "null", "",
                                     "NULL "]))
TYPES = {"NUMERIC": "numeric", "numeric": "numeric", "TEXT": "text", "LONG_TEXT": "text",
         "FILE": "file", "RDFILE": "file", "file": "file"}


def _unique(kind: str, size: int):
    return st.lists(names(kind), min_size=1, max_size=size, unique_by=str.lower)


@st.composite
def dataflows(draw) -> dict:
    """A legal dataflow payload: transformations with input or output sets and their
    attributes (no set passed between transformations: those rows are the producer's)."""
    transformations = draw(_unique("transformation", 2))
    set_tags = iter(draw(st.lists(names("set"), min_size=2 * len(transformations),
                                  max_size=2 * len(transformations), unique_by=str.lower)))
    body = []
    for tag in transformations:
        sets = []
        for _ in range(draw(st.integers(1, 2))):
            attributes = [{"name": name, "type": draw(st.sampled_from(sorted(TYPES)))}
                          for name in draw(_unique("attribute", 4))]
            sets.append({"tag": next(set_tags), "type": draw(st.sampled_from(
                ["INPUT", "OUTPUT", "output"])), "attributes": attributes})
        body.append({"tag": tag, "sets": sets})
    return {"tag": "df", "transformations": body}  # the test makes the tag unique


def value_for(kind: str):
    return numbers if kind == "numeric" else st.one_of(texts, numbers)


@st.composite
def tasks(draw, dataflow: dict) -> dict:
    """A legal task payload of one of ``dataflow``'s transformations, with elements for some
    of its sets."""
    transformation = draw(st.sampled_from(dataflow["transformations"]))
    sets = []
    for declared in draw(st.lists(st.sampled_from(transformation["sets"]), max_size=2,
                                  unique_by=lambda s: s["tag"])):
        kinds = [TYPES[a["type"]] for a in declared["attributes"]]
        elements = draw(st.lists(st.tuples(*map(value_for, kinds)).map(list), max_size=3))
        sets.append({"tag": declared["tag"], "elements": elements})
    return {"id": draw(st.one_of(st.integers(1, 2 ** 31 - 1), st.integers(1, 999).map(str))),
            "exec": "exec",  # the test makes it unique
            "dataflow": dataflow["tag"], "transformation": transformation["tag"],
            "status": draw(st.sampled_from(["RUNNING", "FINISHED", "finished", "FAILED"])),
            "workspace": draw(st.one_of(st.none(), short_texts)),
            "output": draw(st.one_of(st.none(), texts)),
            "email": draw(st.one_of(st.none(), st.emails())),
            "sub": draw(st.one_of(st.none(), st.text(min_size=1, max_size=10).filter(
                lambda t: "\x00" not in t))),
            "sets": sets}


def expected(kind: str, value: Any) -> Any:
    """What the store holds for ``value`` in an attribute of ``kind``: the original sent
    every value as text, so numbers may come as text and text as numbers."""
    if value is None:
        return None
    if kind != "numeric":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        if value.strip().lower() in ("", "none", "null"):
            return None
        value = float(value)
    value = float(value)
    return None if math.isnan(value) else value  # SQLite has no NaN: NULL


# -- helpers ----------------------------------------------------------------------------------
def post(client: TestClient, path: str, body: Any):
    """POST ``body`` as Python's json writes it (NaN and Infinity included)."""
    return client.post(path, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"})


def dump(store_path: Path) -> dict[str, list]:
    """Every row of every table that has rows (an empty table is no stored data)."""
    with sqlite3.connect(store_path) as conn:
        tables = [t for t, in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    return {t: found for t, found in rows.items() if found}


@pytest.fixture
def client(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    app = create_app(str(store_path))
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as found:
        found.settled = lambda: recorder_for(app.state.store).flush()  # type: ignore[attr-defined]
        yield found


def settled_dump(client, store_path: Path) -> dict[str, list]:
    """The dump once the store's recorder has written what it holds."""
    client.settled()
    return dump(store_path)


tags = count(1)


def unique(body: dict, field: str, prefix: str) -> str:
    body[field] = f"{prefix}{next(tags)}"
    return body[field]


# -- (a) legal payloads are stored exactly ----------------------------------------------------
@SETTINGS
@given(data=st.data(), dataflow=dataflows())
def test_legal_dataflow_and_task_are_stored_exactly(client, store_path, data, dataflow):
    df_tag = unique(dataflow, "tag", "Df_")
    answer = post(client, "/pde/dataflow/json", dataflow)
    assert answer.status_code == 200, answer.text
    task = data.draw(tasks(dataflow))
    exec_tag = unique(task, "exec", "run'; DROP TABLE task; -- ")
    answer = post(client, "/pde/task/json", task)
    assert answer.status_code == 200, answer.text

    df = df_tag.lower()
    with sqlite3.connect(store_path) as conn:
        [(identifier, status, sub_id, workspace, output, t_tag)] = conn.execute(
            "SELECT t.identifier, t.status, t.sub_id, t.workspace, t.output_msg, d.tag "
            "FROM task t JOIN dataflow_execution e ON e.id = t.exec_id "
            "JOIN data_transformation d ON d.id = t.dt_id WHERE e.tag = ?", (exec_tag,))
        assert identifier == int(task["id"])
        assert t_tag == task["transformation"].lower()
        assert status == {"RUNNING": "running", "FAILED": "failed"}.get(
            task["status"].upper(), "finished")
        assert sub_id == (str(task["sub"]) if task["sub"] else None)
        if task["workspace"]:  # else the run's workspace, as a script's own
            assert workspace == task["workspace"]
        if status == "finished":
            assert output == (task["output"] or None)
        declared = {s["tag"].lower(): s for t in dataflow["transformations"] for s in t["sets"]}
        for given_set in task["sets"]:
            attributes = declared[given_set["tag"].lower()]["attributes"]
            columns = ", ".join(f'"{a["name"].lower()}"' for a in attributes)
            rows = conn.execute(f'SELECT {columns} FROM "{df}__{given_set["tag"].lower()}" '
                                f'WHERE "{t_tag}_task_id" = (SELECT t.id FROM task t JOIN '
                                f'dataflow_execution e ON e.id = t.exec_id WHERE e.tag = ?) '
                                f'ORDER BY id', (exec_tag,)).fetchall()
            want = [tuple(expected(TYPES[a["type"]], v) for a, v in zip(attributes, element))
                    for element in given_set["elements"]]
            assert rows == want


# -- (b) hostile payloads: 2xx, or a 4xx with a message and nothing stored --------------------
BASE_DATAFLOW = {"tag": "base", "transformations": [{"tag": "Train", "sets": [
    {"tag": "iTrain", "type": "INPUT", "attributes": [{"name": "LR", "type": "NUMERIC"}]},
    {"tag": "oTrain", "type": "OUTPUT", "attributes": [
        {"name": "LOSS", "type": "NUMERIC"}, {"name": "NOTE", "type": "TEXT"},
        {"name": "PATH", "type": "FILE"}]}]}]}


def base_task() -> dict:
    return {"id": "1", "first": "1", "exec": "x", "dataflow": "base", "transformation": "train",
            "status": "RUNNING", "email": "a@b.c", "workspace": "/w", "sub": "a",
            "hardware": json.dumps({"hostname": "h", "cpu_count": 2}),
            "dependency": {"tags": [], "ids": []},
            "performances": [{"startTime": "2025-01-01 10:00:00",
                              "endTime": "2025-01-01 10:00:01"}],
            "sets": [{"tag": "itrain", "elements": [[0.1]]},
                     {"tag": "otrain", "elements": [["0.5", "ok", "/p"], [1, "x", "/q"]]}]}


junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.just(10 ** 400), st.just(-(2 ** 64)),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf]),
    st.sampled_from(SQL_FRAGMENTS), st.text(max_size=20), st.just("\ud800"),
    st.just("x" * 300_000), st.sampled_from(["", " ", "a b", "1abc", "select", "task",
                                             "_" * 60, "A__B", "train_task_id", "id",
                                             "../../etc", "2025-13-45 99:99:99"]),
    st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3),
                                         st.dictionaries(st.text(max_size=5), inner,
                                                         max_size=3)), max_leaves=8))


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every path into a JSON value, the root included."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*at, i))
    return found


@st.composite
def mutated(draw, body: dict) -> Any:
    """``body`` with one to three random changes: a value replaced by junk, a key dropped or
    added, a value appended to a list (an element's arity), a value wrapped in a list."""
    body = json.loads(json.dumps(body))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(body)))
        if not path:
            return draw(junk)
        *parent_path, last = path
        parent = body
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add", "append", "wrap"]))
        if action == "replace":
            parent[last] = draw(junk)
        elif action == "drop":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(junk)
        elif action == "append" and isinstance(parent[last], list):
            parent[last].append(draw(junk))
        else:
            parent[last] = [parent[last]]
    return body


def check_answer(client, store_path, path: str, body: Any, before: dict) -> bool:
    """A 2xx (True), or a 4xx with a message and the store as ``before`` (False)."""
    answer = post(client, path, body)
    assert answer.status_code < 500, (answer.status_code, answer.text[:2000])
    if answer.status_code < 300:
        return True
    assert 400 <= answer.status_code < 500, answer.text[:2000]
    assert answer.json()["detail"], answer.text[:2000]
    assert settled_dump(client, store_path) == before, (answer.text[:500], body)
    return False


@SETTINGS
@given(data=st.data())
def test_hostile_task_is_refused_with_a_message_and_stores_nothing(client, store_path, data):
    assert post(client, "/pde/dataflow/json", BASE_DATAFLOW).status_code == 200
    body = data.draw(mutated(base_task()))
    if isinstance(body, dict) and isinstance(body.get("exec"), str):
        body["exec"] += f"-{next(tags)}"  # a new execution, unless the mutation broke it
    before = settled_dump(client, store_path)
    check_answer(client, store_path, "/pde/task/json", body, before)


@SETTINGS
@given(data=st.data())
def test_hostile_dataflow_is_refused_with_a_message_and_stores_nothing(client, store_path, data):
    body = data.draw(mutated(BASE_DATAFLOW))
    if isinstance(body, dict) and isinstance(body.get("tag"), str):
        body["tag"] += f"_{next(tags)}"
    before = settled_dump(client, store_path)
    if check_answer(client, store_path, "/pde/dataflow/json", body, before):
        # a dataflow is stored with its first task: the accepted one must take a task
        [transformation] = body["transformations"][:1] or [None]
        if transformation is None or not transformation.get("tag"):
            return
        task = {"id": 1, "exec": f"hx-{next(tags)}", "dataflow": body["tag"],
                "transformation": transformation["tag"], "status": "FINISHED"}
        assert post(client, "/pde/task/json", task).status_code == 200


@SETTINGS
@given(value=junk, kind=st.sampled_from(["loss", "note", "path"]))
def test_any_value_in_an_element_is_stored_exactly_or_refused(client, store_path, value, kind):
    assert post(client, "/pde/dataflow/json", BASE_DATAFLOW).status_code == 200
    element = {"loss": 0.5, "note": "n", "path": "/p"}
    element[kind] = value
    body = base_task()
    exec_tag = unique(body, "exec", "v-")
    body["sets"] = [{"tag": "otrain", "elements": [list(element.values())]}]
    before = settled_dump(client, store_path)
    if not check_answer(client, store_path, "/pde/task/json", body, before):
        return
    with sqlite3.connect(store_path) as conn:
        [row] = conn.execute(
            "SELECT o.loss, o.note, o.path FROM base__otrain o JOIN task t "
            "ON t.id = o.train_task_id JOIN dataflow_execution e ON e.id = t.exec_id "
            "WHERE e.tag = ?", (exec_tag,)).fetchall()
    assert row == (expected("numeric", element["loss"]), expected("text", element["note"]),
                   expected("file", element["path"]))


# -- the batch endpoint of remote capture -----------------------------------------------------
def batch(exec_key: str, exec_tag: str, loss: Any) -> list:
    """What a remote client's recorder sends for a run with one task and one element."""
    stamp = {"$datetime": "2025-01-01T10:00:00"}
    return [["spec", "remote", {"tag": "remote", "transformations": ["train"], "sets": {
                "otrain": [{"name": "loss", "type": "numeric", "allow_nan": False}]},
                "dependencies": [["train", None, "otrain"]]}],
            ["exec_start", exec_key, {"tag": exec_tag, "df_tag": "remote", "start_time": stamp,
                                      "hostname": "h", "pid": 1, "workspace": "/w",
                                      "username": "u"}],
            ["task_start", f"{exec_key}-t", {"exec_key": exec_key, "transformation": "train",
                                             "identifier": 1, "status": "running",
                                             "start_time": stamp, "depends_on": []}],
            ["element", f"{exec_key}-t", "otrain", {"loss": loss}]]


@SETTINGS
@given(data=st.data())
def test_hostile_batch_is_refused_with_a_message_and_stores_nothing(client, store_path, data):
    key = f"k{next(tags)}"
    body = data.draw(mutated(batch(key, f"remote-{key}", 0.5)))
    before = dump(store_path)
    answer = post(client, "/v1/batch", body)
    assert answer.status_code < 500, (answer.status_code, answer.text[:2000])
    if answer.status_code >= 300:
        assert 400 <= answer.status_code < 500 and answer.json()["detail"]
        assert dump(store_path) == before, (answer.text[:500], body)


def test_the_batch_hostile_ones_are_made_from_is_stored(client, store_path):
    answer = post(client, "/v1/batch", batch("k0", "remote-k0", 0.25))
    assert answer.status_code == 200, answer.text
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("SELECT loss FROM remote__otrain").fetchall() == [(0.25,)]
        assert conn.execute("SELECT tag FROM dataflow_execution").fetchall() == [("remote-k0",)]
