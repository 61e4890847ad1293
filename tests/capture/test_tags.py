"""Tags and notes given at the start of a run (dlprov.run, the integrations), recorded through
the recorder, shown by the runs table, refused when bad, and exported to PROV."""
from __future__ import annotations

import json

import pytest

import dlprov
from dlprov.capture.annotate import tag_run
from dlprov.errors import ValueRejected
from dlprov.prov.export import serialize
from dlprov.prov.mapping import document
from dlprov.query.runs import runs_table, select_runs
from dlprov.store.store import Store
from tests.conftest import postgresql_home

QUIET = {"capture_environment": False}


def test_run_records_tags_and_notes(store_path, sql):
    with dlprov.run("mnist", exec_tag="tagged", tags={"team": "vision", "seed": 7, "ok": True},
                    notes="first try", **QUIET) as run:
        assert run.tags == {"team": "vision", "seed": "7", "ok": "true"}  # kept as text
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
    assert sorted(sql("SELECT key, value FROM execution_tag")) == [
        ("ok", "true"), ("seed", "7"), ("team", "vision")]
    assert sql("SELECT notes FROM dataflow_execution") == [("first try",)]
    [row] = select_runs(runs_table(), ["tag.seed>=7"])
    assert row["exec_tag"] == "tagged" and row["notes"] == "first try"


@pytest.mark.parametrize("options, message", [
    ({"tags": {"1st": "x"}}, "tag key '1st' is not a plain name"),
    ({"tags": {"a.b": "x"}}, "tag key 'a.b' is not a plain name"),
    ({"tags": {"team": None}}, "tag 'team' has no value"),
    ({"tags": {"team": "x" * 1025}}, "tag 'team': the value is longer than 1024 bytes"),
    ({"tags": {"team": "é" * 600}}, "tag 'team': the value is longer than 1024 bytes"),
    ({"tags": {"team": "a\x00b"}}, "tag 'team'"),
    ({"tags": ["team"]}, "tags must be a mapping"),
    ({"notes": b"bytes"}, "notes must be text"),
    ({"notes": "a\x00b"}, "notes"),
])
def test_bad_tags_and_notes_are_refused_at_the_call(store_path, options, message):
    with pytest.raises(ValueRejected, match="^" + message):
        dlprov.run("mnist", **options, **QUIET)
    assert not store_path.exists()


def test_track_training_passes_tags_and_notes(store_path, sql):
    torch = pytest.importorskip("torch")
    from dlprov.integrations.torch import track_training
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with track_training("mnist", model=model, optimizer=optimizer, tags={"team": "vision"},
                        notes="tiny", **QUIET) as log:
        log.epoch_end(0, loss=1.0)
    [row] = runs_table().rows
    assert row["tags"] == {"team": "vision"} and row["notes"] == "tiny"
    assert row["otrain.loss:last"] == 1.0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_prov_export_carries_tags_and_notes(store_path, backend):
    if backend == "sqlite":
        check_export(str(store_path), "mnist")
        return
    with postgresql_home("tagprov") as (url, home):
        check_export(url, f"{home}_df")
        Store(url).dispose()


def check_export(store: str, df_tag: str) -> None:
    with dlprov.run(df_tag, exec_tag=f"{df_tag}-exported", store=store,
                    tags={"team": "vision"}, notes="note", **QUIET) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
    tag_run(run.exec_tag, {"stage": "final"}, store=store)
    doc = document(store, dataflow=df_tag, run=run.exec_tag)
    provn = serialize(doc, "provn").decode()
    execution = next(line for line in provn.splitlines()
                     if f'dlprov:exec_tag="{run.exec_tag}"' in line)
    assert 'dlprov:tag_team="vision"' in execution and 'dlprov:tag_stage="final"' in execution
    assert 'dlprov:notes="note"' in execution
    as_json = json.loads(serialize(doc, "json"))
    activities = [a for bundle in as_json["bundle"].values()
                  for a in bundle.get("activity", {}).values()]
    assert any(a.get("dlprov:tag_team") == "vision" for a in activities)


def test_runs_started_in_one_second_with_keys_alike_get_tags_of_their_own(store_path, sql,
                                                                          monkeypatch):
    from dlprov.capture.run import Run

    # two keys sharing their first 6 hex digits, as two of a sweep's runs may (1 in 16M)
    keys = iter(["abcdef" + "0" * 26, "abcdef" + "1" * 26])
    original = Run.new_key
    monkeypatch.setattr(Run, "new_key", staticmethod(
        lambda: next(keys, None) or original()))
    runs = [dlprov.run("sweep", **QUIET) for _ in range(2)]
    for run in runs:
        run.end()
    assert runs[0].exec_tag != runs[1].exec_tag
    assert sorted(sql("SELECT tag FROM dataflow_execution")) == sorted(
        (run.exec_tag,) for run in runs)
