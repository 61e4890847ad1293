"""The MLflow bridge on the real PostgreSQL server: an import, and the plugin's
``dlprov+postgresql://`` URI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

import dlprov.query as q  # noqa: E402
from dlprov.integrations.mlflow.importer import import_runs  # noqa: E402
from tests.conftest import postgresql_home  # noqa: E402

from .runs import log_three_runs  # noqa: E402


def test_import_and_plugin_on_postgresql(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with postgresql_home("mlflow") as (url, home):
        dataflow = f"{home}_df"  # its schema is dropped with the home schema
        log_three_runs(uri, tmp_path, experiment=dataflow)
        report = import_runs(uri, store=url)
        assert len(report.imported) == 4 and not report.failed, report.summary()
        assert import_runs(uri, store=url).imported == []
        assert [r["learning_rate"] for r in q.q1(0.001, store=url).records()] == [0.001]

        mlflow.set_tracking_uri(f"dlprov+{url}")
        try:
            mlflow.set_experiment(dataflow)
            with mlflow.start_run(run_name="pg"):
                mlflow.log_params({"learning_rate": 0.2, "epochs": 2})
                mlflow.log_metric("loss", 0.5, step=0)
        finally:
            mlflow.set_tracking_uri(None)
            os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
        from dlprov.recorder.recorder import close_all
        close_all()
        from dlprov.integrations.mlflow.plugin import tracking_store
        [run] = tracking_store(f"dlprov+{url}").search_runs(
            [dataflow], "attributes.run_name = 'pg'", 1)
        assert run.data.params == {"learning_rate": "0.2", "epochs": "2"}
        assert run.data.metrics == {"loss": 0.5}
