"""Random and hostile PROV documents to the importer (hypothesis): a document built with the
``prov`` library and written by it in any format is stored exactly (its nodes, their attribute
values, its relations), and importing it again adds nothing; bytes that are no PROV document
(cut short, flipped, random JSON, XML with a DOCTYPE, JSON that is not PROV) raise
:class:`ProvImportError` and store nothing, or, where the damage left a valid document, are
stored whole.

One real SQLite store per test; each example's document is new bytes (its namespace URIs carry
a counter), so examples never see each other's rows.
"""
from __future__ import annotations

import datetime
import json
import sqlite3
from collections import Counter
from itertools import count
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from prov.model import ProvDocument  # noqa: E402

from dlprov.prov.imports import ProvImportError, import_document  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])
TABLES = ("prov_document", "prov_node", "prov_relation")
SQL_FRAGMENTS = ["'; DROP TABLE prov_node; --", '"', "'", "\\", "NULL", "1 OR 1=1", "%s", "?",
                 "<b>&amp;</b>", "]]>"]
WRITERS = {"json": ("json", {}), "xml": ("xml", {}), "provn": ("provn", {}),
           "ttl": ("rdf", {"rdf_format": "turtle"})}
RELATIONS = {  # the relation, the kinds of its subject and object
    "used": ("activity", "entity"), "wasGeneratedBy": ("entity", "activity"),
    "wasAssociatedWith": ("activity", "agent"), "wasDerivedFrom": ("entity", "entity"),
    "wasAttributedTo": ("entity", "agent"), "wasInformedBy": ("activity", "activity"),
}
documents = count(1)

# Text PROV can carry in every format: no control characters (XML 1.0 has none), no lone
# surrogates; quotes, markup, SQL and any script are fine.
text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=30).map(str.strip)
    .filter(bool),
    st.sampled_from(SQL_FRAGMENTS), st.just("é\u2028\U0001F600 «x»"), st.just("y" * 100_000))
values = st.one_of(text, st.integers(-2 ** 62, 2 ** 62), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
                       lambda f: f == 0 or 1e-300 < abs(f) < 1e300),
                   st.datetimes(min_value=datetime.datetime(1900, 1, 1),
                                max_value=datetime.datetime(2200, 1, 1)).map(
                                    lambda d: d.replace(microsecond=0)))
local_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True)


def expected_value(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


@st.composite
def prov_documents(draw) -> tuple[ProvDocument, dict, Counter]:
    """A document with nodes in two namespaces and relations among them; also what it holds:
    {(uri, kind): attributes} and the multiset of (relation, subject uri, object uri)."""
    n = next(documents)
    namespaces = {"ex": f"http://example.org/{n}/ex#", "tool": f"urn:tool:{n}:"}
    doc = ProvDocument()
    for prefix, uri in namespaces.items():
        doc.add_namespace(prefix, uri)
    nodes: dict[tuple[str, str], dict] = {}
    by_kind: dict[str, list] = {"entity": [], "activity": [], "agent": []}
    for local in draw(st.lists(local_names, min_size=1, max_size=8, unique=True)):
        prefix = draw(st.sampled_from(sorted(namespaces)))
        kind = draw(st.sampled_from(sorted(by_kind)))
        attributes = {f"{draw(st.sampled_from(sorted(namespaces)))}:{key}": value for key, value
                      in draw(st.dictionaries(local_names, values, max_size=3)).items()}
        element = getattr(doc, kind)(f"{prefix}:{local}", other_attributes=attributes or None)
        by_kind[kind].append(element)
        nodes[(namespaces[prefix] + local, kind)] = {
            k: expected_value(v) for k, v in attributes.items()} or None
    relations: Counter = Counter()
    for name in draw(st.lists(st.sampled_from(sorted(RELATIONS)), max_size=6)):
        subject_kind, object_kind = RELATIONS[name]
        if by_kind[subject_kind] and by_kind[object_kind]:
            subject = draw(st.sampled_from(by_kind[subject_kind]))
            target = draw(st.sampled_from(by_kind[object_kind]))
            getattr(doc, name)(subject, target)
            relations[(name, subject.identifier.uri, target.identifier.uri)] += 1
    return doc, nodes, relations


def serialized(doc: ProvDocument, fmt: str) -> bytes:
    writer, options = WRITERS[fmt]
    data = doc.serialize(format=writer, **options)
    return data.encode() if isinstance(data, str) else data


def counts(store_path: Path) -> dict[str, int]:
    if not store_path.exists():
        return dict.fromkeys(TABLES, 0)
    with sqlite3.connect(store_path) as conn:
        present = {t for t, in conn.execute("SELECT name FROM sqlite_master")}
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] if t in present
                else 0 for t in TABLES}


def stored(store_path: Path, doc_id: int) -> tuple[dict, Counter]:
    with sqlite3.connect(store_path) as conn:
        nodes = {(uri, kind): json.loads(attrs) if attrs else None for uri, kind, attrs in
                 conn.execute("SELECT identifier, kind, attributes FROM prov_node "
                              "WHERE doc_id = ?", (doc_id,))}
        relations = Counter(conn.execute("SELECT kind, subject, object FROM prov_relation "
                                         "WHERE doc_id = ?", (doc_id,)))
    return nodes, relations


# -- documents are stored exactly -----------------------------------------------------------
@SETTINGS
@given(built=prov_documents(), fmt=st.sampled_from(sorted(WRITERS)))
def test_a_document_is_stored_exactly_and_once(store_path, built, fmt):
    doc, nodes, relations = built
    data = serialized(doc, fmt)
    if fmt == "ttl":  # RDF is a set of triples: two equal relations without ids are one
        relations = Counter(set(relations))
    report = import_document(data, store=store_path, format=fmt)
    assert report.created
    assert (report.nodes, report.relations) == (len(nodes), sum(relations.values()))
    assert stored(store_path, report.doc_id) == (nodes, relations)
    before = counts(store_path)
    again = import_document(data, store=store_path, format=fmt)
    assert (again.created, again.doc_id) == (False, report.doc_id)
    assert counts(store_path) == before


# -- hostile bytes --------------------------------------------------------------------------
def _base(fmt: str) -> bytes:
    doc = ProvDocument()
    doc.add_namespace("ex", "http://example.org/base#")
    raw = doc.entity("ex:raw", {"ex:record_id": "rec-1", "prov:label": "raw 'data'"})
    act = doc.activity("ex:clean", "2024-05-01T10:00:00", "2024-05-01T10:05:00")
    doc.used(act, raw)
    doc.wasGeneratedBy(doc.entity("ex:out", {"ex:n": 3}), act)
    return serialized(doc, fmt)


BASE = {fmt: _base(fmt) for fmt in WRITERS}
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
PROV_KEYS = ["prefix", "entity", "activity", "agent", "used", "wasGeneratedBy", "bundle"]


@st.composite
def damaged(draw) -> tuple[bytes, str]:
    """A valid document's bytes cut short or with bytes changed, or bytes that are no PROV."""
    fmt = draw(st.sampled_from(sorted(WRITERS)))
    data = bytearray(BASE[fmt])
    how = draw(st.sampled_from(["cut", "flip", "json", "prov-ish json", "doctype"]))
    if how == "cut":
        return bytes(data[:draw(st.integers(0, len(data) - 1))]), fmt
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data), fmt
    if how == "json":
        return json.dumps(draw(json_values)).encode(), "json"
    if how == "prov-ish json":
        body = draw(st.dictionaries(st.sampled_from(PROV_KEYS), json_values, min_size=1))
        return json.dumps(body).encode(), "json"
    entity = draw(st.sampled_from(['<!ENTITY a "aaaa">', '<!ENTITY s SYSTEM "file:///etc/passwd">',
                                   ""]))
    xml = BASE["xml"].replace(b"?>", f'?>\n<!DOCTYPE d [{entity}]>'.encode(), 1)
    return xml, "xml"


@SETTINGS
@given(case=damaged())
def test_damaged_or_hostile_bytes_are_refused_or_stored_whole(store_path, case):
    data, fmt = case
    before = counts(store_path)
    try:
        report = import_document(data, store=store_path, format=fmt)
    except ProvImportError as exc:
        assert str(exc)
        assert counts(store_path) == before
        return
    # the damage left a PROV document (a flipped letter in a value, say): stored whole, or
    # found stored already
    after = counts(store_path)
    if report.created:
        assert after == {"prov_document": before["prov_document"] + 1,
                         "prov_node": before["prov_node"] + report.nodes,
                         "prov_relation": before["prov_relation"] + report.relations}
        assert b"<!DOCTYPE" not in data
    else:
        assert after == before


def test_the_undamaged_documents_import(store_path):
    for fmt, data in BASE.items():
        report = import_document(data, store=store_path, format=fmt)
        assert report.created and (report.nodes, report.relations) == (3, 2)
