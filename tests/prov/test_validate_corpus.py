"""The public PROV-CONSTRAINTS corpus: ProvToolbox's validation cases (tests/data/provtoolbox,
MIT licence, see README there), each in PROV-N and PROV-XML, and the W3C-named PROV-JSON
cases of the ``prov`` package. Every case whose expectation is known must come out right."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlprov.errors import ProvImportError
from dlprov.prov.constraints.files import validate_file

CORPUS = Path(__file__).resolve().parents[1] / "data" / "provtoolbox"

#: Named "fail" but valid by ProvToolbox's own tests (ValidateTest.java expects no failed
#: merge): PROV-CONSTRAINTS has no unique-usage constraint, and actedOnBehalfOf's activity is
#: an optional argument.
VALID_BY_PROVTOOLBOX = {"usage-fail1", "usage-fail5", "usage-fail6", "usage-fail7",
                        "delegation-fail4", "delegation-fail5"}
#: ordering cases: OrderingTest.java asserts a strict cycle in these (derivation2:
#: gen1 < gen2 < gen1; specialization4: gen1 <= gen2 < gen1); the others have none.
INVALID_ORDERING = {"derivation2", "specialization4"}
#: cases ``prov`` 3.2 cannot read (its PROV-XML reader refuses an entity inside a bundle
#: element; bundle-fail1.provn is not PROV-N): `dlprov validate` exits 2 on them.
UNREADABLE = {"unification/bundle-fail1.provn", "unification/bundle-fail1.xml",
              "unification/bundle-success1.xml", "unification/bundle-success2.xml"}


def expectation(path: Path) -> bool | None:
    """True for a valid case, False for an invalid one, None when not known."""
    stem = path.stem
    if path.parent.name == "ordering":
        return stem not in INVALID_ORDERING
    if stem in VALID_BY_PROVTOOLBOX:
        return True
    if re.search(r"fail", stem, re.I):
        return False
    if re.search(r"success|pass", stem, re.I):
        return True
    return None


CASES = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".provn", ".xml", ".json")
               and expectation(p) is not None)
READABLE = [p for p in CASES if p.relative_to(CORPUS).as_posix() not in UNREADABLE]


def test_the_corpus_is_whole():
    assert len(CASES) == 386
    assert len(READABLE) == 382
    assert sum(expectation(p) for p in READABLE) == 239        # valid cases
    assert sum(not expectation(p) for p in READABLE) == 143    # invalid cases
    assert {p.suffix for p in READABLE} == {".provn", ".xml", ".json"}


@pytest.mark.parametrize("path", READABLE, ids=lambda p: p.relative_to(CORPUS).as_posix())
def test_every_case_is_right(path):
    report = validate_file(path)
    assert report.valid == expectation(path), report.table()
    if not report.valid:
        for violation in report.violations:
            assert violation.records and violation.name
    assert validate_file(path, times=False).valid == report.valid


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_what_prov_cannot_read_raises(name):
    with pytest.raises(ProvImportError):
        validate_file(CORPUS / name)


@pytest.mark.parametrize("case, number", [
    ("unification/start-fail4.provn", 26), ("unification/generation-fail1.provn", 24),
    ("unification/activity-start-fail1.provn", 28),
    ("prov-json/unification-activity-f1-FAIL-c22.json", 22), ("unification/end-fail1.provn", 23),
    ("ordering/derivation2.provn", 42), ("type/type-fail1.provn", 55),
    ("type/type-fail3.provn", 54), ("type/type-fail4.provn", 53),
    ("type/type-collection-fail1.provn", 56), ("unification/specialization-fail4.provn", 52),
    ("unification/influence-fail1.provn", 0),
    ("prov-json/unification-activity-start-s1-PASS-c28.json", None),
])
def test_violations_name_their_constraint(case, number):
    report = validate_file(CORPUS / case)
    assert [v.number for v in report.violations if v.number == number] or number is None
    if number is None:
        assert report.valid


def test_a_cycle_says_which_events_form_it_and_where_they_are():
    report = validate_file(CORPUS / "ordering" / "derivation2.provn")
    (cycle,) = report.violations
    assert cycle.name == "derivation-generation-generation-ordering"
    assert "generation of ex:e1" in cycle.message and "generation of ex:e2" in cycle.message
    assert sorted(cycle.records) == ["ex:der1", "ex:der2"]
    assert cycle.lines == [7, 8]
    xml = validate_file(CORPUS / "unification" / "start-fail4.xml")
    assert xml.violations[0].lines and xml.violations[0].records == ["ex:start1",
                                                                     "ex:start1-other"]
