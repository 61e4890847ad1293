"""``dlprov mlflow export``: executions dlprov captured, written into a real MLflow store and
read back with MLflow's own client."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

mlflow = pytest.importorskip("mlflow")

import dlprov  # noqa: E402
from dlprov.cli.main import cli  # noqa: E402
from dlprov.integrations.mlflow.exporter import LINK_TAG, export_runs  # noqa: E402


def _capture(store: Path) -> str:
    with dlprov.run("Mnist", store=store, tags={"team": "vision"}) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01, optimizer="adam")
            for epoch in range(3):
                train.output("otrain", epoch=epoch, loss=1 / (epoch + 1))
        with run.task("test", depends_on=train) as test:
            test.output("otest", accuracy=0.9)
    return run.key


def test_export_writes_params_histories_tags_and_a_link(tmp_path: Path) -> None:
    store = tmp_path / "dlprov.db"
    key = _capture(store)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # MLflow makes its database
    report = export_runs(uri, store=store)
    assert len(report.exported) == 1 and not report.failed, report.summary()
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("Mnist")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.params == {"learning_rate": "0.01", "optimizer": "adam"}
    assert run.data.tags[LINK_TAG] == key and run.data.tags["team"] == "vision"
    assert run.info.status == "FINISHED"
    assert [(p.step, p.value) for p in client.get_metric_history(run.info.run_id, "loss")] == \
        [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert run.data.metrics["accuracy"] == 0.9

    result = CliRunner().invoke(cli, ["--store", str(store), "mlflow", "export",
                                      "--tracking-uri", uri, "--dataflow", "mnist"])
    assert result.exit_code == 0, result.output
    assert "exported 0 execution(s)" in result.output and "1 there before" in result.output
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_unknown_dataflow_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "dlprov.db"
    _capture(store)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()
    result = CliRunner().invoke(cli, ["--store", str(store), "mlflow", "export",
                                      "--tracking-uri", uri, "--dataflow", "nope"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no dataflow 'nope'")
