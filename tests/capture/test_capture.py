"""The Pythonic capture API, checked against what lands in a real SQLite store.

Set tables are named ``<df_tag>__<set_tag>``; every test leaves the run (which waits for the
write) or calls ``run.flush()`` before reading with the ``sql`` fixture.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

import dlprov
from dlprov.store import schema
from dlprov.store.store import Store


def columns(sql, table: str) -> dict[str, str]:
    """Column name → declared SQL type of ``table``."""
    return {name: kind for _, name, kind, *_ in sql(f'PRAGMA table_info("{table}")')}


def tables(sql) -> set[str]:
    return {name for (name,) in sql("SELECT name FROM sqlite_master WHERE type = 'table'")}


def attribute_types(sql, set_tag: str) -> dict[str, str]:
    return dict(sql("SELECT a.name, a.type FROM attribute a JOIN data_set d ON d.id = a.ds_id "
                    "WHERE d.tag = ?", set_tag))


# -- the spec, inferred and enforced --------------------------------------------------------------

def test_first_element_fixes_the_sets_attributes_and_types(sql, tmp_path) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=0.5, optimizer="adam", early_stop=False,
                         finished_at=datetime(2024, 5, 1, 12, 0), config={"layers": [64, 32]},
                         checkpoint=tmp_path / "model.pt")
            train.output("otrain", epoch=2, loss=0.25)  # the attributes left out stay NULL

    assert attribute_types(sql, "otrain") == {
        "epoch": "numeric", "loss": "numeric", "optimizer": "text", "early_stop": "numeric",
        "finished_at": "timestamp", "config": "json", "checkpoint": "file"}
    assert columns(sql, "mnist__otrain") == {
        "id": "INTEGER", "train_task_id": "INTEGER", "epoch": "DOUBLE", "loss": "DOUBLE",
        "optimizer": "TEXT", "early_stop": "DOUBLE", "finished_at": "DATETIME",
        "config": "TEXT", "checkpoint": "TEXT"}  # JSON text: see JsonValue
    assert sql("SELECT epoch, loss, optimizer, early_stop, checkpoint FROM mnist__otrain "
               "ORDER BY id") == [(1.0, 0.5, "adam", 0.0, str(tmp_path / "model.pt")),
                                  (2.0, 0.25, None, None, None)]


def test_unknown_attribute_is_a_spec_error_naming_set_and_attribute(sql) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=0.5)
            with pytest.raises(dlprov.SpecError) as raised:
                train.output("otrain", epoch=2, loss=0.4, accuracy=0.9)
            train.output("otrain", EPOCH=3, Loss=0.3)  # names are case-insensitive, as stored
    message = str(raised.value)
    assert "'otrain'" in message and "'accuracy'" in message
    assert sql("SELECT epoch, loss FROM mnist__otrain ORDER BY id") == [(1.0, 0.5), (3.0, 0.3)]
    assert "accuracy" not in columns(sql, "mnist__otrain")


@pytest.mark.parametrize("attribute, bad", [("loss", "0.5"), ("loss", [0.5]),
                                            ("optimizer", 5), ("optimizer", b"adam")])
def test_a_value_of_the_wrong_type_is_rejected(sql, attribute, bad) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5, optimizer="adam")
            with pytest.raises(dlprov.ValueRejected) as raised:
                train.output("otrain", **{"loss": 0.4, "optimizer": "sgd", attribute: bad})
    assert "'otrain'" in str(raised.value) and repr(attribute) in str(raised.value)
    assert sql("SELECT loss, optimizer FROM mnist__otrain") == [(0.5, "adam")]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=str)
def test_nan_and_inf_are_rejected_unless_declared(sql, bad) -> None:
    np = pytest.importorskip("numpy")
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.ValueRejected, match="allow_nan"):
                train.output("otrain", epoch=0, loss=bad)  # a bad first element adds no set
            train.output("otrain", epoch=1, loss=0.5)
            for value in (bad, np.float64(bad), np.float32(bad)):
                with pytest.raises(dlprov.ValueRejected, match="allow_nan"):
                    train.output("otrain", epoch=2, loss=value)
    assert sql("SELECT epoch, loss FROM mnist__otrain") == [(1.0, 0.5)]


def test_inf_is_stored_when_the_attribute_allows_it(sql) -> None:
    with dlprov.run("mnist") as run:
        run.declare_set("otrain", [dlprov.Attribute("epoch", "numeric"),
                                   dlprov.Attribute("loss", "numeric", allow_nan=True)])
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=float("inf"))
            train.output("otrain", epoch=2, loss=-float("inf"))
            train.output("otrain", epoch=3, loss=float("nan"))  # accepted, no exception
            with pytest.raises(dlprov.ValueRejected):
                train.output("otrain", epoch=float("nan"), loss=1.0)  # only loss may
    assert sql("SELECT allow_nan FROM attribute WHERE name = 'loss'") == [(1,)]
    assert sql("SELECT epoch, loss FROM mnist__otrain WHERE epoch < 3 ORDER BY id") == [
        (1.0, math.inf), (2.0, -math.inf)]
    assert sql("SELECT count(*) FROM mnist__otrain") == [(3,)]


def test_an_allowed_nan_is_null_in_sqlite(sql) -> None:
    # SQLite has no NaN: as documented on Attribute, an allowed NaN is stored as NULL there.
    with dlprov.run("mnist") as run:
        run.declare_set("otrain", [dlprov.Attribute("loss", "numeric", allow_nan=True)])
        with run.task("train") as train:
            train.output("otrain", step=1, loss=float("nan"))
            train.output("otrain", step=2, loss=0.5)
    assert sql("SELECT step, typeof(loss) FROM mnist__otrain ORDER BY id") == [
        (1.0, "null"), (2.0, "real")]


# -- framework values --------------------------------------------------------------------------

def test_numpy_and_torch_scalars_are_stored_as_numbers(sql) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    with dlprov.run("mnist") as run:
        with run.task("train") as train:  # the first element's scalars give numeric columns
            train.output("otrain", a=np.float32(0.5), b=np.int64(3), c=np.bool_(True),
                         d=torch.tensor(2.5), e=torch.tensor(4),
                         f=torch.tensor(0.25, requires_grad=True) * 1)
            train.output("otrain", a=np.float64(1.5), b=np.array(7), c=0, d=torch.tensor([3.5]),
                         e=np.int8(-1), f=torch.ones(1, 1))
    assert set(attribute_types(sql, "otrain").values()) == {"numeric"}
    assert sql("SELECT a, b, c, d, e, f FROM mnist__otrain ORDER BY id") == [
        (0.5, 3.0, 1.0, 2.5, 4.0, 0.25), (1.5, 7.0, 0.0, 3.5, -1.0, 1.0)]
    assert sql("SELECT DISTINCT typeof(a), typeof(b), typeof(d), typeof(f) "
               "FROM mnist__otrain") == [("real", "real", "real", "real")]


def test_whole_arrays_and_tensors_are_rejected(sql) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.ValueRejected, match=r"shape \(3,\)"):
                train.output("otrain", loss=np.array([0.1, 0.2, 0.3]))  # first element
            train.output("otrain", loss=torch.tensor(0.5))
            with pytest.raises(dlprov.ValueRejected, match=r"shape \(2, 2\)"):
                train.output("otrain", loss=torch.zeros(2, 2))
            with pytest.raises(dlprov.ValueRejected, match="not a whole tensor"):
                train.output("otrain", loss=np.zeros((2, 3)))
            with pytest.raises(dlprov.ValueRejected):
                train.output("otrain", loss=torch.tensor([]))
    assert sql("SELECT loss FROM mnist__otrain") == [(0.5,)]


# -- names that could be SQL -------------------------------------------------------------------

ODD_NAMES = ["my set", "it's", 'say "hi"', "x; DROP TABLE task", "x); DROP TABLE task; --",
             "task", "a__b", "1st", "", "naïve", "x" * 49]


# A dataflow tag may start with a digit and be 50 characters long, as the original's were
# (tests/model/test_dataflow_tags.py); every other name is an SQL identifier.
_TAG_OK = {"1st", "x" * 49}


@pytest.mark.parametrize("where, name", [
    (where, name) for where in ("dataflow", "transformation", "set", "attribute", "declared set",
                                "declared attribute")
    for name in ODD_NAMES if not (where == "dataflow" and name in _TAG_OK)])
def test_odd_names_are_rejected_and_nothing_is_stored(sql, name, where) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.NameRejected):
                if where == "dataflow":
                    dlprov.run(name)
                elif where == "transformation":
                    run.task(name)
                elif where == "set":
                    train.output(name, loss=0.5)
                elif where == "attribute":
                    train.output("otrain", **{name: 0.5})
                elif where == "declared set":
                    run.declare_set(name, {"loss": "numeric"})
                else:
                    run.declare_set("otrain", {name: "numeric"})
            train.output("otrain", loss=0.5)
    found = tables(sql)
    assert {"task", "dataflow", "attribute"} <= found
    assert sql("SELECT tag FROM dataflow") == [("mnist",)]
    assert sql("SELECT count(*) FROM dataflow_execution") == [(1,)]
    assert {t for t in found if t.startswith("mnist__")} == {"mnist__otrain"}
    assert columns(sql, "mnist__otrain") == {"id": "INTEGER", "train_task_id": "INTEGER",
                                             "loss": "DOUBLE"}
    assert sql("SELECT tag FROM data_transformation") == [("train",)]
    assert sql("SELECT tag FROM data_set") == [("otrain",)]
    assert sql("SELECT name FROM attribute") == [("loss",)]
    assert sql("SELECT count(*) FROM task") == [(1,)]
    assert sql("SELECT loss FROM mnist__otrain") == [(0.5,)]


# -- failures ----------------------------------------------------------------------------------

def test_a_task_that_raises_is_failed_and_the_error_propagates(sql) -> None:
    with dlprov.run("mnist", exec_tag="survives") as run:
        with pytest.raises(RuntimeError, match="loss diverged"):
            with run.task("train") as train:
                train.output("otrain", epoch=0, loss=1.0)
                raise RuntimeError("loss diverged")
        with run.task("evaluate") as evaluate:
            evaluate.output("oevaluate", accuracy=0.5)
    (status, error, ended), = sql(
        "SELECT t.status, t.error_msg, t.end_time FROM task t "
        "JOIN data_transformation d ON d.id = t.dt_id WHERE d.tag = 'train'")
    assert status == "failed" and ended is not None
    assert "RuntimeError: loss diverged" in error and "Traceback" in error
    assert sql("SELECT t.status, t.error_msg FROM task t JOIN data_transformation d "
               "ON d.id = t.dt_id WHERE d.tag = 'evaluate'") == [("finished", None)]
    assert sql("SELECT status, error_msg FROM dataflow_execution") == [("finished", None)]
    assert sql("SELECT epoch, loss FROM mnist__otrain") == [(0.0, 1.0)]


def test_a_run_that_raises_is_failed_with_its_open_tasks(sql) -> None:
    with pytest.raises(ValueError, match="bad batch"):
        with dlprov.run("mnist", exec_tag="broken") as run:
            with run.task("train") as train:
                train.output("otrain", epoch=0, loss=1.0)
            evaluate = run.task("evaluate")  # left open: it ends with the run
            evaluate.output("oevaluate", accuracy=0.5)
            raise ValueError("bad batch")
    assert run.status == "failed"
    ((tag, status, error, ended),) = sql(
        "SELECT tag, status, error_msg, end_time FROM dataflow_execution")
    assert (tag, status, error) == ("broken", "failed", "bad batch") and ended is not None
    assert sql("SELECT d.tag, t.status FROM task t JOIN data_transformation d ON d.id = t.dt_id "
               "ORDER BY t.id") == [("train", "finished"), ("evaluate", "failed")]
    assert sql("SELECT accuracy FROM mnist__oevaluate") == [(0.5,)]


# -- dependencies between tasks ----------------------------------------------------------------

def _id_of(sql, transformation: str) -> int:
    (found,), = sql("SELECT t.id FROM task t JOIN data_transformation d ON d.id = t.dt_id "
                    "WHERE d.tag = ?", transformation)
    return found


def test_uses_stamps_the_consumer_on_the_sets_it_names(sql, tmp_path) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01)
            for epoch in range(3):
                train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1))
            train.output("otrainedmodel", path=tmp_path / "model.pt")
        with run.task("test", depends_on=train, uses=["otrainedmodel"]) as test:
            test.output("otest", accuracy=0.9)
    train_id, test_id = _id_of(sql, "train"), _id_of(sql, "test")
    assert sql("SELECT train_task_id, test_task_id, path FROM mnist__otrainedmodel") == [
        (train_id, test_id, str(tmp_path / "model.pt"))]
    assert "test_task_id" not in columns(sql, "mnist__otrain")
    assert sql("SELECT task_id, depends_on_id FROM task_dependency") == [(test_id, train_id)]
    assert sql("SELECT u.task_id, u.producer_task_id, d.tag FROM task_usage u "
               "JOIN data_set d ON d.id = u.ds_id") == [(test_id, train_id, "otrainedmodel")]
    assert sql("SELECT p.tag, n.tag FROM data_dependency x JOIN data_set d ON d.id = x.ds_id "
               "JOIN data_transformation p ON p.id = x.previous_dt_id "
               "JOIN data_transformation n ON n.id = x.next_dt_id "
               "WHERE d.tag = 'otrainedmodel'") == [("train", "test")]


def test_depends_on_without_uses_uses_everything_the_task_produced(sql) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01)
            train.output("otrain", epoch=0, loss=1.0)
            train.output("otrainedmodel", path="model.pt")
        with run.task("test", depends_on=[train]):
            pass
        with run.task("test", depends_on=[train]):  # a second consumer of the same elements
            pass
    train_id = _id_of(sql, "train")
    first, second = [i for (i,) in sql("SELECT t.id FROM task t JOIN data_transformation d "
                                       "ON d.id = t.dt_id WHERE d.tag = 'test' ORDER BY t.id")]
    assert sql("SELECT test_task_id FROM mnist__otrain") == [(first,)]  # the first consumer
    assert sql("SELECT test_task_id FROM mnist__otrainedmodel") == [(first,)]
    assert "test_task_id" not in columns(sql, "mnist__itrain")  # an input, not produced
    assert sql("SELECT u.task_id, u.producer_task_id, d.tag FROM task_usage u JOIN data_set d "
               "ON d.id = u.ds_id ORDER BY u.task_id, d.tag") == [
        (first, train_id, "otrain"), (first, train_id, "otrainedmodel"),
        (second, train_id, "otrain"), (second, train_id, "otrainedmodel")]


def test_uses_naming_a_set_not_produced_is_a_spec_error(sql) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.01)
            train.output("otrain", epoch=0, loss=1.0)
        with pytest.raises(dlprov.SpecError, match="omodel"):
            run.task("test", depends_on=train, uses=["omodel"])
        with pytest.raises(dlprov.SpecError, match="itrain"):  # an input is not produced
            run.task("test", depends_on=train, uses=["itrain"])
    assert sql("SELECT count(*) FROM task") == [(1,)]
    assert sql("SELECT count(*) FROM task_usage") == [(0,)]
    assert "test_task_id" not in columns(sql, "mnist__otrain")


def test_a_rejected_task_leaves_no_transformation_in_the_spec(sql) -> None:
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=1.0)
        with pytest.raises(dlprov.SpecError):
            run.task("evaluate", depends_on=train, uses=["omodel"])
        with run.task("train") as again:  # sends the spec again, with its new set
            again.output("ovalid", accuracy=0.5)
    assert sql("SELECT tag FROM data_transformation ORDER BY id") == [("train",)]
    (spec,), = sql("SELECT spec FROM dataflow_version ORDER BY version DESC LIMIT 1")
    assert json.loads(spec)["transformations"] == ["train"]


# -- a spec that grows between runs ------------------------------------------------------------

SECOND_RUN = textwrap.dedent("""
    import dlprov
    with dlprov.run("mnist", exec_tag="second") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=0.9, accuracy=0.6)
""")


def test_a_new_attribute_in_a_later_run_makes_a_new_version_and_column(sql, tmp_path) -> None:
    with dlprov.run("mnist", exec_tag="first") as run:
        with run.task("train") as train:
            for epoch in range(2):
                train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1))
    (before,), = sql("SELECT max(version) FROM dataflow_version")
    assert "accuracy" not in columns(sql, "mnist__otrain")

    # The second run is a new process: it loads the spec from the store, not from memory.
    subprocess.run([sys.executable, "-c", SECOND_RUN], check=True, cwd=tmp_path, timeout=60)

    assert sql("SELECT max(version), count(*) FROM dataflow_version") == [(before + 1, before + 1)]
    specs = {v: json.loads(s) for v, s in sql("SELECT version, spec FROM dataflow_version")}
    assert [a["name"] for a in specs[before]["sets"]["otrain"]] == ["epoch", "loss"]
    assert [a["name"] for a in specs[before + 1]["sets"]["otrain"]] == [
        "epoch", "loss", "accuracy"]
    assert columns(sql, "mnist__otrain")["accuracy"] == "DOUBLE"
    assert sql("SELECT e.tag, o.epoch, o.loss, o.accuracy FROM mnist__otrain o "
               "JOIN task t ON t.id = o.train_task_id JOIN dataflow_execution e "
               "ON e.id = t.exec_id ORDER BY o.id") == [
        ("first", 0.0, 1.0, None), ("first", 1.0, 0.5, None), ("second", 0.0, 0.9, 0.6)]
    # Which version the second run's rows name depends on how its records were batched.
    versions = dict(sql("SELECT tag, df_version FROM dataflow_execution"))
    assert versions["first"] == before and versions["second"] in (before, before + 1)


# -- typed values round-trip -------------------------------------------------------------------

def _read_set(store_path: Path, df_tag: str, set_tag: str) -> list[dict]:
    store = Store(store_path)
    try:
        table = schema.set_table("sqlite", store.load_spec(df_tag), set_tag)
        with store.read() as conn:
            return [dict(row) for row in conn.execute(select(table).order_by(table.c.id))
                    .mappings()]
    finally:
        store.dispose()


def test_timestamp_json_and_file_values_round_trip(sql, store_path, tmp_path) -> None:
    saved_at = datetime(2024, 5, 1, 12, 30, 15, 123456)
    config = {"layers": [64, 32], "dropout": 0.1, "name": "mlp", "flags": None,
              "nested": {"ok": True}}
    weights = tmp_path / "weights" / "model.pt"
    with dlprov.run("mnist") as run:
        run.declare_set("ocheckpoint", {"saved_at": "timestamp", "config": "json",
                                        "weights": "file", "note": "text"})
        with run.task("train") as train:
            train.output("ocheckpoint", saved_at=saved_at, config=config, weights=weights,
                         note="it's \"quoted\"; DROP TABLE task")
            train.output("ocheckpoint", saved_at="2024-05-02T08:00:00", config=[1, "two", 3.5],
                         weights=str(weights))
            train.output("ocheckpoint", saved_at=date(2024, 5, 3),
                         config="just a string", weights=None)
            train.output("ocheckpoint", saved_at=1714723200.5, config=7)
            with pytest.raises(dlprov.ValueRejected):
                train.output("ocheckpoint", saved_at="last tuesday")
            with pytest.raises(dlprov.ValueRejected):
                train.output("ocheckpoint", config={"fn": print})
            with pytest.raises(dlprov.ValueRejected):
                train.output("ocheckpoint", weights=42)

    rows = _read_set(store_path, "mnist", "ocheckpoint")
    assert [r["saved_at"] for r in rows] == [
        saved_at, datetime(2024, 5, 2, 8), datetime(2024, 5, 3),
        datetime.fromtimestamp(1714723200.5)]  # naive local time, like the store's own times
    assert [r["config"] for r in rows] == [config, [1, "two", 3.5], "just a string", 7]
    assert [r["weights"] for r in rows] == [str(weights), str(weights), None, None]
    assert rows[0]["note"] == "it's \"quoted\"; DROP TABLE task"
    # What other tools see: SQLite's JSON functions read the column, times sort as text.
    assert sql("SELECT json_extract(config, '$.layers[1]'), json_extract(config, "
               "'$.nested.ok') FROM mnist__ocheckpoint WHERE id = 1") == [(32, 1)]
    assert sql("SELECT saved_at FROM mnist__ocheckpoint ORDER BY saved_at LIMIT 1") == [
        ("2024-05-01 12:30:15.123456",)]
    assert "task" in tables(sql)


def test_one_instant_is_stored_as_one_time_however_it_is_given(store_path) -> None:
    instant = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.output("oevents", at=instant)
            train.output("oevents", at=instant.timestamp())
            train.output("oevents", at=instant.isoformat())
            train.output("oevents", at=instant.astimezone(timezone.utc))
    stored = {r["at"] for r in _read_set(store_path, "mnist", "oevents")}
    assert stored == {instant.astimezone().replace(tzinfo=None)}  # naive local time


@pytest.mark.parametrize("value", [5, 0, 2.5, "7", [1, 2], {"a": None}, True])
def test_json_values_read_back_as_given(sql, value) -> None:
    # Found by the property tests: SQLite's numeric affinity turned the JSON text 5 into 5.
    with dlprov.run("jsonvalues") as run:
        run.declare_set("oconfig", [dlprov.Attribute("config", "json")])
        with run.task("train") as train:
            train.output("oconfig", config=value)
    [(stored,)] = sql("SELECT config FROM jsonvalues__oconfig")
    assert isinstance(stored, str) and json.loads(stored) == value
    [record] = dlprov.sql("SELECT config FROM oconfig").records()
    assert record["config"] in (stored, value)
