"""Hostile payloads get a 4xx with a message, never a 500, and store nothing."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dlprov.errors import DlprovError
from dlprov.server.app import check_bind, create_app

DATAFLOW = {"tag": "tiny", "transformations": [{"tag": "train", "sets": [
    {"tag": "otrain", "type": "OUTPUT",
     "attributes": [{"name": "LOSS", "type": "NUMERIC"}, {"name": "NOTE", "type": "TEXT"}]}]}]}


@pytest.fixture
def client(store_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with TestClient(create_app(str(store_path)), base_url="http://localhost",
                    raise_server_exceptions=False) as found:
        assert found.post("/pde/dataflow/json", json=DATAFLOW).status_code == 200
        yield found


def _task(**changes):
    body = {"id": "1", "first": "1", "exec": "tiny-1", "dataflow": "tiny",
            "transformation": "train", "status": "RUNNING",
            "sets": [{"tag": "otrain", "elements": [["0.5", "ok"]]}]}
    body.update(changes)
    return body


@pytest.mark.parametrize("path, body", [
    ("/pde/dataflow/json", {"tag": 5}),
    ("/pde/dataflow/json", {"transformations": []}),
    ("/pde/dataflow/json", {"tag": "bad name; drop", "transformations": []}),
    ("/pde/dataflow/json", {"tag": "x" * 10_000, "transformations": []}),
    ("/pde/dataflow/json", {"tag": "t", "transformations": [{"tag": "a", "sets": [
        {"tag": "s", "type": "SIDEWAYS", "attributes": []}]}]}),
    ("/pde/dataflow/json", {"tag": "t", "transformations": [{"tag": "a", "sets": [
        {"tag": "s", "attributes": [{"name": "x", "type": "BLOB"}]}]}]}),
    ("/pde/task/json", _task(id="one")),
    ("/pde/task/json", _task(id=["1"])),
    ("/pde/task/json", {"id": "1"}),
    # (an unknown set and a wrong number of values are stored, with a warning: see
    # tests/server/test_original_client.py)
    ("/pde/task/json", _task(sets=[{"tag": "otrain", "elements": [["high", "x"]]}])),
    ("/pde/task/json", _task(sets=[{"tag": "otrain", "elements": [[{"a": 1}, "x"]]}])),
    ("/pde/task/json", _task(sets=[{"tag": "otrain", "elements": [["1", "x" * 200_000]]}])),
    ("/pde/task/json", _task(transformation="../../etc")),
    ("/pde/task/json", _task(status="EXPLODED")),
    ("/pde/task/json", _task(hardware="{not json")),
    ("/pde/task/json", _task(performances=[{"startTime": "yesterday", "endTime": 3}])),
    ("/v1/batch", {"records": 1}),
    ("/v1/batch", [["no-such-kind", "k", {}]]),
    ("/v1/batch", [["exec_end", "k"]]),
    ("/v1/batch", [["element", "no-task", "otrain", {"loss": 1}]]),
    ("/v1/applied", {"ids": "x"}),
])
def test_hostile_payload_is_refused_and_stores_nothing(client, sql, path, body):
    answer = client.post(path, json=body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["detail"]
    tables = {row[0] for row in sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "task" not in tables or sql("SELECT count(*) FROM task") == [(0,)]


def test_not_json_and_unknown_reads(client):
    assert client.post("/v1/batch", content=b"\xff{",
                       headers={"content-type": "application/json"}).status_code == 400
    assert client.post("/pde/task/json", json=_task()).status_code == 200
    assert client.get("/v1/runs/nope/tasks").status_code == 404
    assert client.get("/v1/dataflows/nope/spec").status_code == 404
    assert client.get("/v1/sets/tiny/nosuchset").status_code == 404
    assert client.get("/v1/sets/tiny/otrain", params={"limit": -1}).status_code == 422
    assert client.get("/v1/query/q99").status_code == 400
    assert client.get("/health").json()["status"] == "ok"
    assert "/pde/task/json" in client.get("/openapi.json").json()["paths"]


def test_a_good_task_after_bad_ones_is_stored(client, sql):
    assert client.post("/pde/task/json", json=_task(status="EXPLODED")).status_code == 400
    answer = client.post("/pde/task/json", json=_task(status="FINISHED"))
    assert answer.status_code == 200, answer.text
    assert sql("SELECT loss, note FROM tiny__otrain") == [(0.5, "ok")]


def test_token_is_required_when_given(store_path):
    with TestClient(create_app(str(store_path), token="s3cret"),
                    base_url="http://localhost") as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/openapi.json",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/openapi.json",
                          headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_binding_beyond_loopback_needs_a_token():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(DlprovError, match="--token"):
        check_bind("0.0.0.0", None)


def test_serve_refuses_a_public_bind_without_token(store_path):
    from click.testing import CliRunner

    from dlprov.cli.main import cli
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], env={"DLPROV_TOKEN": ""})
    assert result.exit_code == 1
    assert "--token" in result.output
