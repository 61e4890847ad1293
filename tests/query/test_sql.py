"""Read-only SQL over a store: namespaces, Listing 4, refusal of writes."""
from __future__ import annotations

import pytest

import dlprov
from dlprov.demo.workflow import LISTING_4


def capture(df_tag: str, accuracies: dict[float, list[float]]) -> None:
    for learning_rate, per_epoch in accuracies.items():
        with dlprov.run(df_tag) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=learning_rate)
                for epoch, accuracy in enumerate(per_epoch, 1):
                    train.output("otrain", epoch=epoch, accuracy=accuracy, loss=1 - accuracy)


def test_listing_4_returns_the_best_average(store_path):
    capture("mnist", {0.1: [0.5, 0.7], 0.01: [0.6, 0.9], 0.001: [0.2, 0.95]})
    result = dlprov.sql(LISTING_4)
    assert result.columns == ["id", "train_task_id", "optimizer_name", "learning_rate",
                              "avg_accuracy"]
    [best] = result.records()
    assert best["learning_rate"] == 0.01
    assert best["avg_accuracy"] == pytest.approx(0.75)


def test_bare_names_resolve_to_the_chosen_dataflow(store_path):
    capture("first", {0.1: [0.5]})
    capture("second", {0.2: [0.6], 0.3: [0.7]})
    # default: the most recent dataflow
    assert dlprov.sql("SELECT count(*) FROM itrain").rows == [(2,)]
    assert dlprov.sql("SELECT learning_rate FROM itrain", dataflow="first").rows == [(0.1,)]
    with pytest.raises(dlprov.NotFound, match="no dataflow 'third'.*first"):
        dlprov.sql("SELECT 1", dataflow="third")


def test_core_tables_join_with_set_tables(store_path):
    capture("mnist", {0.1: [0.5, 0.6]})
    rows = dlprov.sql("""
        SELECT e.status, t.status, count(*) FROM otrain o
        JOIN task t ON t.id = o.train_task_id
        JOIN dataflow_execution e ON e.tag = t.df_exec
        GROUP BY e.status, t.status""").rows
    assert rows == [("finished", "finished", 2)]


@pytest.mark.parametrize("statement", [
    "DELETE FROM otrain",
    "DELETE FROM task",
    "UPDATE mnist__otrain SET loss = 0",
    "INSERT INTO dataflow(tag) VALUES ('x')",
    "DROP TABLE task",
    "CREATE TABLE evil(a)",
    "PRAGMA journal_mode = DELETE",
    "ATTACH DATABASE 'other.db' AS other",
])
def test_writes_are_refused_and_change_nothing(store_path, sql, statement):
    capture("mnist", {0.1: [0.5, 0.6]})
    before = sql("SELECT count(*) FROM mnist__otrain")
    with pytest.raises(dlprov.ReadOnlyViolation, match="read-only"):
        dlprov.sql(statement)
    assert sql("SELECT count(*) FROM mnist__otrain") == before
    assert sql("SELECT count(*) FROM task") == [(1,)]


def test_bad_sql_is_a_clear_error(store_path):
    capture("mnist", {0.1: [0.5]})
    with pytest.raises(dlprov.DlprovError, match="no such table: nope"):
        dlprov.sql("SELECT * FROM nope")
    with pytest.raises(dlprov.DlprovError, match="one statement"):
        dlprov.sql("SELECT 1; SELECT 2")


def test_empty_store_says_what_to_do(store_path):
    with pytest.raises(dlprov.StoreUnavailable, match="no store"):
        dlprov.sql("SELECT 1")
