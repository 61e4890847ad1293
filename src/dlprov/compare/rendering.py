"""Renderings of a comparison (:func:`dlprov.compare.diff`): a text table, JSON, one HTML page.

Each shows only what differs unless ``everything`` is set; JSON keeps every row either way
(with ``status``), filtered the same way, so a program sees what a reader sees.
"""
from __future__ import annotations

import html
import json
from typing import Any

from dlprov.compare.align import SAME, SECTIONS

FORMATS = ("table", "json", "html")


def render(found: dict[str, Any], fmt: str = "table", *, everything: bool = False) -> str:
    """``found`` as ``table``, ``json`` or ``html``; only differences unless ``everything``."""
    shown = shown_sections(found, everything)
    if fmt == "json":
        return json.dumps({**found, "sections": shown}, indent=2, default=str)
    if fmt == "html":
        return _html(found, shown)
    if fmt == "table":
        return _text(found, shown)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def shown_sections(found: dict[str, Any], everything: bool) -> dict[str, list[dict]]:
    """The rows to show per section: every row, or those that differ."""
    return {name: [r for r in found["sections"].get(name, []) if everything
                   or r["status"] != SAME] for name in SECTIONS}


def title(side: dict[str, Any]) -> str:
    """One side in a line: its model (or label) and its execution."""
    name = side.get("model_name") or side.get("label")
    return f"{name} ({side.get('exec_tag') or 'no execution'})"


def cell(value: Any) -> str:
    """A value in a cell: metric summaries as ``final … best … (n points)``."""
    if value is None:
        return "—"
    if isinstance(value, dict) and "final" in value:
        return f"final {value['final']:.6g}, best {value['best']:.6g} ({value['points']} pts)"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _summary(found: dict[str, Any]) -> str:
    if found["identical"]:
        return "identical: no difference in hyperparameters, metrics, data, preparation, " \
               "environment, code or model"
    return f"{found['differences']} difference(s)"


def _text(found: dict[str, Any], shown: dict[str, list[dict]]) -> str:
    from dlprov.cli.output import table
    lines = [f"A: {title(found['a'])}", f"B: {title(found['b'])}", _summary(found)]
    for name in SECTIONS:
        rows = shown[name]
        if not rows:
            continue
        lines += ["", f"{name.upper()}"]
        lines.append(table(["item", "A", "B", "status", "detail"],
                           [[r["name"], cell(r["a"]), cell(r["b"]), r["status"],
                             r["detail"] or ""] for r in rows], None))
        if name == "data":
            lines += [f"first divergence: {d['text']}" for d in found["divergence"]]
    return "\n".join(lines)


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.changed{background:#fff4d6}
.only{background:#fde2e2}.same{color:#777}code{font-size:12px}"""


def _html(found: dict[str, Any], shown: dict[str, list[dict]]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dlprov diff: "
             f"{e(title(found['a']))} vs {e(title(found['b']))}</title><style>{_STYLE}</style>"
             f"</head><body><h1>dlprov diff</h1><p>A: <b>{e(title(found['a']))}</b><br>"
             f"B: <b>{e(title(found['b']))}</b></p><p>{e(_summary(found))}</p>"]
    for name in SECTIONS:
        rows = shown[name]
        if not rows:
            continue
        parts.append(f"<h2>{e(name)}</h2><table><tr><th>item</th><th>A</th><th>B</th>"
                     f"<th>status</th><th>detail</th></tr>")
        for r in rows:
            kind = "only" if r["status"].startswith("only") else r["status"]
            parts.append(f"<tr class='{kind}'><td>{e(r['name'])}</td><td><code>"
                         f"{e(cell(r['a']))}</code></td><td><code>{e(cell(r['b']))}</code></td>"
                         f"<td>{e(r['status'])}</td><td>{e(r['detail'] or '')}</td></tr>")
        parts.append("</table>")
        if name == "data" and found["divergence"]:
            parts.append("<p>First divergence:</p><ul>" + "".join(
                f"<li>{e(d['text'])}</li>" for d in found["divergence"]) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)
