"""From dlprov's records into the provenance another tool recorded (the DLProv paper's
Provenance Integration Layer and its Q12 across it).

An imported node names a record (``prov_node.record_id``, see :mod:`dlprov.prov.imports`); a
dlprov element names it too, in an attribute ``record_id`` (or ``sha256``/``digest``, a file
digest; a trained model's ``sha256`` counts as well). Read with the same rule
(:func:`dlprov.store.external.record_id`), equal values link the two.

- :func:`linked_records`: the links, for a dataflow's elements or those upstream of a model.
- :func:`external_lineage`: from a model back through dlprov's tasks (the upstream walk of
  Q10–Q12: its training task and every task it depended on or used data of, at any depth) to
  the elements they used and produced, to the imported nodes naming those records, and on
  upstream in the imported provenance along ``wasGeneratedBy``, ``used``, ``wasDerivedFrom``
  and ``wasInformedBy`` at any depth: the data preparation that made the training data.
"""
from __future__ import annotations

from dlprov.errors import StoreUnavailable
from dlprov.model.spec import AttributeType
from dlprov.query.building import Context, Statement, ctes, need
from dlprov.query.catalogue import dataflow_tags
from dlprov.query.models import resolve_model
from dlprov.query.relations import lineage_cte, produced_cte, used_cte
from dlprov.query.sql import QueryResult
from dlprov.store.external import DIGEST_KEYS, has_tables
from dlprov.store.store import Store, as_store

#: Attributes of dlprov's elements that name a record (names are lower-case in dlprov).
ELEMENT_KEYS = ("record_id", "id_record", "recordid", "sha256", "digest")
#: Relations followed upstream in imported provenance, from subject to object.
UPSTREAM = ("wasGeneratedBy", "used", "wasDerivedFrom", "wasInformedBy")

LINKED_COLUMNS = ["dataflow", "task_id", "transformation", "role", "set_tag", "element_id",
                  "record_key", "record_id", "doc_id", "source", "node", "node_kind"]
LINEAGE_COLUMNS = ["depth", "source", "doc_id", "node", "kind", "label", "record_id",
                   "reached_by", "attributes"]

_LINKED_TITLE = "Which dlprov records does imported provenance describe?"
_LINEAGE_TITLE = ("Which data preparation, recorded by another tool, made the data a model "
                  "was trained on?")


def _normalized(column: str, name: str, kind: AttributeType) -> str:
    """SQL for :func:`dlprov.store.external.record_id` of a column's value."""
    if kind == AttributeType.NUMERIC:
        # a whole number as such (7, not 7.0); NaN and huge values stay out of the BIGINT cast
        return (f"CASE WHEN {column} NOT BETWEEN -1e15 AND 1e15 THEN CAST({column} AS TEXT) "
                f"WHEN {column} = CAST({column} AS BIGINT) "
                f"THEN CAST(CAST({column} AS BIGINT) AS TEXT) ELSE CAST({column} AS TEXT) END")
    text = f"TRIM(CAST({column} AS TEXT))"
    if name in DIGEST_KEYS:
        return (f"CASE WHEN LOWER({text}) LIKE 'sha256:%' THEN SUBSTR(LOWER({text}), 8) "
                f"ELSE LOWER({text}) END")
    return text


def _keys_cte(ctx: Context) -> str:
    """``_keys(set_tag, element_id, record_key, record_id)``: the record ids of elements."""
    branches = []
    for set_tag, found in ctx.spec.sets.items():
        for attribute in found.attributes.values():
            if attribute.name in ELEMENT_KEYS and attribute.type in (
                    AttributeType.TEXT, AttributeType.FILE, AttributeType.NUMERIC):
                column = f"x.{ctx.q(attribute.name)}"
                branches.append(
                    f"SELECT {ctx.literal(set_tag)}, x.id, {ctx.literal(attribute.name)}, "
                    f"{_normalized(column, attribute.name, attribute.type)}\n"
                    f"  FROM {ctx.q(set_tag)} x WHERE {column} IS NOT NULL")
    branches.append("SELECT 'trained_model', tm.id, 'sha256', LOWER(tm.sha256)\n"
                    "  FROM trained_model tm WHERE tm.sha256 IS NOT NULL")
    body = "\n  UNION ALL\n  ".join(branches)
    return f"_keys(set_tag, element_id, record_key, record_id) AS (\n  {body}\n)"


def _link_ctes(ctx: Context, train_task_id: int | None) -> list[str]:
    """The common tables up to ``_links(task_id, role, set_tag, element_id, record_key,
    record_id)``: elements the tasks in scope used or produced that name a record. The scope
    is the model's upstream trace (``train_task_id``) or the whole dataflow."""
    if train_task_id is None:
        walk = ["""_scope(task_id) AS (
  SELECT t.id FROM task t
  JOIN data_transformation dt ON dt.id = t.dt_id
  JOIN dataflow df ON df.id = dt.df_id
  WHERE df.tag = :dataflow
)"""]
    else:
        walk = [lineage_cte("SELECT CAST(:train_task_id AS INTEGER), "
                                         "CAST(:train_task_id AS INTEGER), 0", ctx.dialect),
                "_scope(task_id) AS (SELECT DISTINCT task_id FROM _lineage)"]
    return [*walk, produced_cte(ctx), used_cte(ctx), _keys_cte(ctx), """_elements AS (
  SELECT task_id, 'used' AS role, set_tag, element_id FROM _used
  WHERE task_id IN (SELECT task_id FROM _scope)
  UNION
  SELECT task_id, 'produced', set_tag, element_id FROM _produced
  WHERE task_id IN (SELECT task_id FROM _scope)
  UNION
  SELECT task_id, 'produced', 'trained_model', id FROM trained_model
  WHERE task_id IN (SELECT task_id FROM _scope)
)""", """_links AS (
  SELECT el.task_id, el.role, el.set_tag, el.element_id, k.record_key, k.record_id
  FROM _elements el
  JOIN _keys k ON k.set_tag = el.set_tag AND k.element_id = el.element_id
)"""]


def prepare_linked(*, store: Store | str | None = None, model: str | None = None,
                   dataflow: str | None = None) -> Statement:
    """The SQL of :func:`linked_records` for one dataflow (default: the only or most recent)."""
    ctx = Context.open(store, dataflow)
    params: dict = {"dataflow": ctx.spec.tag}
    notes = []
    if model is not None:
        found = resolve_model(ctx, model)
        params["train_task_id"] = found.train_task_id
        notes.append(found.describe())
    text = ctes(*_link_ctes(ctx, params.get("train_task_id"))) + """
SELECT CAST(:dataflow AS TEXT) AS dataflow, l.task_id, dt.tag AS transformation, l.role,
       l.set_tag, l.element_id, l.record_key, l.record_id, d.id AS doc_id, d.source,
       n.name AS node, n.kind AS node_kind
FROM _links l
JOIN prov_node n ON n.record_id = l.record_id
JOIN prov_document d ON d.id = n.doc_id
JOIN task t ON t.id = l.task_id
JOIN data_transformation dt ON dt.id = t.dt_id
ORDER BY l.set_tag, l.element_id, l.task_id, d.id, n.name, n.kind"""
    return Statement("linked", _LINKED_TITLE, ctx.spec.tag, text, params, notes, ctx.store)


def linked_records(store: Store | str | None = None, model: str | None = None,
                   dataflow: str | None = None) -> QueryResult:
    """The dlprov elements whose record id (or digest) an imported node names, with the task
    that used or produced each (``role``) and the node: those upstream of ``model`` (an id, a
    name or a file path), or all of ``dataflow``'s, or, given neither, every dataflow's."""
    store = as_store(store)
    if not _has_imports(store):
        return QueryResult(list(LINKED_COLUMNS), [])
    if model is None and dataflow is None:
        with store.read() as conn:
            tags = dataflow_tags(conn)
        rows = [row for tag in tags
                for row in prepare_linked(store=store, dataflow=tag).run().rows]
        return QueryResult(list(LINKED_COLUMNS), rows)
    return prepare_linked(store=store, model=model, dataflow=dataflow).run()


def prepare_external(model: str, *, store: Store | str | None = None,
                     dataflow: str | None = None) -> Statement:
    """The SQL of :func:`external_lineage`, with its parameters; ``str()`` prints it."""
    ctx = Context.open(store, dataflow)
    found = resolve_model(ctx, need("external", "model", model, "MODEL"))
    kinds = ", ".join(f"'{kind}'" for kind in UPSTREAM)
    text = ctes(*_link_ctes(ctx, found.train_task_id),
                """_external(doc_id, identifier, depth, relation, downstream) AS (
  SELECT DISTINCT n.doc_id, n.identifier, 0, CAST(NULL AS TEXT), CAST(NULL AS TEXT)
  FROM _links l JOIN prov_node n ON n.record_id = l.record_id
  UNION
  SELECT e.doc_id, r.object, e.depth + 1, CAST(r.kind AS TEXT), e.identifier
  FROM _external e
  JOIN prov_relation r ON r.doc_id = e.doc_id AND r.subject = e.identifier
  JOIN prov_document pd ON pd.id = e.doc_id
  WHERE r.kind IN (""" + kinds + """) AND r.object IS NOT NULL
    -- no path in a document is longer than its relations: this only stops a cycle
    AND e.depth < pd.relation_count
)""", """_reached AS (
  SELECT doc_id, identifier, MIN(depth) AS depth FROM _external GROUP BY doc_id, identifier
)""") + """
SELECT r.depth, d.source, r.doc_id, COALESCE(n.name, r.identifier) AS node, n.kind, n.label,
       n.record_id,
       (SELECT MIN(e.relation || ' ' || COALESCE(dn.name, e.downstream))
        FROM _external e
        LEFT JOIN prov_node dn ON dn.doc_id = e.doc_id AND dn.identifier = e.downstream
        WHERE e.doc_id = r.doc_id AND e.identifier = r.identifier AND e.depth = r.depth
       ) AS reached_by,
       CAST(n.attributes AS TEXT) AS attributes
FROM _reached r
JOIN prov_document d ON d.id = r.doc_id
LEFT JOIN prov_node n ON n.doc_id = r.doc_id AND n.identifier = r.identifier
ORDER BY r.doc_id, r.depth, n.kind, node"""
    return Statement("external", _LINEAGE_TITLE, ctx.spec.tag, text,
                     {"train_task_id": found.train_task_id}, [found.describe()], ctx.store)


def external_lineage(model: str, store: Store | str | None = None,
                     dataflow: str | None = None) -> QueryResult:
    """The imported provenance upstream of ``model`` (an id, a name or a file path): one row
    per node reached, at its least ``depth`` (0: a node naming a record that the model's
    trace used or produced), with the relation and node it was ``reached_by``. Nodes a
    relation names but the document never declares come with no ``kind``."""
    statement = prepare_external(model, store=store, dataflow=dataflow)
    if not _has_imports(statement.store or as_store(store)):
        return QueryResult(list(LINEAGE_COLUMNS), [])
    return statement.run()


def _has_imports(store: Store) -> bool:
    try:
        with store.read() as conn:
            return has_tables(conn)
    except StoreUnavailable:  # no store yet: nothing imported
        return False
