"""``dlprov mlflow import``: real MLflow stores (SQLite, a file store) written by MLflow's own
client, imported, then asked the paper's questions."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

import dlprov.query as q  # noqa: E402
from dlprov.cli.main import cli  # noqa: E402
from dlprov.errors import StoreUnavailable  # noqa: E402
from dlprov.integrations.mlflow.importer import import_runs  # noqa: E402
from dlprov.query.sql import sql  # noqa: E402

from .runs import LEARNING_RATES, log_three_runs  # noqa: E402


@pytest.fixture(scope="module")
def sqlite_tracking(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    folder = tmp_path_factory.mktemp("mlflow-sqlite")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, log_three_runs(uri, folder)


def _count(db: Path, statement: str) -> int:
    """One number, by dlprov's SQL (set names resolve to the dataflow's tables)."""
    return next(iter(sql(statement, store=db, dataflow="digits").records()[0].values()))


def test_import_answers_q1_q4_q7_q11(sqlite_tracking, tmp_path: Path) -> None:
    uri, ids = sqlite_tracking
    store = tmp_path / "dlprov.db"
    report = import_runs(uri, store=store)
    assert not report.failed, report.summary()
    assert len(report.imported) == 4 and report.dataflows == {"digits"}

    found = q.q1(0.01, store=store).records()
    assert len(found) == 1 and found[0]["learning_rate"] == 0.01
    model = found[0]["model_id"]
    assert model.startswith("m-")  # MLflow's own model id
    best = q.q4(store=store).records()
    assert best[0]["learning_rate"] == 0.01 and best[0]["test_accuracy"] == pytest.approx(0.95)
    params = q.q7(model, store=store).records()
    assert params[0]["learning_rate"] == 0.01 and params[0]["batch_size"] == 32
    assert params[0]["optimizer"] == "adam"
    data = q.q11(model, store=store).records()
    assert [d["set_tag"] for d in data] == ["itraindataset"]
    assert "digits-train" in str(data[0]["data"])

    # full histories by step, the model's digest, tags, environment, parent -> child
    assert _count(store, "SELECT COUNT(*) FROM otrain") == 3 * 3 + 1
    assert _count(store, "SELECT COUNT(*) FROM trained_model WHERE sha256 IS NOT NULL "
                         "AND size_bytes > 0") == 3
    assert _count(store, "SELECT COUNT(*) FROM execution_tag WHERE key = 'mlflow_run_id'") == 4
    assert _count(store, "SELECT COUNT(*) FROM environment WHERE git_commit LIKE 'abc%'") == 3
    assert _count(store, "SELECT COUNT(*) FROM task_dependency d JOIN task t "
                         "ON t.id = d.task_id JOIN data_transformation dt ON dt.id = t.dt_id "
                         "WHERE dt.tag = 'train'") == 1
    steps = sql("SELECT step, loss, val_accuracy FROM otrain o JOIN task t "
                "ON t.id = o.train_task_id WHERE t.df_exec LIKE 'mlp-2-%' ORDER BY step",
                store=store, dataflow="digits").records()
    assert [tuple(s.values()) for s in steps] == [
        (0, pytest.approx(1.001), 0.5), (1, pytest.approx(0.501), 0.6),
        (2, pytest.approx(1 / 3 + 0.001), 0.7)]


def test_reimport_changes_nothing(sqlite_tracking, tmp_path: Path) -> None:
    uri, _ = sqlite_tracking
    store = tmp_path / "dlprov.db"
    import_runs(uri, store=store)
    tables = ("dataflow_execution", "task", "otrain", "otest", "itrain", "trained_model",
              "execution_tag", "dataflow_version")
    before = {t: _count(store, f"SELECT COUNT(*) FROM {t}") for t in tables}
    again = import_runs(uri, store=store)
    assert again.imported == [] and len(again.already) == 4
    assert {t: _count(store, f"SELECT COUNT(*) FROM {t}") for t in tables} == before


def test_file_store_with_repeated_points(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    mlruns = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for logging only
    log_three_runs(mlruns.as_uri(), tmp_path, duplicate_points=True)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    store = tmp_path / "dlprov.db"
    result = CliRunner().invoke(cli, ["--store", str(store), "mlflow", "import",
                                      "--tracking-uri", str(mlruns), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "MLFLOW_ALLOW_FILE_STORE=true" in result.output
    assert "imported 4 run(s)" in result.output
    assert _count(store, "SELECT COUNT(*) FROM otrain") == 3 * 3 + 1  # repeats dropped
    assert [r["learning_rate"] for r in q.q1(LEARNING_RATES[2], store=store).records()] == [
        LEARNING_RATES[2]]


def test_experiment_choice_and_errors(sqlite_tracking, tmp_path: Path) -> None:
    uri, _ = sqlite_tracking
    store = tmp_path / "dlprov.db"
    assert import_runs(uri, store=store, experiments=["Default"]).imported == []
    with pytest.raises(StoreUnavailable, match="no experiment 'nope'"):
        import_runs(uri, store=store, experiments=["nope"])
    runner = CliRunner()
    missing = runner.invoke(cli, ["--store", str(store), "mlflow", "import", "--tracking-uri",
                                  f"sqlite:///{tmp_path / 'absent.db'}"])
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("error:") and "no such MLflow database" in \
        missing.output
    assert not (tmp_path / "absent.db").exists()  # MLflow would have made an empty one
    down = runner.invoke(cli, ["--store", str(store), "mlflow", "import", "--tracking-uri",
                               "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot read MLflow tracking store" in down.output
    assert len(down.output.strip().splitlines()) == 1


def test_a_run_the_store_refuses_leaves_nothing_behind(sqlite_tracking, tmp_path: Path) -> None:
    import dlprov
    from dlprov.integrations.mlflow.mapping import exec_tag
    uri, ids = sqlite_tracking
    store = tmp_path / "dlprov.db"
    taken = exec_tag("mlp-1", ids[1])
    with dlprov.run("digits", store=store, exec_tag=taken) as run:  # holds run 1's exec tag
        with run.task("train") as train:
            train.input("itrain", learning_rate=9.0)
    result = CliRunner().invoke(cli, ["--store", str(store), "mlflow", "import",
                                      "--tracking-uri", uri, "--no-progress"])
    assert result.exit_code == 1
    assert f"error: run {taken}:" in result.output and "nothing of it was stored" in \
        result.output
    assert "imported 3 run(s)" in result.output
    assert _count(store, "SELECT COUNT(*) FROM otrain") == 2 * 3 + 1  # none of run 1's
    assert _count(store, "SELECT COUNT(*) FROM itrain WHERE learning_rate = 0.01") == 0
    assert _count(store, "SELECT COUNT(*) FROM dataflow_execution") == 4


def test_without_mlflow_the_command_says_how_to_install_it(monkeypatch, tmp_path) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "d.db"), "mlflow", "import",
                                      "--tracking-uri", "sqlite:///mlflow.db"])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: MLflow is not installed: pip install "
                                     "'dlprov[mlflow]' (MLflow 3.x (tested with mlflow-skinny "
                                     "3.17))")
