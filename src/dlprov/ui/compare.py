"""The compare page (``/compare?runs=A,B`` or ``?models=M1,M2``): runs side by side, section
by section (hyperparameters, metrics, environment, data, preparation, model), each row one
value per run, and whether the values differ.

Models are compared through the runs that trained them, plus the model's own digest and size.
"""
from __future__ import annotations

from typing import Any, Sequence

from dlprov.errors import QueryError
from dlprov.query.lineage import trace_tasks
from dlprov.query.models import model_context
from dlprov.store.store import Store
from dlprov.ui.lineage import lineage, run_tasks
from dlprov.ui.run import run_view
from dlprov.ui.runs import BOOKKEEPING, rows_of

MAX_COMPARED = 20
SECTIONS = ("hyperparameters", "metrics", "environment", "data", "preparation", "model")


def _items(text: str | Sequence[str] | None) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return list(dict.fromkeys(i.strip() for i in items if i.strip()))


def compare(store: Store, runs: str | Sequence[str] | None = None,
            models: str | Sequence[str] | None = None) -> dict[str, Any]:
    """``{"runs": [exec tags], "sections": {section: [{"name", "values", "differs"}]}}``."""
    wanted_runs, wanted_models = _items(runs), _items(models)
    if not wanted_runs and not wanted_models:
        raise QueryError("name what to compare: ?runs=A,B (exec tags or ids) or "
                         "?models=M1,M2 (model ids, names or file paths)")
    if len(wanted_runs) + len(wanted_models) > MAX_COMPARED:
        raise QueryError(f"compare at most {MAX_COMPARED} runs or models at a time")
    labels: list[str] = []
    chosen: list[tuple[str, list[int] | None, dict[str, Any]]] = []  # run, tasks, model
    for run in wanted_runs:
        labels.append(run)
        chosen.append((run, None, {}))
    for model in wanted_models:
        ctx = model_context(store, model)
        found, task_ids = trace_tasks(ctx, model)
        labels.append(found.name or found.model_id or model)
        chosen.append((found.exec_tag, task_ids, {"model id": found.model_id,
                                                  "name": found.name, "path": found.path}))
    views = [run_view(store, run) for run, _, _ in chosen]
    graphs = _lineages(store, views, [tasks for _, tasks, _ in chosen])
    rows = rows_of(store, [v["run"]["tag"] for v in views])
    columns = []
    for view, graph, (_, _, model) in zip(views, graphs, chosen):
        column = _run_column(view, graph, rows.get(view["run"]["tag"], {}))
        column["model"].update(model)
        columns.append(column)
    sections = {}
    for section in SECTIONS:
        names = list(dict.fromkeys(n for c in columns for n in c[section]))
        sections[section] = [{"name": n, "values": [c[section].get(n) for c in columns],
                              "differs": len({repr(c[section].get(n)) for c in columns}) > 1}
                             for n in names]
    return {"labels": labels, "runs": [c["run"] for c in columns], "sections": sections}


def _lineages(store: Store, views: list[dict[str, Any]],
              chosen: list[list[int] | None]) -> list[dict[str, Any]]:
    """The lineage graph of each compared run (or model trace), read in one pass per
    dataflow."""
    from dlprov.ui.run import find_run
    tasks = [ids if ids is not None else run_tasks(store, v["run"]["id"])
             for v, ids in zip(views, chosen)]
    by_dataflow: dict[str, list[int]] = {}
    specs = {}
    for view, ids in zip(views, tasks):
        tag = view["run"]["df_tag"]
        if tag not in specs:
            specs[tag] = find_run(store, view["run"]["tag"])[1]
        by_dataflow.setdefault(tag, []).extend(ids)
    whole = {tag: lineage(store, specs[tag], ids) for tag, ids in by_dataflow.items()}
    out = []
    for view, ids in zip(views, tasks):
        keep = set(ids)
        nodes = [n for n in whole[view["run"]["df_tag"]]["nodes"] if n["task_id"] in keep]
        out.append({"nodes": nodes, "edges": []})
    return out


def _run_column(view: dict[str, Any], graph: dict[str, Any], row: dict[str, Any]
                ) -> dict[str, Any]:
    """One run's values, section by section (``row``: its row of the runs table)."""
    exec_tag = view["run"]["tag"]
    metrics = {k: v for k, v in row.items() if ":" in k and k.rsplit(":", 1)[1] in
               ("last", "best") and k.split(".", 1)[-1].split(":")[0] not in BOOKKEEPING}
    env = dict(view["environment"])
    env.pop("exec_id", None)
    env = {k: _text(v) for k, v in env.items()}
    env.update({f"package {k}": v for k, v in view["packages"].items()})
    env.update({"user": view["agent"]["username"], "host": view["agent"]["hostname"]})
    data: dict[str, Any] = {}
    preparation: dict[str, Any] = {}
    for node in graph["nodes"]:
        if node["kind"] == "data" and node["set"] not in ("otrain", "otest",
                                                           "otrainedmodel"):
            for name, value in (node.get("rows") or [{}])[0].items():
                data[f"{node['set']}.{name}"] = value
        elif node["kind"] == "task":
            preparation.setdefault("steps", [])
            preparation["steps"].append(node["label"])
            for name, value in node["values"]:
                preparation[f"{node['label']} {name}"] = value
    if "steps" in preparation:
        preparation["steps"] = " → ".join(preparation["steps"])
    model: dict[str, Any] = {}
    for found in view["models"][:1]:
        model = {"sha256": found.get("sha256"), "parameters": found.get("parameter_count"),
                 "size (bytes)": found.get("size_bytes"), "framework": found.get("framework")}
    return {"run": exec_tag, "hyperparameters": view["hyperparameters"], "metrics": metrics,
            "environment": env, "data": data, "preparation": preparation, "model": model}


def _text(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
