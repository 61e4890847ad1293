"""`dlprov runs`, `dlprov tag` and `dlprov note` through click's runner, on SQLite, PostgreSQL
and a server store (http://)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.store.store import Store
from tests.conftest import postgresql_home
from tests.query.test_runs_table import fill


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path):
    """(store, dataflow) filled with tests.query.test_runs_table's runs."""
    if request.param == "sqlite":
        found = str(tmp_path / "runs.db")
        fill(found, "mnist")
        yield found, "mnist"
        return
    with postgresql_home("runscli") as (url, home):
        fill(url, f"{home}_df")
        yield url, f"{home}_df"
        Store(url).dispose()


def invoke(runner: CliRunner, store: str, *args: str):
    result = runner.invoke(cli, ["--store", store, *args])
    return result


def as_json(runner: CliRunner, store: str, *args: str) -> list[dict]:
    result = invoke(runner, store, "runs", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_filter_sort_limit_columns(runner, store):
    url, df_tag = store
    found = as_json(runner, url, "--dataflow", df_tag, "--where", "tag.team=vision",
                    "--sort", "otest.accuracy:desc", "--columns", "exec_tag,learning_rate",
                    "-c", "otest.accuracy:best")
    assert found == [
        {"exec_tag": f"{df_tag}-lr0.01", "itrain.learning_rate": 0.01, "otest.accuracy:best": 0.85},
        {"exec_tag": f"{df_tag}-lr0.001", "itrain.learning_rate": 0.001,
         "otest.accuracy:best": 0.4}]
    found = as_json(runner, url, "-w", "otrain.accuracy:best>0.65", "-w", "status=finished",
                    "--sort", "learning_rate:desc", "--limit", "1", "-c", "exec_tag")
    assert found == [{"exec_tag": f"{df_tag}-lr0.1"}]
    found = as_json(runner, url, "-w", "status=failed", "-c", "exec_tag,status")
    assert found == [{"exec_tag": f"{df_tag}-broken", "status": "failed"}]


def test_table_is_compact_and_csv_has_every_column(runner, store):
    url, df_tag = store
    table = invoke(runner, url, "runs", "-d", df_tag)
    assert table.exit_code == 0, table.output
    header = table.output.splitlines()[0].split()
    assert header[:2] == ["id", "exec_tag"] and "hostname" not in header
    assert "team=vision" in table.output
    rows = list(csv.DictReader(io.StringIO(invoke(runner, url, "runs", "-d", df_tag,
                                                  "--format", "csv").output)))
    assert len(rows) == 4 and {"hostname", "tag.team", "otrain.loss:mean"} <= set(rows[0])


def test_tag_and_note_later_show_in_runs(runner, store):
    url, df_tag = store
    run = f"{df_tag}-lr0.1"
    result = invoke(runner, url, "tag", run, "stage=final", "team=audio")
    assert result.exit_code == 0 and result.output == f"tagged {run}: stage=final, team=audio\n"
    assert invoke(runner, url, "note", run, "lr too high").exit_code == 0
    assert invoke(runner, url, "note", "--append", run, "retry with 0.05").exit_code == 0
    [row] = as_json(runner, url, "-w", "tag.stage=final", "-c", "exec_tag,tags,notes")
    assert row == {"exec_tag": run, "tags": {"stage": "final", "team": "audio"},
                   "notes": "lr too high\nretry with 0.05"}
    assert invoke(runner, url, "tag", run, "stage=").exit_code == 0  # KEY= removes it
    assert as_json(runner, url, "-w", "tag.stage=final") == []


@pytest.mark.parametrize("args, message", [
    (["runs", "--where", "nosuch=1"], "error: unknown column 'nosuch'; available: id, "),
    (["runs", "--where", "learning_rate"], "error: bad filter 'learning_rate'"),
    (["runs", "--sort", "nosuch:desc"], "error: unknown column 'nosuch'"),
    (["runs", "--columns", "exec_tag,nosuch"], "error: unknown column 'nosuch'"),
    (["tag", "nope", "a=1"], "error: no execution 'nope' in the store"),
    (["tag", "1", "bad key=1"], "error: tag key 'bad key' is not a plain name"),
    (["tag", "1", "team=" + "x" * 1025], "error: tag 'team': the value is longer than 1024"),
])
def test_errors_are_one_line(runner, store, args, message):
    result = invoke(runner, store[0], *args)
    assert result.exit_code == 1
    assert result.output.startswith(message) and result.output.count("\n") == 1, result.output


def test_tag_needs_key_value_pairs(runner, store):
    result = invoke(runner, store[0], "tag", "1", "novalue")
    assert result.exit_code == 2 and "'novalue' is not KEY=VALUE" in result.output


def test_help_tells_the_truth_about_dataflow(runner):
    result = runner.invoke(cli, ["runs", "--help"])
    assert "default: the runs of every dataflow" in " ".join(result.output.split())


def test_runs_over_a_server_store(runner, store_path, monkeypatch):
    pytest.importorskip("fastapi")
    from dlprov.server.background import serve_in_thread
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    fill(str(store_path), "mnist")
    with serve_in_thread(str(store_path)) as url:
        assert invoke(runner, url, "tag", "mnist-lr0.01", "reviewed=yes").exit_code == 0
        found = as_json(runner, url, "-d", "mnist", "-w", "accuracy>0.5",
                        "--sort", "accuracy:desc", "-c", "exec_tag,tag.reviewed,accuracy")
    assert found == [
        {"exec_tag": "mnist-lr0.01", "tag.reviewed": "yes", "otest.accuracy:last": 0.85},
        {"exec_tag": "mnist-lr0.1", "tag.reviewed": None, "otest.accuracy:last": 0.55}]
