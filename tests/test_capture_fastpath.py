"""The capture call's fast path (``values.convert_row``) against the converters it skips.

``task.input/output`` convert a row with :func:`dlprov.model.values.convert_row`, which takes
plain floats, ints and short text without a converter call and sends every other value through
its converter; a name in another case goes to the slow path (``Task._slow_row``: every value
through its converter). These tests hold the fast path to the converters: the same record (same
Python types and values), the same errors, nothing queued after an error. Records are taken
where the task hands them to the recorder: the task's ``_put`` is wrapped (the real recorder
still gets every record) so that the queued row itself is seen.
"""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dlprov
from dlprov.model import limits
from dlprov.model import records as r
from dlprov.model.spec import Attribute, AttributeType
from dlprov.model.values import convert_row, converter

# One set with an attribute of every type; "lenient" is numeric with allow_nan.
SPEC = {"num": "numeric", "lenient": "numeric", "note": "text", "path": "file",
        "when": "timestamp", "config": "json"}

PLAIN = [0.25, -3.5e300, 0.0, -0.0, 7, 0, -2**53 - 1, 2**70, "adam", "", "x" * 100]
NOT_PLAIN = [
    True, False, None, float("nan"), float("inf"), -float("inf"), 2**2000,
    np.float32(0.5), np.float64(1.5), np.int64(3), np.bool_(True), np.float32("nan"),
    torch.tensor(2.5), torch.tensor(4), torch.tensor([0.75]), torch.zeros(2),
    "ünïcode", "nul\x00inside", "\ud800", b"bytes", [0.5], {"k": 1}, Path("/tmp/model.pt"),
    datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00+02:00", 1_700_000_000.5, object(),
]


def _short(value: Any) -> str:
    return repr(value)[:30]


KINDS = {name: AttributeType.parse(kind) for name, kind in SPEC.items()}


def _outcome(call) -> tuple[str, Any]:
    """("row", the value) or ("error", (its type, its message)) of ``call()``."""
    try:
        return "row", call()
    except Exception as exc:  # noqa: BLE001 - any error must be the same on both paths
        return "error", (type(exc), str(exc))


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type, NaN equal to NaN (what identical records need)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _attributes() -> list[Attribute]:
    return [Attribute(name, kind, allow_nan=name == "lenient") for name, kind in SPEC.items()]


def _counted(converters: dict, calls: list[str]) -> dict:
    """The real ``converters``, each noting its name in ``calls`` when called."""
    def count(name, convert):
        def counted(value):
            calls.append(name)
            return convert(value)
        return counted
    return {name: count(name, convert) for name, convert in converters.items()}


# -- convert_row alone ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN, ids=_short)
@pytest.mark.parametrize("attribute", _attributes(), ids=lambda a: a.name)
def test_convert_row_gives_what_the_converter_gives(attribute, value) -> None:
    convert = converter("s", attribute)
    expected = _outcome(lambda: convert(value))
    calls: list[str] = []
    converters = _counted({a.name: converter("s", a) for a in _attributes()}, calls)
    got = _outcome(lambda: convert_row(KINDS, converters, {attribute.name: value}))
    if expected[0] == "error":
        assert got == expected  # same type, same message
    else:
        assert got[0] == "row" and _same(got[1][attribute.name], expected[1])
    # the converter is skipped for exactly the plain values: ints and finite floats of numeric
    # attributes (float() of an int too large says so itself), short ASCII text of text ones
    numeric, text = attribute.type is AttributeType.NUMERIC, attribute.type is AttributeType.TEXT
    plain = (numeric and type(value) is int
             or numeric and type(value) is float and math.isfinite(value)
             or text and expected[0] == "row" and type(value) is str and value.isascii())
    assert calls == ([] if plain else [attribute.name])


@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN, ids=_short)
@pytest.mark.parametrize("attribute", _attributes(), ids=lambda a: a.name)
def test_every_converter_takes_its_own_output_unchanged(attribute, value) -> None:
    # convert_row relies on it: after a KeyError the slow path sees some values converted
    convert = converter("s", attribute)
    first = _outcome(lambda: convert(value))
    if first[0] == "row":
        again = convert(first[1])
        assert _same(again, first[1]) or again is first[1]


def test_convert_row_converts_the_usual_metrics_in_place() -> None:
    values = {"num": 3, "lenient": 0.25, "note": "adam"}
    row = convert_row(KINDS, {}, values)  # no converter needed: none given
    assert row is values  # the call's own **values becomes the row: no copy
    assert row == {"num": 3.0, "lenient": 0.25, "note": "adam"}
    assert type(row["num"]) is float


@pytest.mark.parametrize("values", [
    {"Num": 1.0}, {"unknown": 1.0}, {"num": 1.0, "NOTE": "x"}, {"Num": np.float32(1.0)},
    {"num": 2, "Note": None},
])
def test_a_name_not_as_stored_is_a_key_error_for_the_slow_path(values) -> None:
    converters = {a.name: converter("s", a) for a in _attributes()}
    with pytest.raises(KeyError):
        convert_row(KINDS, converters, dict(values))


@pytest.mark.parametrize("values, called", [
    ({"num": 1.0, "lenient": float("nan")}, ["lenient"]),
    ({"num": True}, ["num"]),
    ({"note": 5}, ["note"]),
    ({"num": "0.5"}, ["num"]),
    ({"note": "x" * (limits.MAX_VALUE_BYTES + 1)}, ["note"]),
    ({"num": 1, "lenient": np.float64(2.0), "note": "a"}, ["lenient"]),
])
def test_only_the_values_that_need_a_converter_get_one(values, called) -> None:
    calls: list[str] = []
    converters = _counted({a.name: converter("s", a) for a in _attributes()}, calls)
    _outcome(lambda: convert_row(KINDS, converters, dict(values)))
    assert calls == called


# -- through a task: the queued record -----------------------------------------------------------

@pytest.fixture
def task(store_path):
    """A task of a run whose set "s" has an attribute of every type; ``task.queued`` lists the
    rows it hands to the recorder (which still gets them)."""
    with dlprov.run("fast", email="test@localhost", capture_environment=False) as run:
        run.declare_set("s", _attributes())
        with run.task("train") as train:
            train.queued = []
            put = train._put

            def recording_put(record: tuple) -> None:
                if record[0] == r.ELEMENT:
                    train.queued.append(record[3])
                put(record)
            train._put = recording_put
            yield train


def _slow(task, values: dict[str, Any]) -> tuple[str, Any]:
    """What the slow path (every value through its converter) makes of a copy of ``values``."""
    tag, converters, _ = task._converters["output"]["s"]
    return _outcome(lambda: task._slow_row(tag, converters, dict(values)))


@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN, ids=_short)
@pytest.mark.parametrize("name", list(SPEC))
def test_a_task_queues_what_the_converters_make_and_fails_as_they_do(task, name, value) -> None:
    task.output("s", num=1.0)  # the set's converters and kinds are cached from here
    values = {"num": 2, name: value}  # a plain value first, then the one tried
    expected = _slow(task, values)
    before = len(task.queued)
    got = _outcome(lambda: task.output("s", **values))
    if expected[0] == "error":
        assert got == ("error", expected[1])  # same type, same message
        assert len(task.queued) == before  # nothing partial queued
    else:
        assert got == ("row", None) and len(task.queued) == before + 1
        row = task.queued[-1]
        assert list(row) == list(expected[1])
        assert all(_same(row[k], expected[1][k]) for k in row), (row, expected[1])


def test_mixed_rows_are_identical_on_both_paths(task) -> None:
    task.output("s", num=0.0)
    cases = [
        {"num": 1, "lenient": 0.5, "note": "adam"},
        {"num": np.float32(0.1), "lenient": torch.tensor(0.3), "note": None},
        {"num": 2.5, "lenient": float("inf"), "config": {"layers": [64]}},
        {"NUM": 3, "Note": "case"},
        # converted in place up to the name in another case, then all again by the slow path
        {"num": np.float32(0.1), "when": "2024-05-01T12:00:00+02:00", "path": Path("/m"),
         "Note": "late"},
        {"num": False, "path": Path("/tmp/m.pt"), "when": 1_700_000_000},
        {},
    ]
    for values in cases:
        expected = _slow(task, values)
        task.output("s", **values)
        row = task.queued[-1]
        assert expected[0] == "row" and list(row) == list(expected[1])
        assert all(_same(row[k], expected[1][k]) for k in row), (values, row, expected[1])


def test_the_usual_metrics_skip_the_converters(task) -> None:
    task.output("s", num=0.0)
    calls: list[str] = []
    tag, converters, _ = task._converters["output"]["s"]
    converters.update(_counted(converters, calls))  # the spec book's own dict, restored below
    try:
        task.output("s", num=1, lenient=0.5, note="sgd")
        assert calls == []
        assert task.queued[-1] == {"num": 1.0, "lenient": 0.5, "note": "sgd"}
        task.output("s", num=np.float32(0.5), note="sgd")  # one value needs its converter
        assert calls == ["num"]
    finally:
        task.run.book._refresh(tag)


@pytest.mark.parametrize("call, error", [
    (lambda t: t.output("s", num="1.5"), dlprov.ValueRejected),
    (lambda t: t.output("s", num=float("nan")), dlprov.ValueRejected),
    (lambda t: t.output("s", note=3), dlprov.ValueRejected),
    (lambda t: t.output("s", num=1.0, nope=2.0), dlprov.SpecError),
    (lambda t: t.output("s", num=1.0, NUM=2.0), dlprov.SpecError),
    (lambda t: t.output("s", note="a\x00b"), dlprov.ValueRejected),
    (lambda t: t.output("s", num=2**2000), OverflowError),  # as before: float() says so
    (lambda t: t.output("s", num=torch.zeros(3)), dlprov.ValueRejected),
])
def test_refused_calls_queue_nothing(task, call, error) -> None:
    task.output("s", num=1.0)
    with pytest.raises(error):
        call(task)
    assert task.queued == [{"num": 1.0}]


def test_an_error_after_plain_values_names_the_right_attribute(task) -> None:
    task.output("s", num=1.0)
    with pytest.raises(dlprov.ValueRejected, match="attribute 'note'"):
        task.output("s", num=2, lenient=0.5, note=7)
    with pytest.raises(dlprov.ValueRejected, match="attribute 'num'"):
        task.output("s", lenient=0.5, num=float("inf"), note=7)  # the first bad one, in order


# -- a set that grows after its first element ---------------------------------------------------

def test_attributes_added_later_are_checked_and_then_taken_fast(sql) -> None:
    with dlprov.run("grow", email="test@localhost", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
            run.declare_set("otrain", {"accuracy": "numeric", "phase": "text"})
            train.output("otrain", loss=0.4, accuracy=1, phase="val")  # converter path once
            kinds = train._converters["output"]["otrain"][2]
            assert kinds == {"loss": AttributeType.NUMERIC, "accuracy": AttributeType.NUMERIC,
                             "phase": AttributeType.TEXT}
            calls: list[str] = []
            converters = _counted(train._converters["output"]["otrain"][1], calls)
            convert_row(kinds, converters, {"loss": 0.3, "accuracy": 1, "phase": "val"})
            assert calls == []
            with pytest.raises(dlprov.ValueRejected, match="attribute 'phase'"):
                train.output("otrain", phase=1.5)
            train.output("otrain", loss=0.3, accuracy=0.75, phase="train")
    assert sql("SELECT loss, accuracy, phase FROM grow__otrain ORDER BY loss") == [
        (0.3, 0.75, "train"), (0.4, 1.0, "val"), (0.5, None, None)]


def test_allowing_nan_after_the_first_element_takes_effect(sql) -> None:
    with dlprov.run("widen", email="test@localhost", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", loss=0.5)
            with pytest.raises(dlprov.ValueRejected, match="allow_nan"):
                train.output("otrain", loss=float("inf"))
            run.declare_set("otrain", [Attribute("loss", "numeric", allow_nan=True)])
            train.output("otrain", loss=float("inf"))  # inf goes to the new converter
    assert sql("SELECT loss FROM widen__otrain ORDER BY id") == [(0.5,), (math.inf,)]
