"""``dlprov metrics`` and ``dlprov query q3…q6 --metric/--mode/--set`` through click's runner,
on SQLite, the PostgreSQL server and a ``dlprov serve`` server (``http://``)."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from tests.conftest import postgresql_home

VAL_ACC = {"run-a": (0.5, 0.7, 0.8), "run-b": (0.6, 0.9, 0.75)}
TEST_ACC = {"run-a": 0.85, "run-b": 0.8}


def _fill(store: str, df_tag: str) -> None:
    for name, accuracies in VAL_ACC.items():
        with dlprov.run(df_tag, store=store, exec_tag=f"{df_tag}-{name}",
                        capture_environment=False) as run:
            with run.task("train") as train:
                train.input("itrain", learning_rate=0.01 if name == "run-a" else 0.1)
                for epoch, acc in enumerate(accuracies):
                    train.output("otrain", epoch=epoch, val_acc=acc, val_loss=1 - acc)
                    for step in range(2):
                        train.output("otrainbatch", epoch=epoch, step=epoch * 2 + step,
                                     loss=1.5 - acc - step / 10)
            with run.task("test", depends_on=train) as test:
                test.output("otest", test_acc=TEST_ACC[name], test_loss=1 - TEST_ACC[name])


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, store_path, monkeypatch):
    """(store URL, dataflow) with the two runs; ``$DLPROV_STORE`` names it."""
    if request.param == "sqlite":
        _fill(str(store_path), "kexp")
        yield str(store_path), "kexp"
        return
    with postgresql_home("mcli") as (url, home):
        monkeypatch.setenv("DLPROV_STORE", url)
        _fill(url, f"{home}_df")
        yield url, f"{home}_df"


def _ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _fails(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0
    return result.output


def test_metrics_table_has_a_sparkline_per_metric(store):
    _, df_tag = store
    output = _ok("metrics", f"{df_tag}-run-b")
    assert f"run {df_tag}-run-b · dataflow {df_tag} · set otrain · 3 points by epoch" in output
    assert re.search(r"val_acc   ▁█[▄▅]  first 0.6 → last 0.75, max 0.9 \(epoch 1\)", output)
    assert re.search(r"val_loss  █▁[▄▅]  first 0.4 → last 0.25, min 0.1 \(epoch 1\)", output)


def test_metrics_csv_and_json_print_integers_as_integers(store):
    _, df_tag = store
    header, *rows = csv.reader(io.StringIO(_ok("metrics", f"{df_tag}-run-a", "--format", "csv")))
    assert header == ["task_id", "epoch", "val_acc", "val_loss"]
    assert [r[1] for r in rows] == ["0", "1", "2"]
    assert [float(r[2]) for r in rows] == list(VAL_ACC["run-a"])
    records = json.loads(_ok("metrics", f"{df_tag}-run-a", "--set", "otrainbatch",
                             "--format", "json"))
    assert [(r["step"], r["epoch"]) for r in records] == [(s, s // 2) for s in range(6)]
    assert all(type(r["step"]) is int and type(r["loss"]) is float for r in records)


def test_metrics_per_batch_table_and_plots(store, tmp_path):
    _, df_tag = store
    png, svg = tmp_path / "curves.png", tmp_path / "curves.svg"
    output = _ok("metrics", f"{df_tag}-run-a", "--set", "otrainbatch", "--plot", str(png))
    assert "6 points by step" in output and "loss  " in output and "(step 5)" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _ok("metrics", f"{df_tag}-run-a", "--plot", str(svg), "--format", "csv")
    assert b"<svg" in svg.read_bytes()[:500]


def test_metrics_errors_are_one_line(store, tmp_path):
    _, df_tag = store
    assert "error: no execution 'nope' in the store" in _fails("metrics", "nope")
    assert "no set 'itrain' with numbers" not in _ok("metrics", f"{df_tag}-run-a", "--set",
                                                     "itrain")  # itrain has numbers: lr
    output = _fails("metrics", f"{df_tag}-run-a", "--set", "otrainx")
    assert "error: run" in output and "sets with numbers: itrain, otrain, otrainbatch" in output
    assert "must end in .png or .svg" in _fails("metrics", f"{df_tag}-run-a", "--plot",
                                                str(tmp_path / "x.pdf"))


def test_questions_take_metric_mode_and_set(store):
    _, df_tag = store
    [row] = json.loads(_ok("query", "q4", "--metric", "val_acc", "--format", "json"))
    assert (row["exec_tag"], row["last_val_acc"]) == (f"{df_tag}-run-a", 0.8)
    [row] = json.loads(_ok("query", "q4", "--metric", "test_acc", "--mode", "max",
                           "--format", "json"))
    assert (row["exec_tag"], row["test_test_acc"]) == (f"{df_tag}-run-a", 0.85)
    [row] = json.loads(_ok("query", "q3", "--metric", "val_acc", "--set", "otrain",
                           "--format", "json"))
    assert row["exec_tag"] == f"{df_tag}-run-b"  # the best average, not the best last
    [row] = json.loads(_ok("query", "q3", "--metric", "val_loss", "--mode", "min",
                           "--format", "json"))
    assert row["exec_tag"] == f"{df_tag}-run-b"
    rows = json.loads(_ok("query", "q5", "--metric", "test_loss", "--format", "json"))
    assert {r["exec_tag"] for r in rows} == {f"{df_tag}-run-a"}
    assert json.loads(_ok("query", "q6", "--training-set", "nothing.npz", "--metric",
                          "test_acc", "--format", "json")) == []  # no training used such data
    sql = _ok("query", "q4", "--metric", "val_acc", "--mode", "min", "--sql")
    assert "-- metric: val_acc of set otrain (last value per training), best = min" in sql
    assert "MIN(last_val_acc)" in sql


def test_unknown_metric_and_impossible_learning_rates_are_refused(store):
    output = _fails("query", "q4", "--metric", "top5")
    assert "error: Q4: no metric 'top5' in dataflow" in output
    assert "otrain: val_acc, val_loss; otrainbatch: loss; otest: test_acc, test_loss" in output
    assert output.count("\n") == 1
    output = _fails("query", "q4")
    assert "needs attribute(s) accuracy of set 'otest'" in output and "--metric" in output
    for value in ("inf", "nan", "-0.1", "-inf"):
        output = _fails("query", "q1", "--learning-rate", value)
        assert output.startswith("error: Q1: learning_rate must be a finite, non-negative "
                                 "number") and output.count("\n") == 1
    assert "Invalid value for '--mode'" in _fails("query", "q4", "--metric", "val_acc",
                                                  "--mode", "best")


def test_metrics_over_a_server_store(store_path, monkeypatch):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from dlprov.server.background import serve_in_thread
    _fill(str(store_path), "kexp")
    local = _ok("metrics", "kexp-run-a", "--set", "otrainbatch", "--format", "json")
    with serve_in_thread(str(store_path)) as url:
        monkeypatch.setenv("DLPROV_STORE", url)
        assert _ok("metrics", "kexp-run-a", "--set", "otrainbatch", "--format", "json") == local
        output = _ok("metrics", "kexp-run-b")
        assert re.search(r"val_acc   ▁█[▄▅]  first 0.6 → last 0.75, max 0.9", output)
        assert "no execution 'nope'" in _fails("metrics", "nope")
