"""A provenance graph as one self-contained interactive HTML page: the layered layout and the
colours of :mod:`dlprov.prov.picture` (entities blue, activities orange, agents purple) drawn
as inline SVG, with a small inline script for pan (drag), zoom (wheel), search and a panel
showing the properties of the node clicked. Nothing is fetched from the network: the page
works offline and can be attached to a report.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from prov.model import ProvDocument

from dlprov.graph.build import flatten
from dlprov.prov.picture import ACTIVITY, AGENT, COLOURS, ENTITY, Graph, graph, layers

_DX, _DY, _W, _H = 220, 64, 170, 34

_STYLE = """
body{margin:0;font:13px system-ui,sans-serif;display:flex;height:100vh}
#view{flex:1;cursor:grab;background:#fafafa}#view.drag{cursor:grabbing}
#side{width:300px;overflow:auto;border-left:1px solid #ddd;padding:8px}
#side table{border-collapse:collapse;font-size:12px}#side td{border-bottom:1px solid #eee;
padding:2px 4px;vertical-align:top;word-break:break-all}
.node{cursor:pointer}.node text{font-size:11px;pointer-events:none}
.node.hit>*:first-child{stroke:#d00;stroke-width:3}.edge{stroke:#555;fill:none}
.edge.derived{stroke:#aaa;stroke-dasharray:4 3}.elabel{font-size:9px;fill:#666}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border:1px solid #333}
"""

_SCRIPT = """
(function(){
const svg=document.getElementById('view'),props=JSON.parse(
document.getElementById('props').textContent);let vb=svg.viewBox.baseVal,drag=null;
svg.addEventListener('wheel',e=>{e.preventDefault();const k=e.deltaY>0?1.15:1/1.15,
r=svg.getBoundingClientRect(),px=vb.x+(e.clientX-r.left)/r.width*vb.width,
py=vb.y+(e.clientY-r.top)/r.height*vb.height;vb.x=px-(px-vb.x)*k;vb.y=py-(py-vb.y)*k;
vb.width*=k;vb.height*=k;},{passive:false});
svg.addEventListener('mousedown',e=>{drag=[e.clientX,e.clientY];svg.classList.add('drag');});
window.addEventListener('mouseup',()=>{drag=null;svg.classList.remove('drag');});
window.addEventListener('mousemove',e=>{if(!drag)return;const r=svg.getBoundingClientRect();
vb.x-=(e.clientX-drag[0])/r.width*vb.width;vb.y-=(e.clientY-drag[1])/r.height*vb.height;
drag=[e.clientX,e.clientY];});
const info=document.getElementById('info');
function esc(s){const d=document.createElement('div');d.textContent=String(s);return d.innerHTML;}
document.querySelectorAll('.node').forEach(n=>n.addEventListener('click',e=>{
e.stopPropagation();const id=n.dataset.id,p=props[id]||{};
let rows='<tr><td>id</td><td>'+esc(id)+'</td></tr>';
for(const k of Object.keys(p))rows+='<tr><td>'+esc(k)+'</td><td>'+esc(p[k])+'</td></tr>';
info.innerHTML='<h3>'+esc(n.dataset.label)+'</h3><table>'+rows+'</table>';}));
document.getElementById('find').addEventListener('input',e=>{const q=e.target.value.toLowerCase();
document.querySelectorAll('.node').forEach(n=>n.classList.toggle('hit',q!==''&&
(n.dataset.label.toLowerCase().includes(q)||n.dataset.id.toLowerCase().includes(q))));});
})();
"""


def _shape(kind: str, x: float, y: float, colour: str) -> str:
    w, h = _W / 2, _H / 2
    if kind == ENTITY:
        return (f'<ellipse cx="{x}" cy="{y}" rx="{w}" ry="{h}" fill="{colour}" '
                'stroke="#333"/>')
    if kind == ACTIVITY:
        return (f'<rect x="{x - w}" y="{y - h}" width="{_W}" height="{_H}" fill="{colour}" '
                'stroke="#333"/>')
    points = [(x - w, y + h), (x - w, y - h / 3), (x, y - h), (x + w, y - h / 3), (x + w, y + h)]
    return (f'<polygon points="{" ".join(f"{a},{b}" for a, b in points)}" fill="{colour}" '
            'stroke="#333"/>')


def _clip(a: tuple[float, float], b: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """The segment a-b without the parts inside the two nodes' boxes (arrowheads show)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if not dx and not dy:
        return a, b
    t = min(_W / 2 / abs(dx) if dx else 1.0, _H / 2 / abs(dy) if dy else 1.0, 0.5)
    return (a[0] + dx * t, a[1] + dy * t), (b[0] - dx * t, b[1] - dy * t)


def _svg(g: Graph) -> tuple[str, tuple[float, float]]:
    columns = layers(g)
    tallest = max((len(c) for c in columns), default=1)
    position = {node: (_W / 2 + 20 + x * _DX, _H + (y + (tallest - len(column)) / 2) * _DY)
                for x, column in enumerate(columns) for y, node in enumerate(column)}
    width = _W + 40 + max(len(columns) - 1, 0) * _DX
    height = 2 * _H + max(tallest - 1, 0) * _DY
    parts = []
    for (source, target, relation), n in sorted(g.edges.items()):
        (x0, y0), (x1, y1) = _clip(position[source], position[target])
        derived = " derived" if relation == "wasDerivedFrom" else ""
        label = html.escape(relation if n == 1 else f"{relation} ×{n}")
        parts.append(f'<line class="edge{derived}" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" '
                     f'marker-end="url(#arrow)"><title>{label}</title></line>'
                     f'<text class="elabel" x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2 - 3}" '
                     f'text-anchor="middle">{label}</text>')
    for node_id, node in g.nodes.items():
        x, y = position[node_id]
        label = node.label if len(node.label) <= 26 else node.label[:25] + "…"
        parts.append(f'<g class="node {node.kind}" data-id="{html.escape(node_id)}" '
                     f'data-label="{html.escape(node.label)}">'
                     f'{_shape(node.kind, x, y, COLOURS[node.kind])}'
                     f'<title>{html.escape(node_id)}</title>'
                     f'<text x="{x}" y="{y + 4}" text-anchor="middle">{html.escape(label)}</text>'
                     '</g>')
    return "\n".join(parts), (width, height)


def to_html(doc: ProvDocument, *, title: str = "dlprov provenance", max_nodes: int = 150,
            group: bool = True) -> str:
    """``doc`` as a self-contained HTML page (``group``/``max_nodes``: see
    :func:`dlprov.prov.picture.graph`)."""
    g = graph(doc, max_nodes, group=group)
    body, (width, height) = _svg(g)
    props = {node_id: node_props for nodes in flatten(doc).nodes.values()
             for node_id, node_props in nodes.items() if node_id in g.nodes}
    data = json.dumps(props, sort_keys=True, default=str).replace("<", "\\u003c")
    legend = "".join(f'<span style="background:{COLOURS[k]}">{k}</span>'
                     for k in (ENTITY, ACTIVITY, AGENT))
    note = " (summarised: ×n nodes stand for several)" if g.summarised else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<svg id="view" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"
markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker>
</defs>
{body}
</svg>
<div id="side"><h2>{html.escape(title)}</h2>
<p class="legend">{legend}</p><p>{len(g.nodes)} nodes, {sum(g.edges.values())} relations{note}.
Drag to pan, wheel to zoom, click a node for its properties.</p>
<input id="find" placeholder="find a node" style="width:95%"><div id="info"></div></div>
<script type="application/json" id="props">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(doc: ProvDocument, path: str | os.PathLike, **options) -> Path:
    """Write :func:`to_html` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(doc, **options), encoding="utf-8")
    return path
