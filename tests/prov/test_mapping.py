"""The store as a PROV document: what it holds, how it is named, and what each scope covers.

Stores are filled through the real capture API (and the DfAnalyzer-compatible predefined
workflow); the expected nodes and relations are computed from what the capture code recorded
(tests/prov/workflows.py) or counted in the store with plain SQL.
"""
from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from datetime import datetime

import pytest
from prov.constants import PROV_TYPE
from prov.model import (
    PROV,
    ProvActivity,
    ProvAgent,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

from dlprov.dfa import Dataflow, end_execution
from dlprov.errors import NotFound, QueryError
from dlprov.prov import DLPROV, document, export, model_document
from tests.capture.test_dfa import run_predefined_workflow
from tests.prov.workflows import DF, experiment

ORIGINAL_PROPERTIES = ("ds_tag", "dt_tag", "exec_tag", "df_tag", "task_id", "loss",
                       "elapsed_time", "email", "hostname")


@pytest.fixture
def runs(store_path, tmp_path):
    return experiment(tmp_path / "work")


# -- helpers ---------------------------------------------------------------------------------
def flat(doc: ProvDocument) -> list:
    return list(doc.flattened().get_records())


def elements(doc: ProvDocument, kind) -> dict:
    """Identifier -> record, over every bundle (a record repeated in two bundles once)."""
    return {r.identifier: r for r in flat(doc) if isinstance(r, kind)}


def attr(record, name: str):
    values = list(record.get_attribute(DLPROV[name]))
    assert len(values) <= 1, (record, name, values)
    return values[0] if values else None


def relations(doc: ProvDocument, kind) -> list[tuple]:
    return [r.args[:3] for r in flat(doc) if isinstance(r, kind)]


def tags(doc: ProvDocument) -> tuple[dict, dict]:
    """Identifier -> ds_tag of elements, identifier -> dt_tag of tasks."""
    entities, activities = elements(doc, ProvEntity), elements(doc, ProvActivity)
    return ({i: attr(r, "ds_tag") for i, r in entities.items()},
            {i: attr(r, "dt_tag") for i, r in activities.items()})


def per_task_counts(doc: ProvDocument, exec_tag: str) -> dict[str, tuple[Counter, Counter]]:
    """dt_tag -> (sets used, sets generated) of one execution's tasks, counted in ``doc``."""
    ds, dt = tags(doc)
    activities = elements(doc, ProvActivity)
    mine = {i for i, r in activities.items() if attr(r, "exec_tag") == exec_tag and dt[i]}
    counts = {dt[i]: (Counter(), Counter()) for i in mine}
    for activity, entity, _ in relations(doc, ProvUsage):
        if activity in mine:
            counts[dt[activity]][0][ds[entity]] += 1
    for entity, activity, _ in relations(doc, ProvGeneration):
        if activity in mine and ds.get(entity):
            counts[dt[activity]][1][ds[entity]] += 1
    return counts


def set_tables(sql, df_tag: str) -> list[str]:
    return [name for (name,) in sql("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "ORDER BY name") if name.startswith(f"{df_tag}__")]


def dump(path) -> str:
    with sqlite3.connect(path) as conn:
        return "\n".join(conn.iterdump())


# -- nodes -----------------------------------------------------------------------------------
def test_node_counts_equal_store_counts(runs, sql):
    doc = document(dataflow=DF)
    rows = sum(sql(f'SELECT COUNT(*) FROM "{t}"')[0][0] for t in set_tables(sql, DF))
    [(models,)] = sql("SELECT COUNT(*) FROM trained_model")
    [(executions,)] = sql("SELECT COUNT(*) FROM dataflow_execution")
    [(tasks,)] = sql("SELECT COUNT(*) FROM task")
    [(users,)] = sql("SELECT COUNT(DISTINCT username) FROM dataflow_execution")
    assert (executions, models) == (2, 2) and rows > 20
    assert len(elements(doc, ProvEntity)) == rows + models + 1  # + the plan
    assert len(elements(doc, ProvActivity)) == executions + tasks
    assert len(elements(doc, ProvAgent)) == users + executions  # a person, a machine per run
    [plan] = [r for r in elements(doc, ProvEntity).values() if PROV["Plan"] in
              r.get_attribute(PROV_TYPE)]
    assert attr(plan, "df_tag") == DF


def test_used_and_generated_follow_what_each_task_recorded(runs, sql):
    doc = document(dataflow=DF)
    for rec in runs.values():
        counts = per_task_counts(doc, rec.exec_tag)
        assert set(counts) == {s.transformation for s in rec.steps}
        for step in rec.steps:
            used, generated = counts[step.transformation]
            assert used == Counter(step.used), step
            assert generated == Counter(step.produced), step
    # and every stored element made by a task is generated once, with what the store says
    generations = relations(doc, ProvGeneration)
    made = [(entity, activity) for entity, activity, _ in generations
            if str(entity.localpart).startswith(DF + "/")]
    expected = sum(s.produced[k] for rec in runs.values() for s in rec.steps for k in s.produced)
    assert len(made) == len(set(made)) == expected
    [(usage,)] = sql("SELECT COUNT(*) FROM task_usage")
    assert usage == sum(len({k for k in s.used if not k.startswith("i")})
                        for rec in runs.values() for s in rec.steps)


def test_values_are_typed(runs):
    doc = document(dataflow=DF)
    entities = elements(doc, ProvEntity)
    epochs = [r for r in entities.values() if attr(r, "ds_tag") == "otrain"]
    assert epochs and all(type(attr(r, "loss")) is float for r in epochs)
    assert {attr(r, "epoch") for r in epochs} == {1.0, 2.0, 3.0}
    assert all(type(attr(r, "epoch")) is float for r in epochs)
    assert {attr(r, "timestamp") for r in epochs} >= {datetime(2024, 1, 1, 10, 3)}
    [hyper] = [r for r in entities.values() if attr(r, "ds_tag") == "itrain"
               and attr(r, "learning_rate") == 0.001]
    assert attr(hyper, "batch_size") == 32.0 and attr(hyper, "optimizer_name") == "adam"
    assert attr(hyper, "layers") == "[64, 32]"  # JSON as its text
    assert attr(hyper, "id") == 1 and type(attr(hyper, "id")) is int
    machines = [r for r in elements(doc, ProvAgent).values()
                if PROV["SoftwareAgent"] in r.get_attribute(PROV_TYPE)]
    assert len(machines) == 2
    assert all(type(attr(m, "cpu_count")) is int and type(attr(m, "in_container")) is bool
               for m in machines)
    for activity in elements(doc, ProvActivity).values():
        assert isinstance(activity.get_startTime(), datetime)
        assert isinstance(activity.get_endTime(), datetime)
    # no attribute for a NULL: the model's layer_count was not given
    [model] = [r for r in entities.values() if DLPROV["TrainedModel"] in
               r.get_attribute(PROV_TYPE) and attr(r, "name") == "mlp-a"]
    assert attr(model, "layer_count") is None and attr(model, "framework") == "torch"
    assert type(attr(model, "size_bytes")) is int and len(attr(model, "sha256")) == 64


def test_identifiers_are_stable_and_export_writes_nothing(runs, store_path, sql):
    before = dump(store_path)
    first, second = export(format="provn"), export(format="provn")
    assert first == second
    assert export(run="exp-mlp-a", format="json") == export(run="exp-mlp-a", format="json")
    assert dump(store_path) == before
    doc = document(dataflow=DF)
    execution_uuid, task_uuid = sql("SELECT e.uuid, t.uuid FROM task t JOIN dataflow_execution e"
                                    " ON e.id = t.exec_id WHERE t.df_exec = 'exp-mlp-a' "
                                    "AND t.identifier = 1")[0]
    [(row_id,)] = sql(f"SELECT id FROM {DF}__otrainedmodel WHERE model_name = 'mlp-a'")
    ids = {str(r.identifier) for r in flat(doc) if r.identifier is not None}
    assert {f"dlprov:execution/{execution_uuid}", f"dlprov:task/{task_uuid}",
            f"dlprov:{DF}/otrainedmodel/{row_id}", f"dlprov:model/{runs['mlp-a'].model_id}",
            f"dlprov:dataflow/{DF}"} <= ids
    assert DLPROV.uri.startswith("https://")


def test_one_bundle_per_execution_and_the_plan_outside(runs, sql):
    doc = document(dataflow=DF)
    uuids = {u for (u,) in sql("SELECT uuid FROM dataflow_execution")}
    assert {str(b.identifier) for b in doc.bundles} == {f"dlprov:bundle/{u}" for u in uuids}
    [plan] = doc.get_records()
    assert isinstance(plan, ProvEntity) and attr(plan, "df_tag") == DF
    for bundle in doc.bundles:
        activities = [r for r in bundle.get_records() if isinstance(r, ProvActivity)]
        assert len({attr(a, "exec_tag") for a in activities}) == 1
        agents = [r for r in bundle.get_records() if isinstance(r, ProvAgent)]
        assert len(agents) == 2
    for rec in runs.values():
        bundle = next(b for b in doc.bundles if any(
            attr(r, "exec_tag") == rec.exec_tag for r in b.get_records(ProvActivity)))
        entities = [r for r in bundle.get_records() if isinstance(r, ProvEntity)]
        assert len(entities) == 1 + sum(sum(s.produced.values()) + sum(
            n for k, n in s.used.items() if k.startswith("i")) for s in rec.steps)


def test_execution_relations_agents_and_plan(runs):
    doc = document(run="exp-mlp-a")
    [execution] = [r for r in elements(doc, ProvActivity).values() if attr(r, "dt_tag") is None]
    assert attr(execution, "exec_tag") == "exp-mlp-a" and attr(execution, "status") == "finished"
    associations = [r.args[:3] for r in flat(doc) if r.get_type() == PROV["Association"]]
    plan = DLPROV[f"dataflow/{DF}"]
    exec_uuid = str(execution.identifier.localpart).split("/")[1]
    assert {(a, p) for x, a, p in associations if x == execution.identifier} == {
        (DLPROV["user/user-mlp-a"], plan), (DLPROV[f"machine/{exec_uuid}"], plan)}
    informed = [r.args[:2] for r in flat(doc) if r.get_type() == PROV["Communication"]]
    _, dt = tags(doc)
    tasks = [i for i, t in dt.items() if t]
    assert all((t, execution.identifier) in informed for t in tasks)
    by_tag = {dt[i]: i for i in tasks}
    assert (by_tag["test"], by_tag["train"]) in informed  # task_dependency
    assert (by_tag["train"], by_tag["splitdata"]) in informed
    [user] = [r for r in elements(doc, ProvAgent).values() if attr(r, "username")]
    assert (attr(user, "email"), attr(user, "organization")) == ("mlp-a@lab.example", "The Lab")
    delegations = [r.args[:3] for r in flat(doc) if r.get_type() == PROV["Delegation"]]
    assert len(delegations) == 1 and delegations[0][1] == user.identifier


def test_trained_model_entity(runs):
    doc = document(run="exp-mlp-a")
    model = DLPROV[f"model/{runs['mlp-a'].model_id}"]
    records = flat(doc)
    _, dt = tags(doc)
    generated = [r.args for r in records if isinstance(r, ProvGeneration) and r.args[0] == model]
    assert len(generated) == 1 and dt[generated[0][1]] == "train"
    assert isinstance(generated[0][2], datetime)
    attributed = [r.args[:2] for r in records if r.get_type() == PROV["Attribution"]]
    assert attributed == [(model, DLPROV["user/user-mlp-a"])]
    alternates = [r.args for r in records if r.get_type() == PROV["Alternate"]]
    [(_, element)] = alternates
    assert str(element.localpart).startswith(f"{DF}/otrainedmodel/")


def test_derivations_follow_the_recorded_lineage(runs):
    doc = document(dataflow=DF)
    ds, dt = tags(doc)
    derived = relations(doc, ProvDerivation)
    assert all(activity is not None and dt[activity] for _, _, activity in derived)
    upstream = defaultdict(set)
    for out, source, _ in derived:
        upstream[out].add(source)

    def ancestors(entity) -> set:
        found, todo = set(), [entity]
        while todo:
            for parent in upstream[todo.pop()]:
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        return found

    entities = elements(doc, ProvEntity)
    run_of = {}  # element -> the exec tag of the task that generated or used it
    for entity, activity, _ in relations(doc, ProvGeneration):
        run_of[entity] = attr(elements(doc, ProvActivity)[activity], "exec_tag")
    # the three-step chain of mlp-a: oaugment <- onormalize <- oclean <- oloaddata
    [augmented] = [e for e, tag in ds.items() if tag == "oaugment"]
    chain = [ds[e] for e in ancestors(augmented)]
    assert sorted(chain) == sorted(["onormalize", "oclean", "oloaddata", "iinputdataset",
                                    "inormalize", "iclean", "iaugment"])
    for rec in runs.values():
        [model] = [i for i, r in entities.items() if attr(r, "model_id") == rec.model_id
                   and DLPROV["TrainedModel"] in r.get_attribute(PROV_TYPE)]
        found = ancestors(model)
        assert {ds[e] for e in found} == {"otrainset", "itrain", "isplitconfig", "oloaddata",
                                          "iinputdataset", *(f"o{s}" for s in rec.chain),
                                          *(f"i{s}" for s in rec.chain)}
        assert all(run_of.get(e, rec.exec_tag) == rec.exec_tag for e in found)
        assert "oaudit" not in {ds[e] for e in found}
    # the test's measures derive from the model it evaluated and the test set
    for out, source, activity in derived:
        if ds.get(out) == "otest":
            assert ds[source] in ("otestset", "otrainedmodel")


def test_model_scope_is_exactly_the_trace(runs):
    rec = runs["mlp-a"]
    doc = model_document("mlp-a")
    assert doc == document(model=rec.model_id)
    ds, dt = tags(doc)
    assert Counter(t for t in dt.values() if t) == Counter(s.transformation for s in rec.trace())
    executions = [i for i, t in dt.items() if t is None]
    assert len(executions) == 1 and len(list(doc.bundles)) == 1
    expected = Counter()
    for step in rec.trace():
        expected.update(step.produced)
        expected.update({k: n for k, n in step.used.items() if k.startswith("i")})
    assert Counter(t for t in ds.values() if t) == expected
    models = [r for r in elements(doc, ProvEntity).values()
              if DLPROV["TrainedModel"] in r.get_attribute(PROV_TYPE)]
    assert [attr(m, "name") for m in models] == ["mlp-a"]
    text = export(model="mlp-a", format="provn")
    assert "mlp-b" not in text and "oaudit" not in text and "oreport" not in text
    # every relation stays inside the trace
    known = set(elements(doc, ProvEntity)) | set(elements(doc, ProvActivity)) | set(
        elements(doc, ProvAgent))
    for record in flat(doc):
        if record.is_relation():
            assert {a for a in record.args[:2]} <= known, record


def test_scope_errors(runs):
    with pytest.raises(QueryError, match="not both"):
        document(run="exp-mlp-a", model="mlp-a")
    with pytest.raises(NotFound, match="no execution"):
        document(run="nope")
    with pytest.raises(NotFound, match="no model 'nope'"):
        document(model="nope")
    with pytest.raises(QueryError, match="is of dataflow"):
        document(run="exp-mlp-a", dataflow="other")
    assert document(run=str(1)) == document(run="exp-mlp-a")  # by id as well


def test_original_cypher_property_names(runs):
    text = export(dataflow=DF, format="json")
    for name in ORIGINAL_PROPERTIES:
        assert f'"dlprov:{name}"' in text, name
    doc = document(dataflow=DF)
    losses = [attr(r, "loss") for r in elements(doc, ProvEntity).values() if
              attr(r, "ds_tag") in ("otrain", "otest")]
    assert losses and all(isinstance(v, float) for v in losses)
    records = flat(doc)
    # MATCH (b:Entity)-[:wasGeneratedBy]->(c:Activity) RETURN avg(b.`dlprov:loss`)
    assert any(isinstance(r, ProvGeneration) for r in records)
    # shortestPath((otest)-[*]-(oloaddata)) and (otest)-[:wasGeneratedBy]-(test) exist
    ds, dt = tags(doc)
    assert any(ds.get(e) == "otest" and dt.get(a) == "test"
               for e, a, _ in relations(doc, ProvGeneration))


# -- the DfAnalyzer-compatible predefined workflow -------------------------------------------
@pytest.fixture
def predefined(store_path):
    df = Dataflow("alexnet", predefined=True, email="bob@fictional.com")
    df.save()
    run_predefined_workflow(df, "alexnet-1")
    end_execution("alexnet-1")
    yield "alexnet-1"
    end_execution()


def test_predefined_workflow(predefined):
    doc = document(run=predefined)
    counts = per_task_counts(doc, predefined)
    assert counts == {
        "loaddata": (Counter(iinputdataset=1), Counter(oloaddata=1)),
        "applyfilter": (Counter(ifilter=1, oloaddata=1), Counter(ofilter=1)),
        "splitdata": (Counter(ofilter=1, isplitconfig=1),
                      Counter(otrainset=1, ovalset=1, otestset=1)),
        "train": (Counter(otrainset=1, ovalset=1, itrain=1),
                  Counter(otrain=2, otrainedmodel=1, oweights=1)),
        "test": (Counter(otestset=1, otrainedmodel=1), Counter(otest=1)),
    }
    ds, _ = tags(doc)
    derived = {(ds[a], ds[b]) for a, b, _ in relations(doc, ProvDerivation)}
    # what the original hard-coded, here read from the recorded lineage
    assert ("ofilter", "oloaddata") in derived
    assert {("otrainset", "ofilter"), ("ovalset", "ofilter"), ("otestset", "ofilter")} <= derived
    [user] = [r for r in elements(doc, ProvAgent).values() if attr(r, "username")]
    assert attr(user, "username") == "bob@fictional.com"  # the dfa API's user is the email
    assert str(user.identifier) == "dlprov:user/bob%40fictional.com"
    assert isinstance(attr(next(r for r in elements(doc, ProvEntity).values()
                                if attr(r, "ds_tag") == "otrain"), "elapsed_time"), float)
    # a model the dfa API recorded as an otrainedmodel element only, named by its model_name
    _, trace = tags(document(model="trained_model"))
    assert sorted(t for t in trace.values() if t) == sorted(counts)


# -- the same on PostgreSQL --------------------------------------------------------------------
def test_postgresql_store_exports_the_same(tmp_path):
    from sqlalchemy import create_engine, text

    from dlprov.prov import deserialize, serialize
    from tests.conftest import postgresql_home

    with postgresql_home("prov") as (url, home):
        df_tag = f"{home}_df"
        runs = experiment(tmp_path, store=url, df_tag=df_tag)
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            def count(statement: str) -> int:
                return conn.execute(text(statement)).scalar_one()
            rows = sum(count(f'SELECT COUNT(*) FROM "{df_tag}"."{t}"') for t in conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": df_tag}).scalars())
            models, executions, tasks = (count(f"SELECT COUNT(*) FROM {t}") for t in
                                         ("trained_model", "dataflow_execution", "task"))
        engine.dispose()
        doc = document(url, dataflow=df_tag)
        assert len(elements(doc, ProvEntity)) == rows + models + 1
        assert len(elements(doc, ProvActivity)) == executions + tasks
        for rec in runs.values():
            counts = per_task_counts(doc, rec.exec_tag)
            for step in rec.steps:
                assert counts[step.transformation] == (Counter(step.used),
                                                       Counter(step.produced))
        for fmt in ("provn", "json", "xml"):
            back = deserialize(serialize(doc, fmt), fmt)
            assert back == doc and doc == back
        trace = document(url, model="mlp-a")
        _, dt = tags(trace)
        assert Counter(t for t in dt.values() if t) == Counter(
            s.transformation for s in runs["mlp-a"].trace())
