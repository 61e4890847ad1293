"""The model card (``/models/<id, name or path>``), the ranking of a dataflow's candidate
models (``/models``) and the downloads of a model: its package and its PROV.

The card holds the answers to Q7–Q12 (:mod:`dlprov.query.questions`), the test results and
the lineage graph of the model's trace (:func:`dlprov.query.lineage.trace_tasks`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dlprov.errors import DlprovError, NotFound
from dlprov.query.lineage import trace_tasks
from dlprov.query.models import model_context
from dlprov.query.questions import QUESTIONS, ask
from dlprov.store.store import Store
from dlprov.ui.lineage import lineage

CARD_QUESTIONS = ("q7", "q8", "q9", "q10", "q11", "q12")
PROV_FORMATS = {"json": "application/json", "provn": "text/provenance-notation",
                "xml": "application/xml", "ttl": "text/turtle"}


def _result(question: str, **params: Any) -> dict[str, Any]:
    try:
        found = ask(question, **params)
    except DlprovError as exc:  # one question failing leaves the rest of the card
        return {"title": QUESTIONS[question].title, "error": str(exc), "columns": [], "rows": []}
    return {"title": QUESTIONS[question].title, "columns": found.columns,
            "rows": [[_cell(v) for v in row] for row in found.rows]}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def model_card(store: Store, model: str) -> dict[str, Any]:
    """Everything the model card shows."""
    ctx = model_context(store, model)
    found, task_ids = trace_tasks(ctx, model)
    graph = lineage(store, ctx.spec, task_ids)
    tests = [row for node in graph["nodes"] if node["kind"] == "data"
             and node["set"] == "otest" for row in node.get("rows", [])]
    answers = {q: _result(q, store=store, dataflow=ctx.spec.tag, model=model)
               for q in CARD_QUESTIONS}
    return {"model": {"model_id": found.model_id, "name": found.name, "path": found.path,
                      "exec_tag": found.exec_tag, "train_task_id": found.train_task_id,
                      "dataflow": ctx.spec.tag},
            "tests": tests, "answers": answers, "lineage": graph}


def ranking(store: Store, dataflow: str | None = None, metric: str | None = None
            ) -> dict[str, Any]:
    """Q4 (by test results) and Q3 (by training results): the candidate models of a dataflow,
    best first."""
    params: dict[str, Any] = {"store": store, "dataflow": dataflow}
    if metric:
        params["metric"] = metric
    return {"dataflow": dataflow, "metric": metric,
            "q4": _result("q4", **params), "q3": _result("q3", **params)}


def prov_bytes(store: Store, model: str, format: str) -> bytes:
    """The PROV document of the model's trace in ``format`` (json, provn, xml, ttl, svg)."""
    from dlprov.prov import model_document, serialize
    if format not in PROV_FORMATS and format != "svg":
        raise NotFound(f"no format {format!r}: use one of {', '.join([*PROV_FORMATS, 'svg'])}")
    ctx = model_context(store, model)
    return serialize(model_document(model, store, dataflow=ctx.spec.tag), format)


def package_file(store: Store, model: str) -> Path:
    """A temporary file holding the model's package (``dlprov package``); the caller removes
    it once sent."""
    from dlprov.prov.package import package_model
    handle, name = tempfile.mkstemp(prefix="dlprov-ui-", suffix=".zip")
    os.close(handle)
    try:
        return package_model(model, name, store)
    except BaseException:
        os.unlink(name)
        raise
