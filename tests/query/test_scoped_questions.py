"""Questions about one model read only the rows of its trace (Q10–Q12), Q6 only the elements
that can match: other executions in the store change nothing in their answers. And a dataflow
named in a question is found without ranking every dataflow."""
from __future__ import annotations

from pathlib import Path

import pytest

import dlprov
import dlprov.query as q
from dlprov.errors import NotFound


def capture(store: str, name: str, workdir: Path, accuracy: float) -> None:
    with dlprov.run("scoped", store=store, capture_environment=False) as run:
        with run.task("loaddata") as load:
            load.input("iinputdataset", dataset_name="digits")
            load.output("oloaddata", data=workdir / name / "raw.npz")
        with run.task("splitdata", depends_on=load) as split:
            split.output("otrainset", data=workdir / name / "train.npz")
            split.output("otestset", data=workdir / name / "test.npz")
        with run.task("train", depends_on=split, uses=["otrainset"]) as train:
            train.input("itrain", learning_rate=1e-3, batch_size=32.0)
            for epoch in range(3):
                train.output("otrain", epoch=float(epoch), accuracy=accuracy, loss=1 - accuracy,
                             elapsed_time=0.1)
            train.model(workdir / name / "model.pt", name=name)
        with run.task("test", depends_on=[split, train], uses=["otestset", "otrainedmodel"]) as t:
            t.output("otest", loss=1 - accuracy, accuracy=accuracy)


# what differs between two captures of the same run: its times and its fresh keys
_CAPTURE_SPECIFIC = {"start_time", "end_time", "exec_tag", "model_id"}


def answers(store: str) -> dict[str, list[tuple]]:
    results = {f"q{i}": getattr(q, f"q{i}")("first", store=store, dataflow="scoped")
               for i in (10, 11, 12)}
    results["q6"] = q.q6("train.npz", store=store, dataflow="scoped")
    return {name: [tuple(v for k, v in record.items() if k not in _CAPTURE_SPECIFIC)
                   for record in result.records()] for name, result in results.items()}


def test_other_executions_do_not_change_a_models_trace(tmp_path: Path) -> None:
    alone, crowded = f"sqlite:///{tmp_path / 'alone.db'}", f"sqlite:///{tmp_path / 'crowd.db'}"
    capture(alone, "first", tmp_path, 0.9)
    capture(crowded, "first", tmp_path, 0.9)
    for i in range(3):
        capture(crowded, f"other{i}", tmp_path, 0.5 + i / 10)
    expected, found = answers(alone), answers(crowded)
    assert found == expected
    # a real trace: the training's upstream steps and the test, with the sets each touched
    assert {row[2] for row in found["q10"]} == {"loaddata", "splitdata", "train", "test"}
    assert {row[2:5] for row in found["q12"]} >= {
        ("loaddata", "produced", "oloaddata"), ("splitdata", "produced", "otrainset")}
    assert [row[0] for row in found["q11"]] == ["otrainset"]
    assert found["q6"][0][0] == "first"  # the least test loss among those trained on train.npz


def test_a_named_dataflow_is_chosen_and_an_unknown_one_is_listed(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'two.db'}"
    capture(store, "first", tmp_path, 0.9)
    with dlprov.run("later", store=store, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", accuracy=0.1)
    assert q.q3(store=store, dataflow="scoped").records()[0]["model_name"] == "first"
    with pytest.raises(NotFound, match="no dataflow 'missing'.*later, scoped"):
        q.q3(store=store, dataflow="missing")
