"""dlprov diff on the demo's real candidates: exactly the differing hyperparameters and steps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.compare import diff, render
from dlprov.demo.workflow import CANDIDATES, run_candidate
from dlprov.store.store import Store

# adam/minmax, sgd/minmax (same preparation), adam/minmax + PCA (an extra step)
ADAM, SGD, PCA = CANDIDATES[0], CANDIDATES[1], CANDIDATES[4]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    """One store with three candidates trained for two epochs, built once for the module."""
    import torch
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("demo")
    store = Store(folder / "demo.db")
    for candidate in (ADAM, SGD, PCA):
        run_candidate(candidate, store=store, epochs=2, output_dir=folder / "out")
    return str(folder / "demo.db")


def _changed(found: dict, section: str) -> set[str]:
    return {r["name"] for r in found["sections"][section] if r["status"] != "same"}


def test_two_candidates_differ_in_exactly_their_hyperparameters(demo_store):
    found = diff(ADAM.name, SGD.name, store=demo_store)
    assert _changed(found, "hyperparameters") == {"optimizer_name", "learning_rate"}
    # the same preparation on the same data: no step, no dataset differs
    assert _changed(found, "preparation") == set() and _changed(found, "data") == set()
    assert found["divergence"] == []
    # two optimisers: their training curves part (their test accuracies can tie on 360 digits)
    assert "otrain.loss" in _changed(found, "metrics")
    assert _changed(found, "model") >= {"sha256"}
    assert not found["identical"]


def test_an_extra_step_is_the_first_divergence(demo_store):
    found = diff(ADAM.name, PCA.name, store=demo_store)
    assert _changed(found, "hyperparameters") == {"learning_rate", "hidden_units"}
    steps = {r["name"]: r["status"] for r in found["sections"]["preparation"]
             if r["status"] != "same"}
    assert steps["reducedimensions"] == "only in B"
    assert {"loaddata", "normalizedata"}.isdisjoint(steps)  # same parameters, same output
    assert {d["set"] for d in found["divergence"]} == {"otrainset", "ovalset"}
    for divergence in found["divergence"]:
        assert divergence["first"] == "reducedimensions"
        assert divergence["text"].endswith("reducedimensions only in B")
        assert "splitdata same parameters" in divergence["text"]


def test_a_model_compared_with_itself_is_identical(demo_store):
    found = diff(PCA.name, PCA.name, store=demo_store)
    assert found["identical"] and found["differences"] == 0
    assert render(found).splitlines()[2].startswith("identical")
    assert json.loads(render(found, "json"))["sections"]["hyperparameters"] == []
    everything = json.loads(render(found, "json", everything=True))
    assert {r["name"] for r in everything["sections"]["hyperparameters"]} >= {"learning_rate"}


def test_runs_compare_as_executions(demo_store):
    from dlprov.query.catalogue import list_runs
    tags = [r["exec_tag"] for r in sorted(list_runs(demo_store), key=lambda r: r["id"])]
    by_model = diff(ADAM.name, SGD.name, store=demo_store)
    by_run = diff(tags[0], tags[1], store=demo_store, runs=True)
    assert by_run["sections"] == by_model["sections"]


def test_cli_table_json_html_and_errors(demo_store, monkeypatch, tmp_path):
    monkeypatch.setenv("DLPROV_STORE", demo_store)
    runner = CliRunner()
    table = runner.invoke(cli, ["diff", ADAM.name, PCA.name])
    assert table.exit_code == 0, table.output
    assert "HYPERPARAMETERS" in table.output and "first divergence:" in table.output
    assert "reducedimensions only in B" in table.output
    assert "ENVIRONMENT" not in table.output  # one machine, one venv: nothing differs
    as_json = json.loads(runner.invoke(cli, ["diff", ADAM.name, SGD.name, "--format",
                                             "json"]).output)
    assert {r["name"] for r in as_json["sections"]["hyperparameters"]} == {
        "optimizer_name", "learning_rate"}
    page = runner.invoke(cli, ["diff", ADAM.name, PCA.name, "--format", "html", "--all"]).output
    assert page.startswith("<!DOCTYPE html>") and "reducedimensions" in page
    for fetching in ("<link", "<script", "src=", "href=", "@import"):
        assert fetching not in page  # self-contained: nothing fetched
    same = runner.invoke(cli, ["diff", SGD.name, SGD.name, "--exit-code"])
    assert same.exit_code == 0 and "identical" in same.output
    assert runner.invoke(cli, ["diff", ADAM.name, SGD.name, "--exit-code"]).exit_code == 1
    unknown = runner.invoke(cli, ["diff", ADAM.name, "no-such-model"])
    assert unknown.exit_code == 1
    assert unknown.output.startswith("error: no model 'no-such-model'")
    assert "Traceback" not in unknown.output


def test_packages_give_the_same_diff_as_the_store(demo_store, tmp_path):
    from dlprov.prov.package import package_model
    a = package_model(ADAM.name, tmp_path / "a.zip", demo_store)
    b = package_model(PCA.name, tmp_path / "b.zip", demo_store)
    from_store = diff(ADAM.name, PCA.name, store=demo_store)
    from_packages = diff(str(a), str(b), store=tmp_path / "nothing-here.db")
    assert from_packages["sections"] == from_store["sections"]
    assert from_packages["divergence"] == from_store["divergence"]
    assert not Path(tmp_path / "nothing-here.db").exists()  # no store was needed
    result = CliRunner().invoke(cli, ["diff", str(a), str(a)])
    assert result.exit_code == 0 and "identical" in result.output


def test_postgresql_gives_the_same_diff(demo_store):
    from dlprov.store.migrate import migrate
    from tests.paper_stores import fresh_postgresql_database
    with fresh_postgresql_database() as url:  # a database of its own: "digits" is a schema
        migrate(demo_store, url)
        on_postgresql = diff(ADAM.name, PCA.name, store=url)
        Store(url).dispose()
    on_sqlite = diff(ADAM.name, PCA.name, store=demo_store)
    assert on_postgresql["sections"] == on_sqlite["sections"]
    assert on_postgresql["divergence"] == on_sqlite["divergence"]
