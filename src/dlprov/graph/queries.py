"""Cypher over the provenance graph, accepting the Neo4j forms of the original DLProv queries.

ladybug speaks openCypher with a few differences that :func:`translate` bridges:

- ``shortestPath((a)-[*]-(b))`` becomes ``(a)-[* SHORTEST 1..30]-(b)`` (ladybug's shortest
  path is a mode of the variable-length pattern);
- an unbounded ``[*]`` / ``[:type*]`` becomes ``[* TRAIL 1..30]``: Neo4j's rule (no
  relationship twice in one path) under ladybug's upper bound of 30 hops; ladybug's own
  default would walk edges back and forth;
- ``toFloat``/``toInteger``/``toString`` become ``to_double``/``to_int64``/``to_string``.

Backquoted property names with a colon (``b.`dlprov:loss```) work as in Neo4j.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dlprov.errors import QueryError
from dlprov.graph.engine import connect
from dlprov.graph.readonly import check
from dlprov.query.sql import QueryResult
from dlprov.store.store import Store

MAX_HOPS = 30
_FUNCTIONS = {"tofloat": "to_double", "tointeger": "to_int64", "tostring": "to_string"}
# [*], [r*], [:used*], [r:used|wasGeneratedBy*] with no bounds or mode of their own
_UNBOUNDED = re.compile(r"\[(\s*\w*\s*(?::\s*[\w|`:]+)?\s*)\*\s*\]")


def _shortest(query: str) -> str:
    out, pos = [], 0
    for match in re.finditer(r"shortestPath\s*\(", query, re.IGNORECASE):
        if match.start() < pos:
            continue
        depth, end = 1, match.end()
        while end < len(query) and depth:
            depth += {"(": 1, ")": -1}.get(query[end], 0)
            end += 1
        inner = query[match.end():end - 1]
        inner = _UNBOUNDED.sub(lambda m: f"[{m.group(1)}* SHORTEST 1..{MAX_HOPS}]", inner)
        out += [query[pos:match.start()], inner]
        pos = end
    return "".join(out) + query[pos:]


def translate(query: str) -> str:
    """``query`` in ladybug's Cypher (see the module's docstring); ladybug's own forms pass."""
    query = _shortest(query)
    query = _UNBOUNDED.sub(lambda m: f"[{m.group(1)}* TRAIL 1..{MAX_HOPS}]", query)
    return re.sub(r"\b(toFloat|toInteger|toString)\s*\(",
                  lambda m: _FUNCTIONS[m.group(1).lower()] + "(", query, flags=re.IGNORECASE)


def _node(value: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in value.items() if not k.startswith("_") and v is not None}
    return {"label": value.get("_LABEL"), **props}


def _path(value: dict[str, Any]) -> str:
    nodes = {str(n["_ID"]): n for n in value["_NODES"]}
    current = value["_NODES"][0]
    text = f"({current['id']})"
    for rel, following in zip(value["_RELS"], value["_NODES"][1:]):
        forward = str(rel["_SRC"]) == str(current["_ID"])
        arrow = f"-[:{rel['_LABEL']}]->" if forward else f"<-[:{rel['_LABEL']}]-"
        text += f"{arrow}({following['id']})"
        current = following
    del nodes
    return text


def plain(value: Any) -> Any:
    """A ladybug value as plain data: nodes as dicts of their set properties (with ``label``),
    relationships as their type, paths as ``(a)-[:used]->(b)`` text."""
    if isinstance(value, dict):
        if "_NODES" in value:
            return _path(value)
        if "_SRC" in value:
            return value.get("_LABEL")
        if "_ID" in value:
            return _node(value)
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


DEFAULT_TIMEOUT_S = 60.0


def cypher(query: str, store: Store | str | None = None, *, dataflow: str | None = None,
           run: str | int | None = None, model: str | None = None,
           source: str | Path | None = None,
           params: dict[str, Any] | None = None,
           timeout_s: float = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Run Cypher ``query`` (Neo4j forms accepted, see :func:`translate`) on the provenance
    graph of a dataflow (default: the only or most recent one; cached and refreshed), of one
    run, of one model's trace, or of a PROV-JSON file ``source``. A query running longer than
    ``timeout_s`` is stopped with a clear error (an unbounded undirected path pattern can
    enumerate millions of paths).

    The query only reads: one that would write the graph, read or write a file (``LOAD FROM``,
    ``COPY … TO``), install an extension or ``CALL`` anything but a catalogue function raises
    :class:`~dlprov.errors.ReadOnlyViolation` before it runs (:mod:`dlprov.graph.readonly`),
    and the graph is opened read-only besides."""
    query = translate(query)
    check(query)
    with connect(store, dataflow=dataflow, run=run, model=model, source=source) as conn:
        conn.set_query_timeout(int(timeout_s * 1000))
        try:
            result = conn.execute(query, params or {})
        except RuntimeError as exc:
            hint = (" — bound the path (e.g. [* TRAIL 1..8]), give it a direction and "
                    "relationship types, or use shortestPath") if "timeout" in str(exc).lower() \
                or "interrupt" in str(exc).lower() else ""
            raise QueryError(f"Cypher failed: {exc}{hint}") from None
        if isinstance(result, list):
            result = result[-1]
        columns = list(result.get_column_names())
        rows = [tuple(plain(v) for v in row) for row in result.get_all()]
    return QueryResult(columns, rows)
