"""Metric and hyperparameter names that clean alike get distinct columns, stably, with the name
each stands for recorded and shown; values that are not plain numbers are split or refused,
loudly. Real frameworks on tiny data, real SQLite files (and PostgreSQL once)."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.integrations.columns import assign_columns
from dlprov.integrations.torch import track_training
from dlprov.model.spec import Attribute
from dlprov.query.schema import attributes
from tests.conftest import postgresql_home
from tests.integrations.logs import told

COLLIDING = {"val/loss": 1.0, "val_loss": 2.0, "val-loss": 3.0, "🔥": 4.0, "": 5.0}
# column and label of each name in COLLIDING when they first come together: the plain name
# chooses first, the others in order
COLUMNS = {"val_loss": ("val_loss", None), "val/loss": ("val_loss_2", "val/loss"),
           "val-loss": ("val_loss_3", "val-loss"), "🔥": ("m_1f525", "🔥"), "": ("m", "")}


def labels(sql, set_tag: str) -> dict[str, str | None]:
    """Column -> label of a set, as the store's attribute table holds them."""
    return dict(sql("SELECT a.name, a.label FROM attribute a JOIN data_set d ON d.id = a.ds_id "
                    "WHERE d.tag = ?", set_tag))


def test_names_that_clean_alike_get_distinct_columns_and_lose_no_value(sql) -> None:
    with track_training("mnist", capture_environment=False) as log:
        for epoch in range(2):
            log.epoch_end(epoch, **{name: value + epoch for name, value in COLLIDING.items()})
    rows = sql("SELECT val_loss, val_loss_2, val_loss_3, m_1f525, m FROM mnist__otrain "
               "ORDER BY epoch")
    assert rows == [(2.0, 1.0, 3.0, 4.0, 5.0), (3.0, 2.0, 4.0, 5.0, 6.0)]
    stored = labels(sql, "otrain")
    assert {column: stored[column] for column, _ in COLUMNS.values()} == dict(COLUMNS.values())
    assert stored["epoch"] is None and stored["elapsed_time"] is None


def test_the_same_name_finds_the_same_column_in_later_runs_and_processes(sql, store_path) -> None:
    with track_training("mnist", capture_environment=False) as log:
        log.epoch_end(0, **COLLIDING)
    # another process, the names in another order, cases changed, one new name colliding
    script = textwrap.dedent("""
        from dlprov.integrations.torch import track_training
        with track_training("mnist", capture_environment=False) as log:
            log.epoch_end(0, **{"VAL-LOSS": 30.0, "": 50.0, "val.loss": 60.0, "🔥": 40.0,
                                "Val/Loss": 10.0, "val_loss": 20.0})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120,
                   env={**os.environ, "DLPROV_STORE": str(store_path)})
    # a second run of this process: its spec book predates val.loss, learnt from the store
    # before a new name (val:loss) chooses a column
    with track_training("mnist", capture_environment=False) as log:
        log.epoch_end(0, **{"val:loss": 700.0, "val-loss": 300.0, "val/loss": 100.0,
                            "val.loss": 600.0})
    rows = sql("SELECT val_loss, val_loss_2, val_loss_3, m_1f525, m, val_loss_4, val_loss_5 "
               "FROM mnist__otrain ORDER BY id")
    assert rows == [(2.0, 1.0, 3.0, 4.0, 5.0, None, None),
                    (20.0, 10.0, 30.0, 40.0, 50.0, 60.0, None),
                    (None, 100.0, 300.0, None, None, 600.0, 700.0)]
    assert labels(sql, "otrain")["val_loss_4"] == "val.loss"
    assert labels(sql, "otrain")["val_loss_5"] == "val:loss"


def test_colliding_hyperparameters_keep_both_values(sql) -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with track_training("mnist", model=model, optimizer=optimizer, capture_environment=False,
                        hyperparameters={"Learning-Rate": 0.1, "Batch Size": 8,
                                         "MOMENTUM": 0.25}) as log:
        log.epoch_end(0, loss=1.0)
    (row,) = sql("SELECT learning_rate, learning_rate_2, batch_size, momentum FROM mnist__itrain")
    # learning_rate is the optimizer's (a plain name chooses first); MOMENTUM given replaces
    # the optimizer's momentum: one name in any case
    assert row == (0.5, 0.1, 8.0, 0.25)
    assert labels(sql, "itrain")["learning_rate_2"] == "Learning-Rate"
    assert labels(sql, "itrain")["batch_size"] == "Batch Size"


def test_values_that_are_not_numbers_are_stored_split_or_refused_with_a_warning(
        sql, caplog, fresh_throttle) -> None:
    fresh_throttle.interval = 0  # every occurrence in full
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            track_training("mnist", capture_environment=False) as log:
        for epoch in range(3):
            log.epoch_end(epoch, per_class=torch.tensor([0.5, 0.25 + epoch]),
                          phase="warmup" if epoch == 0 else "main", lrs=[0.1, 0.01],
                          grid=torch.ones(2, 2), weights=torch.ones(17),
                          note=None, loss=torch.tensor([0.5]))
        log.epoch_end(3, phase=0.5, loss="diverged")  # a number as text; text for a number
    rows = sql("SELECT per_class_0, per_class_1, phase, lrs_0, lrs_1, grid_0_0, grid_1_1, loss "
               "FROM mnist__otrain ORDER BY epoch")
    assert rows == [(0.5, 0.25, "warmup", 0.1, 0.01, 1.0, 1.0, 0.5),
                    (0.5, 1.25, "main", 0.1, 0.01, 1.0, 1.0, 0.5),
                    (0.5, 2.25, "main", 0.1, 0.01, 1.0, 1.0, 0.5),
                    (None, None, "0.5", None, None, None, None, None)]
    columns = {c for _, c, *_ in sql("PRAGMA table_info(mnist__otrain)")}
    assert not columns & {"weights", "note", "per_class", "lrs"}
    assert labels(sql, "otrain")["grid_0_1"] == "grid[0, 1]"
    messages = [r.getMessage() for r in caplog.records]

    def said(text: str) -> int:
        return told([m for m in messages if text in m])

    assert said("metric 'per_class' is a Tensor of shape (2,): stored element by element in "
                "per_class_0, per_class_1") == 3  # each time
    assert said("metric 'lrs' is a list of shape (2,): stored element by element") == 3
    assert said("metric 'grid' is a Tensor of shape (2, 2)") == 3
    assert said("metric 'weights' left out: a Tensor of shape (17,) holds more than 16") == 3
    assert said("metric 'loss' left out: set 'otrain', attribute 'loss' is numeric") == 1
    assert "diverged" in next(m for m in messages if "metric 'loss' left out" in m)
    assert not [m for m in messages if "'note'" in m or "'phase'" in m]  # None, text: as given


def test_warnings_are_rate_limited_with_counts_and_told_at_the_end(sql, caplog,
                                                                    fresh_throttle) -> None:
    fresh_throttle.interval = 3600
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            track_training("mnist", capture_environment=False) as log:
        for epoch in range(5):
            log.epoch_end(epoch, loss=0.5, weights=torch.ones(20), tags=["a", "b"])
    messages = [r.getMessage() for r in caplog.records]
    weights = [m for m in messages if "'weights' left out" in m]
    assert len(weights) == 2 and told(weights) == 5  # the first, then the count at the end
    assert weights[1].endswith("[4 like it since the last such message; this is the latest]")
    assert told([m for m in messages if "'tags' left out: a list of 2 values: only numbers"
                 in m]) == 5
    assert sql("SELECT count(loss) FROM mnist__otrain") == [(5,)]


def test_dlprov_schema_shows_the_name_each_column_stands_for(sql, store_path) -> None:
    with track_training("mnist", capture_environment=False,
                        hyperparameters={"Learning-Rate": 0.1, "learning_rate": 0.2}) as log:
        log.epoch_end(0, **COLLIDING)
    runner = CliRunner()
    shown = runner.invoke(cli, ["schema"])
    assert shown.exit_code == 0, shown.output
    assert "column ← the name it was made for" in shown.output
    tables = {line.split()[0]: line.split(": ", 1)[1].split(", ")
              for line in shown.output.splitlines() if line.startswith("  ") and " [" in line}
    assert {"val_loss numeric", "val_loss_2 numeric ← 'val/loss'",
            "val_loss_3 numeric ← 'val-loss'", "m_1f525 numeric ← '🔥'",
            "m numeric ← ''"} <= set(tables["otrain"])
    assert {"learning_rate numeric", "learning_rate_2 numeric ← 'Learning-Rate'"} <= set(
        tables["itrain"])
    listed = runner.invoke(cli, ["schema", "--attributes", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {(r["set"], r["attribute"]): r["label"] for r in json.loads(listed.output)}
    assert rows[("otrain", "val_loss_2")] == "val/loss" and rows[("otrain", "m")] == ""
    assert rows[("otrain", "val_loss")] is None
    assert attributes(str(store_path)) == json.loads(listed.output)  # the Python twin
    wrong = runner.invoke(cli, ["schema", "--format", "json"])
    assert wrong.exit_code != 0 and "--format is for --attributes" in wrong.output


def test_a_store_made_before_labels_gets_the_column(tmp_path, sql, store_path) -> None:
    with track_training("mnist", capture_environment=False) as log:
        log.epoch_end(0, loss=1.0)
    with sqlite3.connect(store_path) as conn:  # as an older dlprov made it
        conn.execute("ALTER TABLE attribute DROP COLUMN label")
    script = textwrap.dedent("""
        from dlprov.integrations.torch import track_training
        with track_training("mnist", capture_environment=False) as log:
            log.epoch_end(0, **{"loss": 2.0, "val/loss": 3.0})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120,
                   env={**os.environ, "DLPROV_STORE": str(store_path)})
    assert labels(sql, "otrain")["val_loss"] == "val/loss"
    assert sql("SELECT loss, val_loss FROM mnist__otrain ORDER BY id") == [(1.0, None),
                                                                            (2.0, 3.0)]


def test_colliding_names_on_postgresql() -> None:
    import dlprov
    with postgresql_home("names") as (url, home):
        tag = f"{home}_df"
        for run in range(2):
            with track_training(tag, store=url, capture_environment=False,
                                hyperparameters={"Learning-Rate": 0.1,
                                                 "learning_rate": 0.2}) as log:
                log.epoch_end(0, **{name: value + run for name, value in COLLIDING.items()},
                              per_class=torch.tensor([0.5, 0.75]))
        rows = dlprov.sql("SELECT val_loss, val_loss_2, val_loss_3, m_1f525, m, per_class_1 "
                          "FROM otrain ORDER BY id", dataflow=tag, store=url).rows
        assert [tuple(r) for r in rows] == [(2.0, 1.0, 3.0, 4.0, 5.0, 0.75),
                                            (3.0, 2.0, 4.0, 5.0, 6.0, 0.75)]
        found = {(r["set"], r["attribute"]): r["label"] for r in attributes(url, tag)}
        assert found[("otrain", "val_loss_2")] == "val/loss" and found[("otrain", "m")] == ""
        assert found[("itrain", "learning_rate_2")] == "Learning-Rate"
        assert found[("otrain", "m_1f525")] == "🔥"


def test_assignment_reads_the_spec_only() -> None:
    known = {"val_loss_2": Attribute("val_loss_2", label="val/loss")}  # by another process
    assert assign_columns(known, ["Val/Loss", "val/loss", "val_loss", "val-loss"]) == {
        "Val/Loss": "val_loss_2", "val/loss": "val_loss_2", "val_loss": "val_loss",
        "val-loss": "val_loss_3"}
    long = "x" * 60
    assert assign_columns({long[:48]: Attribute(long[:48])}, [long + "!"]) == {
        long + "!": "x" * 46 + "_2"}


# -- Lightning and Keras: the same rules through their hooks ------------------------------------

@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_lightning_metrics_and_hyperparameters_that_clean_alike(sql, tmp_path, caplog) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from dlprov.integrations.lightning import ProvenanceCallback

    class Module(L.LightningModule):
        def __init__(self, learning_rate: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train/loss", loss, on_step=False, on_epoch=True)
            return {"loss": loss, "per_class": torch.tensor([0.25, 0.75])}

        def validation_step(self, batch, batch_idx):
            for value, name in enumerate(("val/loss", "val_loss", "val-loss"), 1):
                self.log(name, float(value))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=generator)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    callback = ProvenanceCallback("mnist", hyperparameters={"Learning-Rate": 0.3},
                                  log_every_n_steps=1, save_model=False,
                                  capture_environment=False)
    trainer = L.Trainer(max_epochs=2, callbacks=[callback], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"):
        trainer.fit(Module(), data, data)
        callback.close()
    assert sql("SELECT val_loss, val_loss_2, val_loss_3 FROM mnist__otrain ORDER BY epoch") == [
        (2.0, 1.0, 3.0), (2.0, 1.0, 3.0)]
    assert labels(sql, "otrain")["val_loss_2"] == "val/loss"
    assert sql("SELECT learning_rate, learning_rate_2 FROM mnist__itrain") == [(0.05, 0.3)]
    assert sql("SELECT DISTINCT per_class_0, per_class_1 FROM mnist__otrainbatch") == [
        (0.25, 0.75)]
    messages = [r.getMessage() for r in caplog.records]
    assert told([m for m in messages if "metric 'per_class' is a Tensor of shape (2,)"
                 in m]) == 4  # every batch of both epochs
    assert not [m for m in messages if "left out" in m]


def test_keras_array_metrics_and_names_that_clean_alike(sql, tmp_path, caplog) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    np = pytest.importorskip("numpy")
    from dlprov.integrations.keras import ProvenanceCallback

    rng = np.random.default_rng(0)
    x = rng.random((32, 4)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 32), 3)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy",
                  metrics=[keras.metrics.F1Score(average=None, name="f1"),
                           keras.metrics.CategoricalAccuracy(name="acc/top1"),
                           keras.metrics.CategoricalAccuracy(name="acc-top1")])
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            ProvenanceCallback("mnist", extra_hyperparameters={"Learning-Rate": 0.3},
                               save_model=False, capture_environment=False) as callback:
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    otrain = labels(sql, "otrain")
    assert {otrain["f1_0"], otrain["f1_1"], otrain["f1_2"]} == {"f1[0]", "f1[1]", "f1[2]"}
    columns = {label: column for column, label in otrain.items()}
    assert columns["acc/top1"] != columns["acc-top1"]  # both kept
    rows = sql(f"SELECT f1_0, f1_1, f1_2, {columns['acc/top1']}, {columns['acc-top1']} "
               f"FROM mnist__otrain ORDER BY epoch")
    assert len(rows) == 2 and all(value is not None for row in rows for value in row)
    assert sql("SELECT learning_rate, learning_rate_2 FROM mnist__itrain") == [
        (pytest.approx(0.1), 0.3)]
    assert told([r.getMessage() for r in caplog.records
                 if "metric 'f1' is a ndarray of shape (3,)" in r.getMessage()]) == 2


def test_a_metric_that_changes_after_plain_epochs_is_still_told(sql, caplog,
                                                                fresh_throttle) -> None:
    fresh_throttle.interval = 0
    with caplog.at_level(logging.WARNING, logger="dlprov.integrations"), \
            track_training("mnist", capture_environment=False) as log:
        for epoch in range(3):  # plain numbers: the quick path
            log.epoch_end(epoch, loss=torch.tensor(1.0), Acc=0.5)
        log.epoch_end(3, loss=torch.tensor([1.0, 2.0]), Acc=0.5, acc=0.75)
        log.epoch_end(4, loss=float("nan"), Acc=torch.tensor(0.5))
    assert sql("SELECT loss, loss_0, loss_1, acc FROM mnist__otrain ORDER BY epoch") == [
        (1.0, None, None, 0.5), (1.0, None, None, 0.5), (1.0, None, None, 0.5),
        (None, 1.0, 2.0, 0.75), (None, None, None, 0.5)]  # NaN is NULL in SQLite
    text = caplog.text
    assert "metric 'loss' is a Tensor of shape (2,): stored element by element in loss_0, " \
           "loss_1" in text
    assert "metric 'Acc' left out: it is the same name as 'acc' (names are case-insensitive)" \
           in text


def test_labels_are_checked_and_kept_by_the_spec() -> None:
    from dlprov.errors import SpecError
    from dlprov.model.spec import DataflowSpec

    assert Attribute("loss", label="LOSS").label is None  # the same name, in another case
    with pytest.raises(SpecError, match="cannot be stored"):
        Attribute("loss", label="a\x00b")
    with pytest.raises(SpecError, match="must be a string"):
        Attribute("loss", label=3)
    spec = DataflowSpec("mnist")
    spec.add_set("otrain", [Attribute("val_loss", "numeric", label="val/loss")])
    again = DataflowSpec.from_dict(spec.to_dict())
    assert again.sets["otrain"].attributes["val_loss"].label == "val/loss"
    other = DataflowSpec("mnist")  # another process chose the same column for another name
    other.add_set("otrain", [Attribute("val_loss", "numeric", label="val-loss")])
    again.merge(other)
    assert again.sets["otrain"].attributes["val_loss"].label == "val/loss"  # the first stays


def test_colliding_names_through_the_http_store(sql, store_path) -> None:
    pytest.importorskip("uvicorn")
    from dlprov.server.background import serve_in_thread

    with serve_in_thread(str(store_path)) as url:
        for run in range(2):
            with track_training("mnist", store=url, capture_environment=False) as log:
                log.epoch_end(0, **{name: value + run for name, value in COLLIDING.items()})
    assert sql("SELECT val_loss, val_loss_2, val_loss_3, m_1f525, m FROM mnist__otrain "
               "ORDER BY id") == [(2.0, 1.0, 3.0, 4.0, 5.0), (3.0, 2.0, 4.0, 5.0, 6.0)]
    assert labels(sql, "otrain")["val_loss_2"] == "val/loss"
