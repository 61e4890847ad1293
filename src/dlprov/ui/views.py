"""What each page shows, as plain data: the page's template renders it, its ``/api`` twin
returns it as JSON. One function per page, each calling the query modules."""
from __future__ import annotations

from typing import Any

from dlprov.errors import DlprovError, NotFound, QueryError
from dlprov.store.store import Store


def runs(store: Store, **options: Any) -> dict[str, Any]:
    """The runs page (see :func:`dlprov.ui.runs.runs_page`)."""
    from dlprov.ui.runs import AGGREGATES, PAGE_SIZES, runs_page
    # conditions: repeated ``where``, or several in one separated by ';'
    options["where"] = [w for item in options.get("where", ()) for w in item.split(";")]
    found = runs_page(store, **options)
    return {**found.to_json(), "aggregates": list(AGGREGATES), "page_sizes": list(PAGE_SIZES)}


def run(store: Store, run: str) -> dict[str, Any]:
    """The run page: :func:`dlprov.ui.run.run_view` and its lineage graph."""
    from dlprov.ui.run import run_view
    found = run_view(store, run)
    found["data_used"] = []
    if not store.remote:  # a server's read endpoints do not give the lineage
        graph = found["lineage"] = run_lineage(store, run)
        used = {e["source"] for e in graph["edges"] if e["source"].startswith("data-")}
        found["data_used"] = [{"set": n["set"], "elements": n["count"],
                               "produced by task": n["task_id"],
                               "values": ", ".join(f"{k}={v}" for k, v in n["values"])}
                              for n in graph["nodes"] if n["id"] in used]
    return found


def run_lineage(store: Store, run: str) -> dict[str, Any]:
    from dlprov.ui.lineage import lineage, run_tasks
    from dlprov.ui.run import find_run
    row, spec = find_run(store, run)
    return lineage(store, spec, run_tasks(store, row["id"]))


def run_prov(store: Store, run: str, format: str) -> tuple[bytes, str]:
    """The run's PROV document in ``format`` and its media type."""
    from dlprov.prov import document, serialize
    from dlprov.ui.models import PROV_FORMATS
    from dlprov.ui.run import find_run
    if format not in PROV_FORMATS and format != "svg":
        raise NotFound(f"no format {format!r}: use one of {', '.join([*PROV_FORMATS, 'svg'])}")
    row, spec = find_run(store, run)
    content = serialize(document(store, dataflow=spec.tag, run=row["id"]), format)
    return content, PROV_FORMATS.get(format, "image/svg+xml")


def compare(store: Store, runs: str, models: str) -> dict[str, Any]:
    from dlprov.ui.compare import compare as build
    return build(store, runs or None, models or None)


def models(store: Store, dataflow: str | None, metric: str | None) -> dict[str, Any]:
    from dlprov.ui.models import ranking
    return {**ranking(store, dataflow or None, metric or None), "dataflows": dataflows(store)}


def model(store: Store, model: str) -> dict[str, Any]:
    from dlprov.ui.models import model_card
    return model_card(store, model)


def dataflow(store: Store, tag: str) -> dict[str, Any]:
    """The spec of a dataflow: transformations with their input and output sets, the sets'
    attributes, and its versions."""
    from sqlalchemy import select

    from dlprov.store import schema as s
    spec = store.load_spec(tag)
    if spec is None:
        raise NotFound(f"no dataflow {tag!r} in the store")
    transformations = [{"tag": t, "inputs": spec.sets_of(t, "input"),
                        "outputs": spec.sets_of(t, "output")} for t in spec.transformations]
    sets = [{"tag": t, "attributes": [{"name": a.name, "type": a.type.value,
                                       "label": a.label} for a in d.attributes.values()],
             "producers": spec.producers(t)} for t, d in spec.sets.items()]
    versions: list[dict[str, Any]] = []
    try:
        with store.read() as conn:
            v, d = s.dataflow_version, s.dataflow
            versions = [{k: (str(x) if x is not None and not isinstance(x, (int, float, str))
                             else x) for k, x in r._mapping.items() if k != "spec"}
                        for r in conn.execute(select(v).join(d, d.c.id == v.c.df_id)
                                              .where(d.c.tag == spec.tag))]
    except DlprovError:
        pass  # a remote store: the spec is all there is
    return {"tag": spec.tag, "label": spec.label, "transformations": transformations,
            "sets": sets, "versions": versions}


def dataflows(store: Store) -> list[str]:
    from dlprov.query.catalogue import dataflow_tags
    with store.read() as conn:
        return dataflow_tags(conn)


def query(store: Store, text: str, lang: str, dataflow: str | None, preset: str | None,
          model: str | None, *, catch: bool = False) -> dict[str, Any]:
    """A query console's answer: ``preset`` (q1..q12, with ``model`` for Q7–Q12) shows the
    question's SQL and runs it; else ``text`` runs as read-only SQL (through
    :mod:`dlprov.query.guard`) or Cypher. With ``catch``, an error is part of the answer."""
    from dlprov.query.questions import QUESTIONS, prepare
    from dlprov.query.sql import sql
    found: dict[str, Any] = {"q": text, "lang": lang, "dataflow": dataflow, "preset": preset,
                             "model": model, "columns": [], "rows": [], "error": None,
                             "presets": [{"id": q.id, "title": q.title,
                                          "parameters": list(q.parameters)}
                                         for q in QUESTIONS.values()]}
    try:
        if preset:
            params = {"model": model} if model and "model" in \
                QUESTIONS.get(preset.lower(), QUESTIONS["q1"]).parameters else {}
            statement = prepare(preset, store=store, dataflow=dataflow or None, **params)
            found.update(q=str(statement), lang="sql", title=statement.title)
            result = statement.run()
        elif not text.strip():
            return found
        elif lang == "cypher":
            from dlprov.graph.queries import cypher
            result = cypher(text, store, dataflow=dataflow or None)
        else:
            result = sql(text, store=store, dataflow=dataflow or None, max_rows=10_000)
    except (DlprovError, QueryError) as exc:
        if not catch:
            raise
        found["error"] = str(exc)
        return found
    found["columns"] = list(result.columns)
    found["rows"] = [[_cell(v) for v in row] for row in result.rows]
    return found


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
