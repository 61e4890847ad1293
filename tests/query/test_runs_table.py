"""The runs table (dlprov.query.runs) over real runs, on SQLite and on the real PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest

import dlprov
from dlprov.capture.annotate import note_run, tag_run
from dlprov.errors import NotFound, QueryError, ValueRejected
from dlprov.query.runs import runs_table, select_runs, shown_columns
from dlprov.store.store import Store
from tests.conftest import postgresql_home

# learning rate -> (training accuracies per epoch, test accuracy, tags)
RUNS = {0.1: ([0.5, 0.7, 0.6], 0.55, {"team": "nlp"}),
        0.01: ([0.6, 0.8, 0.9], 0.85, {"team": "vision", "gpu": "a100"}),
        0.001: ([0.3, 0.4, 0.45], 0.4, {"team": "vision"})}


def fill(store: str, df_tag: str) -> None:
    for lr, (accuracies, test_accuracy, tags) in RUNS.items():
        with dlprov.run(df_tag, exec_tag=f"{df_tag}-lr{lr}", store=store, tags=tags,
                        notes="baseline" if lr == 0.1 else None,
                        capture_environment=False) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=lr)
                for epoch, accuracy in enumerate(accuracies, 1):
                    train.output("otrain", epoch=epoch, loss=1 - accuracy, accuracy=accuracy)
            with run.task("test", depends_on=train) as test:
                test.output("otest", accuracy=test_accuracy)
    with pytest.raises(ValueError):
        with dlprov.run(df_tag, exec_tag=f"{df_tag}-broken", store=store,
                        capture_environment=False) as run:
            with run.task("train"):
                raise ValueError("diverged")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(request, tmp_path_factory):
    """(store, dataflow) filled once per backend; a test that adds tags puts them back."""
    if request.param == "sqlite":
        store, df_tag = str(tmp_path_factory.mktemp("runs") / "runs.db"), "mnist"
        fill(store, df_tag)
        yield store, df_tag
        return
    with postgresql_home("runs") as (url, home):
        fill(url, f"{home}_df")
        yield url, f"{home}_df"
        Store(url).dispose()  # before its schema is dropped; spares the server's connections


def tags_of(rows) -> list[str]:
    return [row["exec_tag"].rsplit("-", 1)[1] for row in rows]


def test_columns_hold_hyperparameters_metrics_and_tags(filled):
    store, df_tag = filled
    table = runs_table(store, df_tag)
    row = {r["exec_tag"]: r for r in table.rows}[f"{df_tag}-lr0.01"]
    assert row["itrain.learning_rate"] == 0.01 and row["itrain.optimizer_name"] == "adam"
    assert row["otrain.accuracy:last"] == 0.9 and row["otrain.accuracy:best"] == 0.9
    assert row["otrain.accuracy:mean"] == pytest.approx((0.6 + 0.8 + 0.9) / 3)
    assert row["otrain.loss:best"] == pytest.approx(0.1)  # a loss is best when lowest
    assert row["otest.accuracy:last"] == 0.85
    assert row["tags"] == {"gpu": "a100", "team": "vision"} and row["tag.team"] == "vision"
    assert row["status"] == "finished" and row["tasks"] == 2
    assert tags_of(table.rows) == ["broken", "lr0.001", "lr0.01", "lr0.1"]  # newest first
    assert {"itrain.learning_rate", "otest.accuracy:last", "tags"} <= set(table.default_columns)


@pytest.mark.parametrize("where, expected", [
    (["learning_rate=0.001"], ["lr0.001"]),
    (["itrain.learning_rate>=0.01"], ["lr0.01", "lr0.1"]),
    (["accuracy>0.5"], ["lr0.01", "lr0.1"]),             # bare name: otest.accuracy:last
    (["otrain.accuracy:best>0.65"], ["lr0.01", "lr0.1"]),
    (["otrain.accuracy:last<0.65"], ["lr0.001", "lr0.1"]),
    (["status=failed"], ["broken"]),
    (["tag.team=vision"], ["lr0.001", "lr0.01"]),
    (["tag.team=vision", "loss:best<0.2"], ["lr0.01"]),
    (["tag.gpu!=a100"], ["broken", "lr0.001", "lr0.1"]),  # no such tag differs from a100
    (["tag.absent=x"], []),
    (["optimizer_name~AD"], ["lr0.001", "lr0.01", "lr0.1"]),
    (["notes~base"], ["lr0.1"]),
])
def test_filters(filled, where, expected):
    store, df_tag = filled
    assert sorted(tags_of(select_runs(runs_table(store, df_tag), where))) == expected


def test_sort_and_limit(filled):
    store, df_tag = filled
    table = runs_table(store, df_tag)
    ranked = select_runs(table, sort="otest.accuracy:desc")
    assert tags_of(ranked) == ["lr0.01", "lr0.1", "lr0.001", "broken"]  # missing value last
    assert tags_of(select_runs(table, sort="learning_rate")) == [
        "lr0.001", "lr0.01", "lr0.1", "broken"]
    assert tags_of(select_runs(table, ["status=finished"], "otrain.loss:mean", limit=1)) == [
        "lr0.01"]


def test_columns_by_short_names(filled):
    store, df_tag = filled
    table = runs_table(store, df_tag)
    assert shown_columns(table, ["exec_tag,learning_rate", "accuracy:best", "otrain.loss"],
                         everything=False) == [
        "exec_tag", "itrain.learning_rate", "otest.accuracy:best", "otrain.loss:last"]
    assert shown_columns(table, ["all"], everything=False) == table.columns
    assert shown_columns(table, (), everything=False) == table.default_columns


@pytest.mark.parametrize("expression, message", [
    ("nosuch=1", "unknown column 'nosuch'; available: id, exec_tag"),
    ("accuracy:worst>1", "unknown aggregate 'worst'"),
    ("accuracy", "bad filter 'accuracy': write COLUMN OP VALUE"),
    ("accuracy>>1", "bad filter"),
    ("accuracy>high", "otest.accuracy:last is a number: 'high' is not one"),
])
def test_bad_expressions_name_the_problem(filled, expression, message):
    store, df_tag = filled
    table = runs_table(store, df_tag)
    with pytest.raises(QueryError, match="^" + message.replace("(", r"\(")):
        select_runs(table, [expression])
    with pytest.raises(QueryError, match="available"):
        select_runs(table, sort="nosuch:desc")


def test_tags_and_notes_added_later(filled):
    store, df_tag = filled
    run = f"{df_tag}-lr0.001"
    assert tag_run(run, {"team": "audio", "stage": "final"}, store=store) == run
    note_run(run, "too slow", store=store)
    note_run(run, "try 0.003", store=store, append=True)
    row = select_runs(runs_table(store, df_tag), ["tag.stage=final"])[0]
    assert row["exec_tag"] == run and row["tags"] == {"stage": "final", "team": "audio"}
    assert row["notes"] == "too slow\ntry 0.003"
    tag_run(row["id"], {"stage": None, "team": "vision"}, store=store)  # by id; None removes
    note_run(run, "", store=store)
    row = select_runs(runs_table(store, df_tag), [f"exec_tag={run}"])[0]
    assert row["tags"] == {"team": "vision"} and row["notes"] == ""


@pytest.mark.parametrize("tags", [{"bad key": "x"}, {"k" * 65: "x"}, {"team": "x" * 1025},
                                  {"team": "a\x00b"}, {"team": ["list"]}, {}])
def test_bad_tags_are_refused_and_nothing_stored(filled, tags):
    store, df_tag = filled
    with pytest.raises(ValueError):
        tag_run(f"{df_tag}-lr0.1", tags, store=store)
    assert runs_table(store, df_tag).rows[-1]["tags"] == {"team": "nlp"}


def test_unknown_run_is_not_found(filled):
    store, _ = filled
    with pytest.raises(NotFound, match="no execution 'nope'"):
        tag_run("nope", {"team": "x"}, store=store)


def test_tags_at_the_start_are_checked_before_anything_is_recorded(tmp_path: Path):
    store = str(tmp_path / "bad.db")
    with pytest.raises(ValueRejected, match="tag key 'a b'"):
        dlprov.run("mnist", store=store, tags={"a b": "x"})
    with pytest.raises(ValueRejected, match="notes must be text"):
        dlprov.run("mnist", store=store, notes=3)
    assert not (tmp_path / "bad.db").exists()  # refused before the store was even opened
