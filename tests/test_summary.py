"""The metric summary (dlprov.store.summary): kept by the writer in the transaction of the
elements, equal to the elements' aggregates, trusted by readers only while it adds up, and
made for a store that predates it."""
from __future__ import annotations

import math
import sqlite3

import pytest
from sqlalchemy import text

import dlprov
from dlprov.query.runs import runs_table
from dlprov.query.runs_sql import catalogue, select_page
from dlprov.store.specs import read_spec
from dlprov.store.store import Store
from dlprov.store.summary import figures, summarize_set, trusted
from tests.conftest import store_on

COLUMNS = "task_id, set_tag, attribute, exec_id, n, total, lowest, highest, latest, latest_id"


def record(url: str, runs: int = 3, epochs: int = 6, df_tag: str = "sm") -> None:
    for k in range(runs):
        with dlprov.run(df_tag, store=url, capture_environment=False, exec_tag=f"sm-{k}") as run:
            with run.task("train") as train:
                train.input("itrain", learning_rate=0.1 * (k + 1), optimizer=f"opt{k % 2}")
                for epoch in range(epochs):
                    accuracy = None if epoch == 2 else epoch / 10 + k / 100
                    train.output("otrain", epoch=epoch, loss=1 / (epoch + 1 + k),
                                 accuracy=accuracy)
            with run.task("test", depends_on=[train]) as test:
                test.output("otest", accuracy=0.5 + k / 10)


def stored(store: Store, set_tag: str) -> list[tuple]:
    with store.read() as conn:
        return sorted(tuple(r) for r in conn.execute(text(
            f"SELECT {COLUMNS} FROM metric_summary WHERE set_tag = :s"), {"s": set_tag}))


def same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[:5] == y[:5] and x[9] == y[9]
        for u, v in zip(x[5:9], y[5:9]):
            assert (u is None and v is None) or math.isclose(u, v, rel_tol=1e-12)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    with store_on(request.param, tmp_path, "sm") as found:
        yield found


def test_writer_keeps_the_summary_equal_to_the_elements(url):
    url, df_tag = url
    record(url, df_tag=df_tag)
    store = Store(url)
    with store.read() as conn:
        spec = read_spec(conn, df_tag)[2]
        for set_tag in ("otrain", "otest"):
            assert trusted(conn, spec, set_tag)
            same(stored(store, set_tag), sorted(summarize_set(conn, spec, set_tag)))
    rows = stored(store, "otrain")
    accuracy = [r for r in rows if r[2] == "accuracy"]
    assert [r[4] for r in accuracy] == [5, 5, 5]  # the None left out
    assert accuracy[0][8] == pytest.approx(0.5)  # the latest


def test_sorting_and_filtering_in_sql_match_the_in_memory_table(url):
    url, df_tag = url
    record(url, runs=4, df_tag=df_tag)
    store = Store(url)
    with store.read() as conn:
        found = catalogue(conn)
    assert "otrain.accuracy:best" in found.columns and "itrain.learning_rate" in found.columns
    chosen = select_page(store, found, ["otest.accuracy:last>0.55", "optimizer=opt1"],
                         "otrain.loss:best", 0, 50)
    table = runs_table(store)
    expected = [r for r in table.rows if r["otest.accuracy:last"] > 0.55
                and r["itrain.optimizer"] == "opt1"]
    expected.sort(key=lambda r: r["otrain.loss:best"])
    assert [r["exec_tag"] for r in chosen.rows] == [r["exec_tag"] for r in expected]
    assert chosen.total == 4 and len(chosen.ids) == len(expected) == 2
    for mine, theirs in zip(chosen.rows, expected):
        for column in ("otrain.accuracy:last", "otrain.accuracy:mean", "itrain.learning_rate"):
            assert mine[column] == pytest.approx(theirs[column])


def test_a_summary_that_does_not_add_up_is_not_trusted(tmp_path):
    path = tmp_path / "hand.db"
    record(str(path), runs=2)
    store = Store(str(path))
    with sqlite3.connect(path) as raw:  # an element stored without the writer
        raw.execute("INSERT INTO sm__otrain (train_task_id, epoch, loss, accuracy) "
                    "SELECT train_task_id, 99, 0.001, 0.999 FROM sm__otrain LIMIT 1")
    with store.read() as conn:
        assert not trusted(conn, read_spec(conn, "sm")[2], "otrain")
        found = catalogue(conn)
    best = select_page(store, found, [], "otrain.accuracy:best:desc", 0, 1).rows[0]
    assert best["otrain.accuracy:best"] == pytest.approx(0.999)  # read from the elements


def test_a_store_made_before_the_summary_is_summarized_once(tmp_path):
    path = tmp_path / "old.db"
    record(str(path), runs=2)
    before = stored(Store(str(path)), "otrain")
    Store(str(path)).dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE metric_summary")
    store = Store(str(path))
    store.engine()  # a writer opens it
    same(stored(store, "otrain"), before)


def test_figures_leave_out_what_is_not_a_finite_number():
    assert figures([1.0, 2.0, 3.0]) == (3, 6.0, 1.0, 3.0, 3.0)
    assert figures([1.0, None, float("nan"), float("inf"), 4.0, "x", True]) == (
        2, 5.0, 1.0, 4.0, 4.0)
    assert figures([None, float("nan")]) is None


def test_questions_read_the_summary_and_answer_as_the_elements_do(url):
    """Q2 and Q3 aggregate a training's epochs from the summary while it adds up; the same
    store with the summary cleared (so not trusted) answers the same from the elements."""
    url, df_tag = url
    record(url, runs=3, df_tag=df_tag)
    with dlprov.run(df_tag, store=url, capture_environment=False, exec_tag="sm-timed") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.5, optimizer="opt0")
            for epoch, elapsed in enumerate([1.0, 2.0, 4.5]):
                train.output("otrain", epoch=epoch, loss=0.5, accuracy=0.2,
                             elapsed_time=elapsed)
    store = Store(url)

    def answers() -> tuple[list, list]:
        q2 = sorted(map(tuple, dlprov.query.q2(store=store, dataflow=df_tag).rows))
        q3 = [tuple(r) for r in dlprov.query.q3(store=store, dataflow=df_tag).rows]
        return q2, q3

    with store.read() as conn:
        assert trusted(conn, read_spec(conn, df_tag)[2], "otrain")
    statement = dlprov.query.prepare("q3", store=store, dataflow=df_tag)
    assert "metric_summary" in statement.sql
    from_summary = answers()
    with store.engine().begin() as conn:
        conn.execute(text("DELETE FROM metric_summary"))
    assert "metric_summary" not in dlprov.query.prepare("q3", store=store, dataflow=df_tag).sql
    from_elements = answers()
    for ours, theirs in zip(from_summary, from_elements):
        assert len(ours) == len(theirs) and ours
        for row, expected in zip(ours, theirs):
            assert len(row) == len(expected)
            for a, b in zip(row, expected):
                assert a == b or (isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12))
    averaged = {row[3]: row for row in from_elements[0]}
    assert averaged["sm-timed"][-1] == pytest.approx(2.5)
    assert averaged["sm-0"][-1] is None  # no elapsed time recorded: no average


def test_a_batch_of_interleaved_tasks_is_summarized_per_task(url):
    """Two trainings writing to otrain in turn reach the writer in one batch, their rows
    interleaved in the set's buffer: each task's figures and newest element are its own."""
    url, df_tag = url
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        first, second = run.task("train"), run.task("train")
        with first, second:
            for epoch in range(5):
                first.output("otrain", epoch=epoch, loss=1.0 + epoch, accuracy=epoch / 10)
                second.output("otrain", epoch=epoch, loss=2.0 * epoch, accuracy=None
                              if epoch == 4 else 0.5 + epoch / 10)
    store = Store(url)
    with store.read() as conn:
        spec = read_spec(conn, df_tag)[2]
        assert trusted(conn, spec, "otrain")
        same(stored(store, "otrain"), sorted(summarize_set(conn, spec, "otrain")))
    latest = {row[0]: row[8] for row in stored(store, "otrain") if row[2] == "accuracy"}
    assert sorted(latest.values()) == [pytest.approx(0.4), pytest.approx(0.8)]
