"""dlprov.prov.constraints.validate on documents built with ``prov``: each family of
PROV-CONSTRAINTS, times, bundles, and the report."""
from __future__ import annotations

import json

from prov.model import ProvDocument

from dlprov.prov.constraints import CONSTRAINTS, FAMILIES, validate

EX = "http://example.org/"


def doc() -> ProvDocument:
    d = ProvDocument()
    d.add_namespace("ex", EX)
    return d


def numbers(report) -> list[int]:
    return sorted(v.number for v in report.violations)


def test_a_consistent_document_is_valid():
    d = doc()
    train = d.activity("ex:train", "2024-01-01T10:00:00", "2024-01-01T11:00:00")
    data, model = d.entity("ex:data"), d.entity("ex:model")
    d.used(train, data, "2024-01-01T10:01:00", identifier="ex:use")
    d.wasGeneratedBy(model, train, "2024-01-01T10:59:00", identifier="ex:gen")
    d.wasDerivedFrom(model, data, train, "ex:gen", "ex:use")
    d.wasAssociatedWith(train, d.agent("ex:alice"))
    d.wasAttributedTo(model, "ex:alice")
    report = validate(d)
    assert report.valid and bool(report) and report.records == 9
    assert report.summary().startswith("VALID")


def test_unification_merges_attributes_and_finds_clashes():
    d = doc()
    d.entity("ex:e", {"ex:a": 1})
    d.entity("ex:e", {"ex:b": 2})                       # attributes merge: fine
    d.activity("ex:a", "2024-01-01T10:00:00")
    d.activity("ex:a", None, "2024-01-01T11:00:00")       # times fill in: fine
    assert validate(d).valid
    d.activity("ex:a", "2024-01-01T09:00:00")             # another start time: key-object
    report = validate(d)
    assert 22 in numbers(report)
    (clash,) = [v for v in report.violations if v.number == 22]
    assert clash.name == "key-object" and clash.records == ["ex:a"]


def test_uniqueness_of_generation_by_one_activity():
    d = doc()
    d.activity("ex:a")
    d.wasGeneratedBy("ex:e", "ex:a", identifier="ex:g1")
    d.wasGeneratedBy("ex:e", "ex:a", identifier="ex:g2")
    assert numbers(validate(d)) == [24]


def test_an_unnamed_relation_unifies_with_a_named_one():
    d = doc()
    d.wasGeneratedBy("ex:e", "ex:a", "2024-01-01T10:00:00", identifier="ex:g1")
    d.wasGeneratedBy("ex:e", "ex:a", "2024-01-01T10:00:00")
    assert validate(d).valid
    d.wasGeneratedBy("ex:e", "ex:a", "2024-01-01T12:00:00")
    assert 23 in numbers(validate(d))  # the unnamed one is g1, with another time


def test_usage_before_generation_is_found_from_relations_and_times():
    d = doc()
    d.entity("ex:e2")
    d.entity("ex:e1")
    d.wasDerivedFrom("ex:e2", "ex:e1")
    d.wasDerivedFrom("ex:e1", "ex:e2")
    (cycle,) = validate(d).violations
    assert cycle.number == 42 and "cycle" in cycle.message
    timed = doc()
    timed.activity("ex:a", "2024-01-01T10:00:00", "2024-01-01T11:00:00")
    timed.used("ex:a", "ex:e", "2024-01-01T09:00:00")     # used before the activity started
    report = validate(timed)
    assert not report.valid and "by the times given" in report.violations[0].message
    assert report.violations[0].number == 33
    assert validate(timed, times=False).valid


def test_an_activity_ending_before_it_starts_is_invalid():
    d = doc()
    d.activity("ex:a", "2024-01-01T11:00:00", "2024-01-01T10:00:00")
    (violation,) = validate(d).violations
    assert violation.number == 30 and violation.name == "start-precedes-end"


def test_types_impossibility_and_disjointness():
    d = doc()
    d.entity("ex:x")
    d.activity("ex:x")
    assert numbers(validate(d)) == [55]
    d = doc()
    d.wasGeneratedBy("ex:e", "ex:a", identifier="ex:r")
    d.used("ex:a2", "ex:e2", identifier="ex:r")
    assert 53 in numbers(validate(d))
    d = doc()
    d.entity("ex:r")
    d.wasGeneratedBy("ex:e", "ex:a", identifier="ex:r")
    assert 54 in numbers(validate(d))
    d = doc()
    d.specializationOf("ex:a", "ex:b")
    d.specializationOf("ex:b", "ex:c")
    d.specializationOf("ex:c", "ex:a")
    assert 52 in numbers(validate(d))
    d = doc()
    d.entity("ex:c", {"prov:type": "prov:EmptyCollection"})
    d.hadMember("ex:c", "ex:e")
    assert 56 in numbers(validate(d))


def test_bundles_are_validated_separately():
    d = doc()
    d.entity("ex:x")
    inside = d.bundle("ex:b")
    inside.activity("ex:x")                               # another bundle: no clash
    assert validate(d).valid
    inside.entity("ex:x")
    (violation,) = validate(d).violations
    assert violation.bundle == "ex:b" and violation.number == 55


def test_report_as_json_and_table():
    d = doc()
    d.entity("ex:x")
    d.activity("ex:x")
    report = validate(d, source="mine.provn")
    data = json.loads(report.to_json())
    assert data["valid"] is False and data["source"] == "mine.provn"
    assert data["violations"][0] == {"constraint": 55, "name": "entity-activity-disjoint",
                                     "message": "ex:x is both an entity and an activity",
                                     "records": ["ex:x"], "lines": [], "bundle": None}
    assert "constraint 55 entity-activity-disjoint" in report.table()


def test_catalog_covers_every_family():
    assert set(range(22, 57)) == set(CONSTRAINTS) - {0}
    assert sorted(n for f in FAMILIES.values() for n in f) == list(range(22, 57))


def test_a_long_chain_is_checked_without_recursion():
    d = doc()
    for i in range(3000):
        d.wasDerivedFrom(f"ex:e{i + 1}", f"ex:e{i}")
    assert validate(d).valid
    d.wasDerivedFrom("ex:e0", "ex:e3000")
    (cycle,) = validate(d).violations
    assert cycle.number == 42 and len(cycle.records) == 3001
