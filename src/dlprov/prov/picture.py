"""Pictures of a PROV document: entities blue ellipses, activities orange boxes, agents purple
(the original DLProv's colours), edges labelled by relation and pointing from effect to cause,
causes on the left.

With Graphviz's ``dot`` on the PATH the picture is laid out by ``dot``; without it (the usual
case: it is not a Python package) by matplotlib, in layers by derivation depth. ``prov.dot``
is not used: it needs pydot and cannot summarise. A graph of more than ``max_nodes`` nodes is
summarised instead of drawn unreadably: the elements of one set made (or used) by one task
become one node (``otrain ×100``), then, if still too many, the tasks of one transformation in
one execution.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prov.constants import PROV_N_MAP
from prov.model import ProvActivity, ProvAgent, ProvDocument, ProvEntity

ENTITY, ACTIVITY, AGENT = "entity", "activity", "agent"
COLOURS = {ENTITY: "#9FB1FC", ACTIVITY: "#FED37F", AGENT: "#C9A7E8"}
_DOT_SHAPES = {ENTITY: "ellipse", ACTIVITY: "box", AGENT: "house"}
_MPL_BOXES = {ENTITY: "ellipse,pad=0.3", ACTIVITY: "square,pad=0.4", AGENT: "round4,pad=0.4"}
_KINDS = ((ProvEntity, ENTITY), (ProvActivity, ACTIVITY), (ProvAgent, AGENT))
# The kind of a node a relation names but the document does not declare, by its role.
_ROLE_KINDS = {"activity": ACTIVITY, "informed": ACTIVITY, "informant": ACTIVITY,
               "starter": ACTIVITY, "ender": ACTIVITY, "agent": AGENT, "delegate": AGENT,
               "responsible": AGENT}
PICTURE_FORMATS = ("svg", "png", "pdf")


@dataclass
class Node:
    kind: str
    label: str
    tag: str | None = None        # ds_tag of an element, dt_tag of a task
    count: int = 1                # how many records a summary node stands for


@dataclass
class Graph:
    """Nodes by id and edges ``(source, target, relation) -> how many``."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: Counter = field(default_factory=Counter)
    summarised: bool = False

    def out_edges(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for source, target, _ in self.edges:
            found[source].add(target)
        return found


def graph(doc: ProvDocument, max_nodes: int = 150, *, group: bool = False) -> Graph:
    """The graph drawn for ``doc``: every entity, activity and agent (of every bundle) and the
    first two arguments of every relation; summarised beyond ``max_nodes`` nodes, and with
    ``group`` the elements of one set made by one task (the epochs of ``otrain``) always."""
    found = Graph()
    attributes: dict[str, dict[str, object]] = defaultdict(dict)
    relations = []
    for record in doc.flattened().get_records():
        if record.is_element():
            key = str(record.identifier)
            kind = next(k for cls, k in _KINDS if isinstance(record, cls))
            found.nodes.setdefault(key, Node(kind, ""))
            attributes[key].update({str(n.localpart): v for n, v in record.attributes})
        elif record.is_relation():
            relations.append(record)
    for record in relations:
        (role_a, a), (role_b, b) = record.formal_attributes[:2]
        if a is None or b is None:
            continue
        for role, node in ((role_a, a), (role_b, b)):
            found.nodes.setdefault(str(node), Node(_ROLE_KINDS.get(role.localpart, ENTITY), ""))
        found.edges[(str(a), str(b), PROV_N_MAP[record.get_type()])] += 1
    for key, node in found.nodes.items():
        node.label, node.tag = _label(key, node.kind, attributes[key])
    if group:
        found = _summarise(found, _by_set_and_task(found))
    for summary in (_by_set_and_task, _by_transformation):
        if len(found.nodes) <= max_nodes:
            break
        found = _summarise(found, summary(found))
        if summary is _by_transformation:  # the tasks merged: merge their elements again
            found = _summarise(found, _by_set_and_task(found))
    return found


def _label(key: str, kind: str, attributes: dict[str, object]) -> tuple[str, str | None]:
    """A short label: ``otrain 12`` (set and row), ``train 3`` (transformation and task),
    the exec tag, dataflow tag, model name, user or host; else the id's local part."""
    if "ds_tag" in attributes:
        tag = str(attributes["ds_tag"])
        return (f"{tag} {attributes['id']}" if "id" in attributes else tag), tag
    if "dt_tag" in attributes:
        tag = str(attributes["dt_tag"])
        return (f"{tag} {attributes['task_id']}" if "task_id" in attributes else tag), tag
    for name in ("exec_tag", "df_tag", "name", "username", "email", "hostname"):
        if name in attributes:
            return str(attributes[name]), None
    return key.split(":", 1)[-1], None


# -- summaries -------------------------------------------------------------------------------
def _by_set_and_task(g: Graph) -> Callable[[str, Node], tuple | None]:
    """Elements of one set made by one task (or, if none made them, used by one task)."""
    makers: dict[str, str] = {}
    users: dict[str, str] = {}
    for source, target, relation in sorted(g.edges):
        if relation == "wasGeneratedBy":
            makers.setdefault(source, target)
        elif relation == "used":
            users.setdefault(target, source)

    def key(node_id: str, node: Node) -> tuple | None:
        if node.kind != ENTITY or node.tag is None:
            return None
        if node_id in makers:
            return ENTITY, node.tag, "made", makers[node_id]
        return ENTITY, node.tag, "used", users.get(node_id)
    return key


def _by_transformation(g: Graph) -> Callable[[str, Node], tuple | None]:
    """Tasks of one transformation informed by one execution."""
    executions = {source: target for source, target, relation in sorted(g.edges)
                  if relation == "wasInformedBy" and g.nodes[target].tag is None}

    def key(node_id: str, node: Node) -> tuple | None:
        if node.kind != ACTIVITY or node.tag is None:
            return None
        return ACTIVITY, node.tag, executions.get(node_id)
    return key


def _summarise(g: Graph, key: Callable[[str, Node], tuple | None]) -> Graph:
    """Merge the nodes sharing a key (of groups larger than one) into one node each."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for node_id, node in g.nodes.items():
        k = key(node_id, node)
        if k is not None:
            groups[k].append(node_id)
    merged: dict[str, str] = {}
    result = Graph(summarised=g.summarised)
    for k, members in groups.items():
        if len(members) < 2:
            continue
        first = g.nodes[members[0]]
        group_id = "group:" + "|".join(str(part) for part in k)
        count = sum(g.nodes[m].count for m in members)
        result.nodes[group_id] = Node(first.kind, f"{first.tag} ×{count}", first.tag, count)
        merged.update({m: group_id for m in members})
        result.summarised = True
    for node_id, node in g.nodes.items():
        if node_id not in merged:
            result.nodes[node_id] = node
    for (source, target, relation), n in g.edges.items():
        source, target = merged.get(source, source), merged.get(target, target)
        if source != target:
            result.edges[(source, target, relation)] += n
    return result


# -- layout ----------------------------------------------------------------------------------
def layers(g: Graph) -> list[list[str]]:
    """Nodes by depth: a node one layer right of the deepest cause it points to; within a
    layer, ordered by where their causes are (fewer crossings)."""
    out = g.out_edges()
    depth: dict[str, int] = {}
    for start in sorted(g.nodes):
        if start in depth:
            continue
        # iterative depth-first walk; a node on the current path counts as depth 0 (a cycle)
        stack, on_path = [(start, iter(sorted(out.get(start, ()))))], {start}
        while stack:
            node, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                on_path.discard(node)
                depth[node] = 1 + max((depth.get(t, 0) for t in out.get(node, ())
                                       if t not in on_path), default=-1)
            elif target not in depth and target not in on_path:
                on_path.add(target)
                stack.append((target, iter(sorted(out.get(target, ())))))
    # A first cause (an input, an agent, the plan) sits just left of its first effect.
    effects: dict[str, list[int]] = defaultdict(list)
    for source, targets in out.items():
        for target in targets:
            effects[target].append(depth[source])
    for node, at in effects.items():
        if not out.get(node):
            depth[node] = max(min(at) - 1, 0)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node, d in depth.items():
        result[d].append(node)
    result = [layer for layer in result if layer]
    position: dict[str, float] = {}
    for layer in result:
        def weight(node: str) -> tuple:
            placed = [position[t] for t in out.get(node, ()) if t in position]
            centre = sum(placed) / len(placed) if placed else -1.0
            return centre, g.nodes[node].kind, g.nodes[node].label, node
        layer.sort(key=weight)
        for i, node in enumerate(layer):
            position[node] = i / max(len(layer) - 1, 1)
    return result


# -- rendering -------------------------------------------------------------------------------
def render(doc: ProvDocument, format: str = "svg", *, max_nodes: int = 150,
           group: bool = True) -> bytes:
    """``doc`` drawn as an SVG, PNG or PDF file's bytes. ``group`` (the default): the elements
    of one set made by one task are one node (``otrainbatch ×22``), as :func:`graph` says."""
    format = format.lower().lstrip(".")
    if format not in PICTURE_FORMATS:
        raise ValueError(f"unknown picture format {format!r}: use one of "
                         f"{', '.join(PICTURE_FORMATS)}")
    drawn = graph(doc, max_nodes, group=group)
    if shutil.which("dot"):
        return render_dot(drawn, format)
    return render_matplotlib(drawn, format)


def write_picture(doc: ProvDocument, path: str | os.PathLike, format: str | None = None, *,
                  max_nodes: int = 150, group: bool = True) -> Path:
    """Draw ``doc`` into ``path``; the format defaults to its extension (svg, png, pdf)."""
    path = Path(path)
    data = render(doc, format or path.suffix, max_nodes=max_nodes, group=group)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def to_dot(g: Graph) -> str:
    """The graph in Graphviz's DOT language, causes on the left."""
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    names = {node_id: f"n{i}" for i, node_id in enumerate(g.nodes)}
    lines = ["digraph prov {", "  rankdir=RL;", '  node [style=filled, fontsize=10];',
             "  edge [fontsize=8, color=gray30];"]
    for node_id, node in g.nodes.items():
        lines.append(f"  {names[node_id]} [label={quote(node.label)}, "
                     f"shape={_DOT_SHAPES[node.kind]}, fillcolor={quote(COLOURS[node.kind])}, "
                     f"tooltip={quote(node_id)}];")
    for (source, target, relation), n in sorted(g.edges.items()):
        label = relation if n == 1 else f"{relation} ×{n}"
        lines.append(f"  {names[source]} -> {names[target]} [label={quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_dot(g: Graph, format: str) -> bytes:
    """Lay out and draw with Graphviz's ``dot`` (which must be on the PATH)."""
    done = subprocess.run([shutil.which("dot") or "dot", f"-T{format}"], input=to_dot(g).encode(),
                          capture_output=True, timeout=300, check=False)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"dot failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return done.stdout


def render_matplotlib(g: Graph, format: str) -> bytes:
    """Draw in layers with matplotlib (no display, no pyplot state)."""
    import matplotlib
    from matplotlib.figure import Figure

    columns = layers(g)
    tallest = max((len(c) for c in columns), default=1)
    width = min(max(6.0, 2.2 * len(columns)), 60.0)
    height = min(max(4.0, 0.8 * tallest, width / 3), 60.0)
    position = {node: (x, (len(column) - 1) / 2 - y)  # each layer centred, top to bottom
                for x, column in enumerate(columns) for y, node in enumerate(column)}
    with matplotlib.rc_context({"svg.hashsalt": "dlprov", "svg.fonttype": "none"}):
        figure = Figure(figsize=(width, height))
        ax = figure.add_axes((0.01, 0.01, 0.98, 0.98))
        ax.set_axis_off()
        ax.set_xlim(-0.7, max(len(columns) - 1, 0) + 0.7)
        ax.set_ylim(-(tallest - 1) / 2 - 0.7, (tallest - 1) / 2 + 0.7)
        boxes = {}
        for node_id, (x, y) in position.items():
            node = g.nodes[node_id]
            label = "\n".join(textwrap.wrap(node.label, 24)[:3]) or " "
            text = ax.text(x, y, label, ha="center", va="center", fontsize=7, zorder=3,
                           bbox={"boxstyle": _MPL_BOXES[node.kind],
                                 "facecolor": COLOURS[node.kind], "edgecolor": "#333333",
                                 "linewidth": 0.8 if node.count == 1 else 1.6})
            boxes[node_id] = text
        for (source, target, relation), n in sorted(g.edges.items()):
            (x0, y0), (x1, y1) = position[source], position[target]
            derived = relation == "wasDerivedFrom"  # the many implied ones, drawn lighter
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1,
                        arrowprops={"arrowstyle": "-|>", "linewidth": 0.6,
                                    "color": "#999999" if derived else "#444444",
                                    "linestyle": "--" if derived else "-",
                                    "connectionstyle": "arc3,rad=0.08",
                                    "patchA": boxes[source].get_bbox_patch(),
                                    "patchB": boxes[target].get_bbox_patch()})
            label = relation if n == 1 else f"{relation} ×{n}"
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=5, color="#444444",
                    ha="center", va="center", zorder=2)
        buffer = io.BytesIO()
        metadata = {"Date": None} if format == "svg" else (
            {"CreationDate": None} if format == "pdf" else None)
        figure.savefig(buffer, format=format, dpi=100, metadata=metadata)
    return buffer.getvalue()
