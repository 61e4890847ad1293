"""Records added without prov's checks (dlprov.prov.records) are the records prov's public calls
make, and the document of a recorded store is the same either way."""
from __future__ import annotations

import gc
import math
from datetime import datetime

import pytest
from prov.identifier import Namespace
from prov.model import ProvDocument, ProvEntity, ProvUsage

from dlprov.prov import DLPROV, serialize
from dlprov.prov import mapping
from dlprov.prov.memory import paused_gc
from dlprov.prov.records import RecordAdder
from dlprov.prov.scope import read_snapshot
from tests.prov.workflows import big_run, experiment

OTHER = Namespace("other", "https://example.org/other#")


class PublicCallsOnly(RecordAdder):
    """Every record through prov's public calls: what the unchecked ones must equal."""

    def __init__(self, namespace: Namespace) -> None:
        super().__init__(namespace)
        self.enabled = False


def _both_ways(fill) -> tuple[ProvDocument, ProvDocument]:
    docs = []
    for kind in (PublicCallsOnly, RecordAdder):
        doc = ProvDocument()
        doc.add_namespace(DLPROV)
        adder = kind(DLPROV)
        fill(adder, adder.register(doc.bundle(DLPROV["bundle/1"])))
        docs.append(doc)
    return docs[0], docs[1]


def _same(slow: ProvDocument, fast: ProvDocument, comparable: bool = True) -> None:
    """The same records, and the same files; NaN is unequal to itself, so a document holding
    one is compared by its files only."""
    if comparable:
        assert slow == fast
    for fmt in ("provn", "json", "xml"):
        assert serialize(slow, fmt) == serialize(fast, fmt), fmt


def test_this_prov_takes_the_unchecked_path():
    assert RecordAdder(DLPROV).enabled  # else the tests below compare the public path twice


def test_plain_values_and_relations_equal_the_public_calls():
    def fill(add, bundle):
        e, a, s = DLPROV["e/1"], DLPROV["task/1"], DLPROV["e/0"]
        add.entity(bundle, e, [(DLPROV["ds_tag"], "otrain"), (DLPROV["id"], 1),
                               (DLPROV["loss"], 0.25), (DLPROV["done"], False),
                               (DLPROV["at"], datetime(2024, 5, 6, 7, 8, 9, 123)),
                               (DLPROV["none"], None)])
        add.used(bundle, a, s)
        add.generated(bundle, e, a)
        add.derived(bundle, e, s, a)
    slow, fast = _both_ways(fill)
    _same(slow, fast)
    [entity] = [r for r in fast.bundles for r in r.records if isinstance(r, ProvEntity)]
    assert DLPROV["none"] not in {name for name, _ in entity.attributes}


def test_values_prov_converts_take_the_public_call():
    """A Literal (NaN as xsd:double), a name of another namespace: prov's own conversions."""
    def fill(add, bundle):
        add.entity(bundle, DLPROV["e/1"], [(DLPROV["loss"], mapping.value(math.nan)),
                                           (OTHER["note"], "x")])
        add.entity(bundle, OTHER["e/2"], [(DLPROV["n"], 2)])
        add.used(bundle, DLPROV["task/1"], OTHER["e/2"])
    slow, fast = _both_ways(fill)
    _same(slow, fast, comparable=False)
    assert "NaN" in serialize(fast, "provn").decode()
    [usage] = [r for b in fast.bundles for r in b.records if isinstance(r, ProvUsage)]
    assert usage.args[1] == OTHER["e/2"]


def test_a_bundle_not_registered_takes_the_public_call():
    doc = ProvDocument()
    bundle = doc.bundle(DLPROV["bundle/1"])
    RecordAdder(DLPROV).entity(bundle, DLPROV["e/1"], [(DLPROV["n"], 1)])
    [entity] = bundle.records
    assert list(entity.get_attribute(DLPROV["n"])) == [1]


@pytest.mark.parametrize("scope", ["dataflow", "run", "model"])
def test_a_recorded_store_gives_the_same_document_either_way(store_path, tmp_path, monkeypatch,
                                                            scope):
    runs = experiment(tmp_path / "work")
    big_run(200)
    args = {"dataflow": {}, "run": {"run": runs["mlp-a"].exec_tag},
            "model": {"model": runs["mlp-b"].model_id}}[scope]
    snap = read_snapshot(str(store_path), **args)
    fast = mapping.build(snap)
    monkeypatch.setattr(mapping, "RecordAdder", PublicCallsOnly)
    slow = mapping.build(snap)
    assert len(list(fast.flattened().get_records())) > 10
    _same(slow, fast)


def test_paused_gc_restores_the_collector():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with paused_gc():
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()
