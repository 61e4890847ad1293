"""The model questions of the DLProv paper's Table 2 (Q7–Q12) as Cypher on the provenance graph,
the twins of the SQL ones in :mod:`dlprov.query.questions`: same answers, their own columns.

The model is found by the SQL layer (:func:`dlprov.query.find_model`: an id, a name or a file
path); the query then starts from the activity that generated an entity with its
``dlprov:model_id`` (the trained model, or its ``otrainedmodel`` element), or, for a model
recorded with no id, from the activity with its training task's ``dlprov:task_id``::

    from dlprov.graph import ask
    ask("q12", "mlp-adam").rows        # the preprocessing chain, raw input first
    print(prepare("q10", "mlp-adam")[0])  # the Cypher behind it
"""
from __future__ import annotations

from typing import Any

from dlprov.errors import QueryError
from dlprov.graph.queries import MAX_HOPS, cypher
from dlprov.model.names import ITRAIN, OTRAINEDMODEL
from dlprov.query.models import find_model
from dlprov.query.sql import QueryResult
from dlprov.store.store import Store

_BY_MODEL_ID = ("MATCH (m:Entity)-[:wasGeneratedBy]->(t:Activity)\n"
                "WHERE m.`dlprov:model_id` = $model_id\nWITH DISTINCT t\n")
_BY_TASK_ID = "MATCH (t:Activity)\nWHERE t.`dlprov:task_id` = $task_id\n"
_TASK = "to_int64(t.`dlprov:task_id`) AS train_task_id"

# Each query continues from ``t``, the model's training activity.
QUERIES: dict[str, str] = {
    "q7": f"""MATCH (t)-[:used]->(h:Entity)
WHERE h.`dlprov:ds_tag` = '{ITRAIN}'
RETURN {_TASK}, t.`dlprov:exec_tag` AS exec_tag, h AS hyperparameters""",
    # the machine is associated with the execution that informed the training task
    "q8": f"""MATCH (t)-[:wasInformedBy]->(x:Activity)-[:wasAssociatedWith]->(a:Agent)
WHERE a.`prov:type` = 'prov:SoftwareAgent'
RETURN {_TASK}, x.`dlprov:exec_tag` AS exec_tag, a AS environment""",
    "q9": f"""MATCH (t)-[:wasInformedBy]->(x:Activity)-[:wasAssociatedWith]->(a:Agent)
WHERE a.`prov:type` = 'prov:Person'
RETURN {_TASK}, x.`dlprov:exec_tag` AS exec_tag, a AS agent""",
    # seeds: the training and the tests that used its otrainedmodel element; then every task
    # upstream of them, by data (used, wasGeneratedBy) or order (wasInformedBy)
    "q10": f"""MATCH (s:Activity)
WHERE s.id = t.id OR EXISTS {{ MATCH (s)-[:used]->(o:Entity)-[:wasGeneratedBy]->(t)
                              WHERE o.`dlprov:ds_tag` = '{OTRAINEDMODEL}' }}
MATCH p = (s)-[:used|wasGeneratedBy|wasInformedBy* ACYCLIC 0..{MAX_HOPS}]->(u:Activity)
WHERE u.`dlprov:task_id` IS NOT NULL
RETURN max(length(p)) AS hops, to_int64(u.`dlprov:task_id`) AS task_id,
       u.`dlprov:dt_tag` AS transformation, u.`dlprov:status` AS status,
       u.`dlprov:exec_tag` AS exec_tag
ORDER BY hops DESC, task_id""",
    "q11": f"""MATCH (t)-[:used]->(e:Entity)
WHERE e.`dlprov:ds_tag` <> '{ITRAIN}'
OPTIONAL MATCH (e)-[:wasGeneratedBy]->(p:Activity)
RETURN e.`dlprov:ds_tag` AS set_tag, to_int64(e.`dlprov:id`) AS element_id,
       p.`dlprov:dt_tag` AS produced_by, to_int64(p.`dlprov:task_id`) AS producer_task_id
ORDER BY set_tag, element_id""",
    # data derivation only; a step is two hops (used, then wasGeneratedBy)
    "q12": f"""MATCH p = (t)-[:used|wasGeneratedBy* ACYCLIC 0..{MAX_HOPS}]->(u:Activity)
RETURN max(length(p)) / 2 AS depth, to_int64(u.`dlprov:task_id`) AS task_id,
       u.`dlprov:dt_tag` AS transformation
ORDER BY depth DESC, task_id""",
}


def prepare(question: str, model: str, *, store: Store | str | None = None,
            dataflow: str | None = None) -> tuple[str, dict[str, Any]]:
    """The Cypher of ``question`` ("q7" … "q12") for ``model`` and its parameters.

    Raises :class:`QueryError` for another question or an ambiguous model, and
    :class:`NotFound` for an unknown dataflow or model."""
    body = QUERIES.get(str(question).lower())
    if body is None:
        raise QueryError(f"no Cypher question {question!r}: ask one of {', '.join(QUERIES)}")
    found = find_model(model, store=store, dataflow=dataflow)
    if found.model_id:
        return _BY_MODEL_ID + body, {"model_id": found.model_id}
    return _BY_TASK_ID + body, {"task_id": float(found.train_task_id)}


def _flatten(result: QueryResult) -> QueryResult:
    """Node columns (dicts) spread into one column per property, ``dlprov:`` dropped."""
    nodes = [i for i, value in enumerate(result.rows[0]) if isinstance(value, dict)] \
        if result.rows else []
    if not nodes:
        return result
    names: dict[int, list[str]] = {i: [] for i in nodes}
    for row in result.rows:
        for i in nodes:
            names[i] += [k for k in row[i] if k not in ("label", "id") and k not in names[i]]
    columns, rows = [], [[] for _ in result.rows]
    for i, column in enumerate(result.columns):
        keys = names.get(i, [None])
        columns += [column] if i not in names else [k.removeprefix("dlprov:") for k in keys]
        for out, row in zip(rows, result.rows):
            out += [row[i]] if i not in names else [row[i].get(k) for k in keys]
    return QueryResult(columns, [tuple(row) for row in rows])


def ask(question: str, model: str, *, store: Store | str | None = None,
        dataflow: str | None = None) -> QueryResult:
    """The answer to model question ``question`` ("q7" … "q12") from the provenance graph of
    ``dataflow`` (default: the only or most recent one); see :func:`prepare`."""
    query, params = prepare(question, model, store=store, dataflow=dataflow)
    return _flatten(cypher(query, store, dataflow=dataflow, params=params))
