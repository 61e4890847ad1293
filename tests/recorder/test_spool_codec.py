"""encode/decode (the spool's and the HTTP batch's JSON form) give back exactly what was encoded,
datetimes and dicts that look like their tags included, and change nothing they were given."""
from __future__ import annotations

import copy
import json
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from dlprov.recorder.spool import decode, encode

plain = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
keys = st.sampled_from(["$datetime", "$dict", "a", "loss"]) | st.text(max_size=5)
values = st.recursive(
    plain | st.datetimes(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20)


@given(values)
def test_a_json_round_trip_gives_back_the_value(value) -> None:
    before = copy.deepcopy(value)
    wire = json.dumps(encode(value), allow_nan=True)
    assert value == before  # encoding shares structure with the value but never changes it
    assert decode(json.loads(wire)) == value


def test_an_element_record_and_the_tags_it_may_hold() -> None:
    stamp = datetime(2024, 1, 2, 3, 4, 5, 6)
    record = ("element", "task", "otrain", {"loss": 0.5, "note": "a\tb", "at": stamp,
                                            "doc": {"$datetime": "not a time"}})
    wire = json.loads(json.dumps(encode(record)))
    assert wire[3]["at"] == {"$datetime": stamp.isoformat()}
    assert wire[3]["doc"] == {"$dict": {"$datetime": "not a time"}}
    assert tuple(decode(wire)) == record
