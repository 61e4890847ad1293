"""Limits known at the call are checked at the call (dlprov.model.limits), the same on SQLite,
PostgreSQL and through the server: a set's width, derived identifiers, a value's size, NUL and
lone surrogates. A refused call stores nothing, and the run goes on storing what follows."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import MetaData

import dlprov
from dlprov.dfa import Attribute, DataSet, Dataflow, Element, Set, SetType, Task, Transformation
from dlprov.dfa import end_execution
from dlprov.model import limits
from dlprov.model.names import MAX_NAME_LENGTH
from dlprov.model.spec import DataflowSpec
from dlprov.store import schema
from tests.capture.stores import backend_for


@pytest.fixture(params=["sqlite", "postgresql", "http"])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with backend_for(request.param, tmp_path, "limits_checked") as found:  # 14 characters
        yield found


def _wide(count: int) -> dict[str, float]:
    return {f"a{i}": float(i) for i in range(count)}


# -- the width of a set ---------------------------------------------------------------------
def test_a_set_over_the_attribute_limit_is_refused_at_the_call_and_the_run_goes_on(backend):
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("train") as train:
            for epoch in range(6):
                train.output("otrain", epoch=epoch, loss=0.5)
            with pytest.raises(dlprov.SpecError, match=r"set 'owide' would have 3000 attributes; "
                                                       r"a set holds at most 1000"):
                train.output("owide", **_wide(3000))
            for epoch in range(6, 12):
                train.output("otrain", epoch=epoch, loss=0.5)
            train.output("owide", **_wide(limits.MAX_ATTRIBUTES_PER_SET))  # the limit itself
            with pytest.raises(dlprov.SpecError, match="would have 1001 attributes"):
                run.declare_set("owide", {"one_more": "numeric"})
    assert run.recorder.rejected == 0 and not run.recorder.spool
    assert len(backend.rows("otrain", "epoch")) == 12
    assert backend.rows("owide", "a0, a999") == [(0.0, 999.0)]
    assert "one_more" not in run.book.spec.sets["owide"].attributes


def test_a_set_whose_rows_postgresql_could_refuse_is_refused_at_the_call(backend):
    """The worst row of a text set at the limit, 23 characters a value (TOAST moves longer
    ones out of the row), is stored by every backend; one attribute more is refused, and so is
    a transformation more on a numeric set at the limit."""
    texts = {f"t{i}": "x" * 23 for i in range(336)}
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.SpecError, match=r"set 'otext' with 337 attributes and 1 "
                                                       r"transformations could make rows of "
                                                       r"8168 bytes, over the 8160"):
                train.output("otext", **texts, one_more="x")
            train.output("otext", **texts)
            train.output("owide", **_wide(limits.MAX_ATTRIBUTES_PER_SET))
        with pytest.raises(dlprov.SpecError, match="'owide' with 1000 attributes and 2 "
                                                   "transformations could make rows of 8168"):
            run.task("test", depends_on=train)  # would use owide: one more task column
        run.task("test", depends_on=train, uses=["otext"]).end()
    assert run.recorder.rejected == 0 and not run.recorder.spool
    assert backend.rows("otext", "t0, t335, test_task_id IS NOT NULL") == [
        ("x" * 23, "x" * 23, True)]
    assert len(backend.rows("owide", "a999")) == 1


def test_the_column_limits_keep_every_table_within_postgresql_and_sqlite():
    columns = 1 + limits.MAX_TRANSFORMATIONS_PER_SET + limits.MAX_ATTRIBUTES_PER_SET
    assert columns < 1600 < 2000  # id, task columns, attributes: PostgreSQL, SQLite


def test_adding_transformations_cannot_widen_a_set_past_the_limit(store_path, sql, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TRANSFORMATIONS_PER_SET", 3)
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
        run.task("test_a", depends_on=train).end()
        run.task("test_b", depends_on=train).end()
        with pytest.raises(dlprov.SpecError, match=r"set 'otrain' would be produced or used by "
                                                   r"4 transformations; at most 3"):
            run.task("test_c", depends_on=train)
    assert "test_c" not in run.book.spec.transformations
    assert [c for (_, c, *_) in sql('PRAGMA table_info("mnist__otrain")')
            if c.endswith("_task_id")] == ["train_task_id", "test_a_task_id", "test_b_task_id"]


# -- derived identifiers --------------------------------------------------------------------
def test_every_identifier_the_store_derives_fits_postgresql():
    """The longest names the limits let through make identifiers PostgreSQL keeps whole."""
    df_tag = "d" * 13
    set_tag = "s" * (limits.MAX_IDENTIFIER_BYTES - len(df_tag) - 2)  # <df>__<set>: 63
    transformation = "t" * (51 - len(set_tag))  # ix_<set>_<t>_task_id: 63
    spec = DataflowSpec(df_tag)
    spec.add_set(set_tag, [dlprov.Attribute("a" * MAX_NAME_LENGTH)])
    spec.add_role(transformation, set_tag, "output")
    limits.check_spec(spec)
    for dialect in ("sqlite", "postgresql"):
        table = schema.set_table(dialect, spec, set_tag, MetaData())
        names = [table.name, *table.columns.keys()]
        if dialect == "postgresql":  # SQLite has no limit; its index names are longer
            names.append(schema.task_column_index(table, f"{transformation}_task_id").name)
        assert max(len(n) for n in names) <= 63, names
    spec.add_role(transformation + "x", set_tag, "input", transformation)
    with pytest.raises(dlprov.SpecError, match="the task column's index"):
        limits.check_spec(spec)


def test_names_too_long_together_are_refused_at_the_call(backend):
    df_tag = backend.df_tag
    long_set = "s" * (62 - len(df_tag))  # <df>__<set>: 64 bytes
    short_set = "s" * (61 - len(df_tag))  # 63 bytes
    too_long = "t" * (52 - len(short_set))  # ix_<set>_<t>_task_id: 64 bytes
    with dlprov.run(df_tag, store=backend.url) as run:
        with run.task("train") as train:
            with pytest.raises(dlprov.SpecError, match=f"dataflow {df_tag!r} and set "
                                                       f"{long_set!r}"):
                train.output(long_set, loss=0.5)
            with run.task(too_long) as other:
                with pytest.raises(dlprov.SpecError, match="the task column's index"):
                    other.output(short_set, loss=0.5)
            with run.task(too_long[1:]) as fits:  # 63 bytes: stored on PostgreSQL too
                fits.output(short_set, loss=0.5)
            train.output("otrain", loss=0.5)
    assert run.recorder.rejected == 0 and not run.recorder.spool
    assert backend.set_tables() == {short_set, "otrain"}
    assert backend.rows(short_set, f"{too_long[1:]}_task_id, loss")[0][1] == 0.5


# -- values ---------------------------------------------------------------------------------
BAD_VALUES = [
    ("note", "a\x00b", "NUL character"),
    ("note", "caf\ud800", "lone surrogate"),
    ("note", "x" * (limits.MAX_VALUE_BYTES + 1), "over the limit of 1048576 bytes"),
    ("note", "é" * (limits.MAX_VALUE_BYTES // 2 + 1), "over the limit"),  # bytes, not characters
    ("path", "/data/\udcff.pt", "lone surrogate"),
    ("config", {"layers": ["a\x00"]}, "NUL character"),
    ("config", {"k\x00": 1}, "NUL character"),
    ("config", ["\udc80"], "lone surrogate"),
    ("config", {"blob": "x" * limits.MAX_VALUE_BYTES}, "over the limit"),
]


def test_values_no_store_can_hold_are_refused_at_the_call_on_every_backend(backend, tmp_path):
    from pathlib import Path
    with dlprov.run(backend.df_tag, store=backend.url) as run:
        with run.task("train") as train:
            train.output("otrain", note="first", path=Path("/data/a.pt"), config={"k": "v"})
            for attribute, bad, message in BAD_VALUES:
                with pytest.raises(dlprov.ValueRejected, match=message) as raised:
                    train.output("otrain", **{"note": "ok", attribute: bad})
                assert f"set 'otrain', attribute {attribute!r}" in str(raised.value)
                with pytest.raises(dlprov.ValueRejected, match=message):  # a first element too
                    train.output(f"o{len(attribute)}", **{attribute: bad})
            train.output("otrain", note="last \\u0000 is text", config={"k": "\\u0000"})
    assert run.recorder.rejected == 0 and not run.recorder.spool
    rows = backend.rows("otrain", "note, config")
    assert [note for note, _ in rows] == ["first", "last \\u0000 is text"]
    assert backend.set_tables() == {"otrain"}


def test_the_value_limit_counts_utf8_bytes_and_can_be_changed(store_path, monkeypatch):
    with dlprov.run("mnist", capture_environment=False) as run:
        with run.task("train") as train:
            monkeypatch.setattr(limits, "MAX_VALUE_BYTES", 10)
            train.output("otrain", note="x" * 10)
            train.output("otrain", note="é" * 5)
            with pytest.raises(dlprov.ValueRejected, match="11 bytes, over the limit of 10"):
                train.output("otrain", note="é" * 5 + "x")


def test_text_fields_of_runs_and_tasks_are_checked_too(store_path, sql):
    with pytest.raises(dlprov.ValueRejected, match="exec_tag.*NUL"):
        dlprov.run("mnist", exec_tag="a\x00b", capture_environment=False)
    with pytest.raises(dlprov.ValueRejected, match="organization.*lone surrogate"):
        dlprov.run("mnist", organization="\ud800", capture_environment=False)
    with dlprov.run("mnist", capture_environment=False) as run:
        with pytest.raises(dlprov.ValueRejected, match="sub_id is 65 characters"):
            run.task("train", sub_id="x" * 65)
        with pytest.raises(dlprov.ValueRejected, match="the model's name"):
            run.task("train").model("m.pt", name="m\x00")
        failing = run.task("failing")
        failing.end("a traceback with a NUL \x00 and \udcff")  # kept, made storable
    assert sql("SELECT error_msg FROM task WHERE error_msg IS NOT NULL") == [
        ("a traceback with a NUL \\x00 and \\udcff",)]


# -- the dfa API ----------------------------------------------------------------------------
def test_the_dfa_api_checks_the_same_limits(store_path, sql, monkeypatch):
    monkeypatch.setenv("DLPROV_DFA_STRICT", "1")  # lenient, a bad value is stored NULL
    wide = Transformation("train", [Set("owide", SetType.OUTPUT,
                                        [Attribute(f"a{i}", "numeric") for i in range(1001)])])
    with pytest.raises(dlprov.SpecError, match="1001 attributes"):
        Dataflow("wide", transformations=[wide]).save()
    df = Dataflow("dfalim", transformations=[Transformation("train", [
        Set("otrain", SetType.OUTPUT, [Attribute("note", "text")])])])
    df.save()
    task = Task(1, df, "dfalim-1", "train")
    with pytest.raises(dlprov.ValueRejected, match="NUL"):
        task.add_dataset(DataSet("otrain", [Element(["ok"]), Element(["a\x00"])]))
    task.add_dataset(DataSet("otrain", [Element(["ok"])]))
    task.end()
    end_execution("dfalim-1")
    assert sql("SELECT note FROM dfalim__otrain") == [("ok",)]


# -- the server's batch validation ----------------------------------------------------------
@pytest.fixture
def server(store_path, monkeypatch):
    pytest.importorskip("fastapi")
    from dlprov.server.background import serve_in_thread
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path)) as url:
        yield url


def _batch(element: dict | None = None, spec_sets: dict | None = None,
           transformation: str = "train") -> list:
    now = {"$datetime": "2025-01-01T12:00:00"}
    sets = spec_sets or {"otrain": [{"name": "note", "type": "text"}]}
    spec = {"tag": "df", "transformations": [transformation], "sets": sets,
            "dependencies": [[transformation, None, tag] for tag in sets]}
    records = [["spec", "df", spec],
               ["exec_start", "e" * 32, {"tag": "x1", "df_tag": "df", "start_time": now}],
               ["task_start", "t" * 32, {"exec_key": "e" * 32, "transformation": "train",
                                         "identifier": 1, "status": "running",
                                         "start_time": now}]]
    if element is not None:
        records.append(["element", "t" * 32, "otrain", element])
    return records


@pytest.mark.parametrize("body, message", [
    (_batch({"note": "a\x00b"}), "set 'otrain', attribute 'note': the text holds a NUL"),
    (_batch({"note": "x" * (limits.MAX_VALUE_BYTES + 1)}), "over the limit"),
    (_batch({"note": {"deep": ["\x00"]}}), "NUL"),
    (_batch({f"a{i}": 1.0 for i in range(1001)}), "1001 attributes"),
    (_batch({"note": "a", "NOTE": "b"}), "given twice"),
    (_batch(spec_sets={"otrain": [{"name": f"a{i}", "type": "numeric"} for i in range(1001)]}),
     "1001 attributes"),
    (_batch(spec_sets={"s" * 40: []}, transformation="t" * 12), "the task column's index"),
])
def test_the_server_refuses_what_the_call_refuses_and_stores_nothing(server, sql, body,
                                                                     message):
    import httpx
    answer = httpx.post(f"{server}/v1/batch", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["detail"]
    tables = {name for (name,) in sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "dataflow" not in tables or sql("SELECT count(*) FROM dataflow") == [(0,)]


def test_the_server_refuses_a_lone_surrogate(server, sql):
    import httpx
    body = json.dumps(_batch({"note": "\ud800"}))  # escaped: \ud800 in the JSON text
    answer = httpx.post(f"{server}/v1/batch", content=body.encode(),
                        headers={"content-type": "application/json"}, timeout=30)
    assert answer.status_code == 400 and "lone surrogate" in answer.json()["detail"]
    answer = httpx.post(f"{server}/v1/batch", json=_batch({"note": "fine"}), timeout=30)
    assert answer.status_code == 200, answer.text
    assert sql("SELECT note FROM df__otrain") == [("fine",)]
