"""Q3–Q6 ranked by any metric (``metric``/``mode``/``set_tag``) and a run's curves
(:func:`dlprov.query.metrics.curves`), on stores filled through the real capture API, on SQLite
and on the PostgreSQL server. Expected answers are computed from the definitions below."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

import dlprov
import dlprov.query as q
from dlprov.errors import NotFound, QueryError
from dlprov.query.choice import default_mode
from dlprov.query.metrics import curves, plot, sparkline, summaries
from tests.conftest import postgresql_home


@dataclass(frozen=True)
class Candidate:
    name: str
    learning_rate: float
    val_acc: tuple[float, ...]   # per epoch, in otrain
    loss: tuple[float, ...]      # per epoch, in otrain
    test_acc: float              # in otest
    test_loss: float


CANDIDATES = [  # each question picks a different winner
    Candidate("k-a", 0.001, (0.5, 0.9, 0.6), (2.0, 1.0, 0.9), 0.80, 0.50),
    Candidate("k-b", 0.01, (0.4, 0.5, 0.7), (3.0, 2.0, 0.3), 0.70, 0.60),
    Candidate("k-c", 0.1, (0.6, 0.65, 0.66), (1.0, 0.8, 0.7), 0.95, 0.40),
]
BATCHES = 4


def _fill(store: str, df_tag: str, root: Path) -> dict[str, str]:
    for c in CANDIDATES:
        with dlprov.run(df_tag, store=store, exec_tag=f"{df_tag}-{c.name}",
                        capture_environment=False) as run:
            with run.task("prep") as prep:
                prep.output("otrainset", dataset_dir=str(root / f"{c.name}-train.npz"))
            with run.task("train", depends_on=prep, uses=["otrainset"]) as train:
                train.input("itrain", learning_rate=c.learning_rate, batch_size=32)
                for epoch, (acc, loss) in enumerate(zip(c.val_acc, c.loss)):
                    train.output("otrain", epoch=epoch, loss=loss, val_acc=acc)
                    for step in range(BATCHES):
                        train.output("otrainbatch", epoch=epoch, step=epoch * BATCHES + step,
                                     batch_loss=loss + (BATCHES - step) / 10)
                path = root / f"{c.name}.pt"
                path.write_bytes(b"weights")
                train.model(path, name=c.name)
            with run.task("test", depends_on=train) as test:
                test.output("otest", test_acc=c.test_acc, test_loss=c.test_loss)
    return {"store": store, "dataflow": df_tag}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def where(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    if request.param == "sqlite":
        yield _fill(str(root / "dlprov.db"), "kexp", root)
        return
    with postgresql_home("mc") as (url, home):
        yield _fill(url, f"{home}_df", root)


def _names(result) -> list[str]:
    return [r["model_name"] for r in result.records()]


def test_the_default_mode_reads_the_name():
    assert [default_mode(n) for n in ("val_loss", "test_mae", "accuracy", "val_acc",
                                      "train_acc_1", "error_rate", "lossless_ratio")] \
        == ["min", "min", "max", "max", "max", "min", "max"]


def test_q4_by_a_test_metric_and_mode(where):
    best = max(CANDIDATES, key=lambda c: c.test_acc)
    [row] = q.q4(metric="test_acc", mode="max", **where).records()
    assert (row["model_name"], row["test_test_acc"]) == (best.name, pytest.approx(best.test_acc))
    assert _names(q.q4(metric="test_acc", mode="min", **where)) == [
        min(CANDIDATES, key=lambda c: c.test_acc).name]
    # loss-like: min by default
    assert _names(q.q4(metric="test_loss", **where)) == [
        min(CANDIDATES, key=lambda c: c.test_loss).name]


def test_q4_by_a_training_metric_takes_its_last_value(where):
    best = max(CANDIDATES, key=lambda c: c.val_acc[-1])
    assert best.name != max(CANDIDATES, key=lambda c: max(c.val_acc)).name  # last, not best
    [row] = q.q4(metric="val_acc", **where).records()  # found in otrain without set_tag
    assert (row["model_name"], row["learning_rate"], row["last_val_acc"]) \
        == (best.name, best.learning_rate, pytest.approx(best.val_acc[-1]))
    assert _names(q.q4(metric="loss", mode="min", **where)) == [
        min(CANDIDATES, key=lambda c: c.loss[-1]).name]


def test_q3_averages_any_training_metric(where):
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    best = max(CANDIDATES, key=lambda c: mean(c.val_acc))
    [row] = q.q3(metric="val_acc", mode="max", set_tag="otrain", **where).records()
    assert (row["model_name"], row["avg_val_acc"]) == (best.name,
                                                       pytest.approx(mean(best.val_acc)))
    assert _names(q.q3(metric="loss", **where)) == [
        min(CANDIDATES, key=lambda c: mean(c.loss)).name]
    with pytest.raises(QueryError, match="Q3 averages .* 'test_acc' of set 'otest' is a test"):
        q.q3(metric="test_acc", **where)


def test_q5_and_q6_rank_by_the_chosen_metric(where):
    best = max(CANDIDATES, key=lambda c: c.val_acc[-1])
    rows = q.q5(metric="val_acc", **where).records()
    assert {r["exec_tag"] for r in rows} == {f"{where['dataflow']}-{best.name}"}
    assert {r["transformation"] for r in rows} >= {"train", "test"}
    tested = max(CANDIDATES, key=lambda c: c.test_acc)
    rows = q.q5(metric="test_acc", mode="max", **where).records()
    assert {r["exec_tag"] for r in rows} == {f"{where['dataflow']}-{tested.name}"}
    for c in CANDIDATES:  # each candidate alone has its training set
        [row] = q.q6(f"{c.name}-train.npz", metric="test_loss", mode="min", **where).records()
        assert row["model_name"] == c.name
    [row] = q.q6(f"{CANDIDATES[1].name}-train.npz", metric="loss", **where).records()
    assert row["last_loss"] == pytest.approx(CANDIDATES[1].loss[-1])


def test_an_unknown_metric_lists_the_available_ones(where):
    with pytest.raises(QueryError, match=r"Q4: no metric 'accuracy_top5' in dataflow .*"
                                         r"otrain: loss, val_acc; otrainbatch: batch_loss; "
                                         r"otest: test_acc, test_loss"):
        q.q4(metric="accuracy_top5", **where)
    with pytest.raises(QueryError, match="Q4 needs attribute.*accuracy of set 'otest'.*"
                                         "--metric.*otest: test_acc, test_loss"):
        q.q4(**where)
    with pytest.raises(QueryError, match="no metric 'val_acc' in set 'otest'"):
        q.q4(metric="val_acc", set_tag="otest", **where)
    with pytest.raises(QueryError, match="mode must be max or min, got 'best'"):
        q.q4(metric="val_acc", mode="best", **where)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, -0.001, "inf"])
def test_impossible_learning_rates_are_refused(where, value):
    with pytest.raises(QueryError, match="Q1: learning_rate must be a finite, non-negative"):
        q.q1(value, **where)


def test_sql_names_the_chosen_metric(where):
    statement = q.prepare("q4", metric="val_acc", **where)
    assert "-- metric: val_acc of set otrain (last value per training), best = max" \
        in str(statement)
    assert statement.run().rows == q.q4(metric="val_acc", **where).rows


def test_curves_of_a_per_epoch_and_a_per_batch_set(where, tmp_path):
    c = CANDIDATES[0]
    found = curves(f"{where['dataflow']}-{c.name}", store=where["store"])
    assert (found.order, found.metrics) == ("epoch", ["loss", "val_acc"])
    assert found.columns == ["task_id", "epoch", "loss", "val_acc"]
    assert [r["epoch"] for r in found.records()] == [0, 1, 2]
    assert all(type(r["epoch"]) is int for r in found.records())
    assert [r["val_acc"] for r in found.records()] == pytest.approx(list(c.val_acc))
    batches = curves(f"{where['dataflow']}-{c.name}", "otrainbatch", store=where["store"])
    assert (batches.order, batches.columns[1:3]) == ("step", ["step", "epoch"])
    assert [r["step"] for r in batches.records()] == list(range(len(c.loss) * BATCHES))
    [line] = summaries(batches)
    assert line.startswith("batch_loss  ") and "min" in line and "(step " in line
    lines = summaries(found)
    assert "val_acc  ▁█▃  first 0.5 → last 0.6, max 0.9 (epoch 1)" in lines
    plot(found, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(NotFound, match="no execution 'nope'"):
        curves("nope", store=where["store"])
    with pytest.raises(QueryError, match="no set 'itrainx' with numbers; sets with numbers: "):
        curves(found.run, "itrainx", store=where["store"])


def test_sparkline_fits_its_width():
    assert sparkline([1, 2, 3]) == "▁▅█"
    assert len(sparkline(list(range(1000)), width=30)) == 30
    assert sparkline([5, 5]) == "▁▁"
