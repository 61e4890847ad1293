"""The same capture and SQL on the real PostgreSQL server (skipped only where none answers)."""
from __future__ import annotations

import pytest

import dlprov
from dlprov.demo.workflow import LISTING_4
from tests.conftest import postgresql_home

@pytest.fixture
def pg_store():
    with postgresql_home() as found:
        yield found


def test_capture_and_listing_4_on_postgresql(pg_store):
    url, home = pg_store
    df_tag = f"{home}_df"
    for learning_rate, accuracies in {0.1: [0.5, 0.7], 0.01: [0.8, 0.9]}.items():
        with dlprov.run(df_tag, store=url) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=learning_rate)
                for epoch, accuracy in enumerate(accuracies, 1):
                    train.output("otrain", epoch=epoch, accuracy=accuracy)
            with run.task("test", depends_on=train) as test:
                test.output("otest", accuracy=accuracies[-1])
    [best] = dlprov.sql(LISTING_4, store=url, dataflow=df_tag).records()
    assert best["learning_rate"] == 0.01 and best["avg_accuracy"] == pytest.approx(0.85)
    joined = dlprov.sql("SELECT count(*) FROM otrain JOIN task ON task.id = otrain.test_task_id",
                        store=url, dataflow=df_tag)
    assert joined.rows == [(4,)]
    with pytest.raises(dlprov.ReadOnlyViolation):
        dlprov.sql("DELETE FROM otrain", store=url, dataflow=df_tag)
    assert [r["status"] for r in dlprov.list_runs(url)] == ["finished", "finished"]
