"""Aligning two traces (see :mod:`dlprov.compare.trace`) and saying how they differ.

:func:`compare_traces` returns plain data: ``{"a": ..., "b": ..., "identical": bool,
"differences": int, "sections": {name: [row, ...]}, "divergence": [...]}``. A row is
``{"name", "a", "b", "status", "detail"}`` with status ``same``, ``changed``, ``only in A`` or
``only in B``; sections keep every row (a renderer shows the ``same`` ones only when asked).
Steps are aligned by transformation (the n-th task of a transformation with the n-th), data by
set; datasets compare by content (digest, shape, record count), never by where they were saved.
"""
from __future__ import annotations

import math
from typing import Any

from dlprov.query.runs import lower_is_better

SECTIONS = ("hyperparameters", "metrics", "data", "preparation", "environment", "code", "model")
SAME, CHANGED, ONLY_A, ONLY_B = "same", "changed", "only in A", "only in B"
#: counters and clocks: never a difference between two trainings worth reporting
TIMING = frozenset({"elapsed_time", "time", "timestamp", "duration", "step_time",
                    "epoch_time"})
_MACHINE = ("hostname", "os", "os_version", "platform", "architecture", "processor",
            "cpu_count", "memory_bytes", "gpus", "in_container", "python_version",
            "python_implementation")
_MODEL = ("sha256", "size_bytes", "framework", "parameter_count", "layer_count")
_CODE = ("command_line", "cwd", "git_repository", "git_commit", "git_dirty", "git_patch")
# Attributes saying where a dataset was written, not what it holds.
_WHERE = ("dataset_dir", "path", "name", "file", "files")


def compare_traces(a: dict[str, Any], b: dict[str, Any], *, rtol: float = 1e-6,
                   atol: float = 1e-12) -> dict[str, Any]:
    """How trace ``b`` differs from trace ``a``; metrics agree within ``rtol``/``atol``."""
    sections = {
        "hyperparameters": _values(_hyper(a), _hyper(b)),
        "metrics": _metrics(a["metrics"], b["metrics"], rtol, atol),
        "data": _data(a["data"], b["data"]),
        "preparation": _preparation(a["steps"], b["steps"]),
        "environment": _environment(a["environment"], b["environment"]),
        "code": _values({k: _patch(a["code"], k) for k in _CODE},
                        {k: _patch(b["code"], k) for k in _CODE}),
        "model": _values(*({k: (t["model"] or {}).get(k) for k in _MODEL} for t in (a, b))),
    }
    divergence = [_diverge(a, b, row["name"]) for row in sections["data"]
                  if row["status"] != SAME]
    differences = sum(row["status"] != SAME for rows in sections.values() for row in rows)
    return {"a": _header(a), "b": _header(b), "identical": differences == 0,
            "differences": differences, "rtol": rtol, "sections": sections,
            "divergence": divergence}


def _header(trace: dict[str, Any]) -> dict[str, Any]:
    model, execution = trace.get("model") or {}, trace.get("execution") or {}
    return {"label": trace["label"], "dataflow": trace["dataflow"],
            "exec_tag": execution.get("exec_tag"), "status": execution.get("status"),
            "model_id": model.get("model_id"), "model_name": model.get("name"),
            "model_path": model.get("path")}


def _hyper(trace: dict[str, Any]) -> dict[str, Any]:
    return dict((trace.get("training") or {}).get("hyperparameters") or {})


def row(name: str, a: Any, b: Any, status: str | None = None,
        detail: str | None = None) -> dict[str, Any]:
    """One compared item; ``status`` from the values unless given."""
    if status is None:
        status = SAME if _equal(a, b) else CHANGED
    return {"name": name, "a": a, "b": b, "status": status, "detail": detail}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


_MISSING = object()


def _values(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys([*a, *b]):
        va, vb = a.get(name, _MISSING), b.get(name, _MISSING)
        if va is _MISSING:
            rows.append(row(name, None, vb, ONLY_B))
        elif vb is _MISSING:
            rows.append(row(name, va, None, ONLY_A))
        else:
            rows.append(row(name, va, vb))
    return rows


def _patch(code: dict[str, Any], key: str) -> Any:
    value = code.get(key)
    if key == "git_patch" and value:  # a digest and a size in the table; the text in JSON
        import hashlib
        return f"sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]} " \
               f"({len(value.splitlines())} lines)"
    return value


# -- metrics ----------------------------------------------------------------------------------
def _metrics(a: dict, b: dict, rtol: float, atol: float) -> list[dict[str, Any]]:
    rows = []
    for set_tag in dict.fromkeys([*a, *b]):
        ma, mb = a.get(set_tag, {}), b.get(set_tag, {})
        for name in dict.fromkeys([*ma, *mb]):
            if name in TIMING:
                continue
            label = f"{set_tag}.{name}"
            sa, sb = ma.get(name), mb.get(name)
            if sa is None or sb is None:
                rows.append(row(label, _summary(sa, name), _summary(sb, name),
                                ONLY_B if sa is None else ONLY_A))
                continue
            rows.append(_metric_row(label, name, sa, sb, rtol, atol))
    return rows


def _summary(series: list[float] | None, name: str) -> dict[str, Any] | None:
    if not series:
        return None
    best = min(series) if lower_is_better(name) else max(series)
    return {"final": series[-1], "best": best, "points": len(series)}


def close(x: float, y: float, rtol: float, atol: float) -> bool:
    """Whether two numbers agree within the tolerances (as :func:`math.isclose`)."""
    return math.isclose(x, y, rel_tol=rtol, abs_tol=atol)


def _metric_row(label: str, name: str, sa: list[float], sb: list[float], rtol: float,
                atol: float) -> dict[str, Any]:
    fa, fb = _summary(sa, name), _summary(sb, name)
    notes = []
    same = len(sa) == len(sb)
    if not close(fa["final"], fb["final"], rtol, atol):
        same = False
        notes.append(f"final {_signed(fb['final'] - fa['final'])}")
    if not close(fa["best"], fb["best"], rtol, atol):
        same = False
        notes.append(f"best {_signed(fb['best'] - fa['best'])}")
    parted = [i for i, (x, y) in enumerate(zip(sa, sb)) if not close(x, y, rtol, atol)]
    if parted:
        same = False
        widest = max(abs(sa[i] - sb[i]) for i in parted)
        notes.append(f"curves part at point {parted[0] + 1} of {min(len(sa), len(sb))} "
                     f"(max |Δ| {widest:.4g})")
    if len(sa) != len(sb):
        notes.append(f"{len(sa)} vs {len(sb)} points")
    return row(label, fa, fb, SAME if same else CHANGED, "; ".join(notes) or None)


def _signed(value: float) -> str:
    return f"{value:+.4g}"


# -- data ---------------------------------------------------------------------------------
def signature(element: dict[str, Any]) -> dict[str, Any]:
    """What a dataset element holds, without where it was saved: digest, shape, counts."""
    return {k: v for k, v in element.items()
            if not k.startswith("_") and k not in _WHERE and not k.endswith(("_dir", "_path"))}


def _content(elements: list[dict] | None) -> list[dict[str, Any]] | None:
    if elements is None:
        return None
    return sorted((signature(e) for e in elements), key=repr)


def describe_data(elements: list[dict] | None) -> str | None:
    """A dataset in a few words: per element its shape, record count, digest and file."""
    if elements is None:
        return None
    parts = []
    for element in elements:
        bits = []
        if element.get("shape") is not None:
            bits.append("×".join(str(n) for n in element["shape"])
                        if isinstance(element["shape"], list) else str(element["shape"]))
        if element.get("n_records") is not None:
            bits.append(f"{int(element['n_records'])} records")
        if element.get("digest"):
            bits.append(f"sha256 {str(element['digest'])[:12]}")
        where = element.get("dataset_dir") or element.get("path")
        if where:
            bits.append(str(where).replace("\\", "/").rsplit("/", 1)[-1])
        parts.append(" ".join(bits) or "element")
    return "; ".join(parts)


def _data(a: dict[str, list], b: dict[str, list]) -> list[dict[str, Any]]:
    rows = []
    for set_tag in dict.fromkeys([*a, *b]):
        ea, eb = a.get(set_tag), b.get(set_tag)
        status = ONLY_B if ea is None else ONLY_A if eb is None else (
            SAME if _content(ea) == _content(eb) else CHANGED)
        rows.append(row(set_tag, describe_data(ea), describe_data(eb), status))
    return rows


# -- preparation ------------------------------------------------------------------------------
def aligned_steps(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Steps keyed by transformation, ``name#2`` for its second task, and so on."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        key, n = step["transformation"], 1
        while key in found:
            n += 1
            key = f"{step['transformation']}#{n}"
        found[key] = step
    return found


def _outputs(step: dict[str, Any]) -> dict[str, Any]:
    return {t: _content(els) for t, els in step["outputs"].items()}


def _preparation(a: list[dict], b: list[dict]) -> list[dict[str, Any]]:
    sa, sb = aligned_steps(a), aligned_steps(b)
    rows = []
    for key in dict.fromkeys([*sa, *sb]):
        pa, pb = sa.get(key), sb.get(key)
        if pa is None or pb is None:
            step = pa or pb
            rows.append(row(key, _params_text(pa), _params_text(pb),
                            ONLY_B if pa is None else ONLY_A,
                            f"produced {', '.join(step['outputs']) or 'nothing'}"))
            continue
        notes = [f"{r['name']}: {r['a']!r} → {r['b']!r}" for r in
                 _values(pa["parameters"], pb["parameters"]) if r["status"] != SAME]
        if _outputs(pa) != _outputs(pb):
            notes.append("output differs")
        rows.append(row(key, _params_text(pa), _params_text(pb),
                        CHANGED if notes else SAME, "; ".join(notes) or None))
    return rows


def _params_text(step: dict[str, Any] | None) -> str | None:
    if step is None:
        return None
    return ", ".join(f"{k}={v}" for k, v in step["parameters"].items()) or "(no parameters)"


# -- environment ------------------------------------------------------------------------------
def _environment(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    rows = _values({k: a.get(k) for k in _MACHINE}, {k: b.get(k) for k in _MACHINE})
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(pa) | set(pb), key=str.lower):
        if name not in pa:
            rows.append(row(f"package {name}", None, pb[name], ONLY_B, "added"))
        elif name not in pb:
            rows.append(row(f"package {name}", pa[name], None, ONLY_A, "removed"))
        else:
            rows.append(row(f"package {name}", pa[name], pb[name]))
    return rows


# -- the first point of divergence ------------------------------------------------------------
def _diverge(a: dict[str, Any], b: dict[str, Any], set_tag: str) -> dict[str, Any]:
    """Walk upstream from the training's input ``set_tag`` to the first step whose parameters
    or inputs differ (or that only one trace has)."""
    steps = {"A": aligned_steps(a["steps"]), "B": aligned_steps(b["steps"])}
    sources = {"A": a.get("data_sources", {}).get(set_tag),
               "B": b.get("data_sources", {}).get(set_tag)}
    path = [{"set": set_tag, "what": _set_status(set_tag, a["data"], b["data"])}]
    producers = [p for side in ("A", "B") for p in (sources[side] or [])]
    if not producers:
        path.append({"step": None, "what": "raw input (no step produced it)"})
        return _ended(set_tag, path)
    seen: set[str] = set()
    step = producers[0]
    while step not in seen:
        seen.add(step)
        pa, pb = steps["A"].get(step), steps["B"].get(step)
        if pa is None or pb is None:
            path.append({"step": step, "what": ONLY_B if pa is None else ONLY_A})
            return _ended(set_tag, path)
        changed = [r["name"] for r in _values(pa["parameters"], pb["parameters"])
                   if r["status"] != SAME]
        if changed:
            path.append({"step": step, "what": f"parameters differ ({', '.join(changed)})"})
            return _ended(set_tag, path)
        ia, ib = pa["inputs"], pb["inputs"]
        one_sided = [(t, "A" if t in ia else "B") for t in dict.fromkeys([*ia, *ib])
                     if (t in ia) != (t in ib)]
        for t, side in one_sided:  # an input made by a step the other trace lacks
            other = "B" if side == "A" else "A"
            for producer in (ia if side == "A" else ib)[t]["produced_by"]:
                if producer not in steps[other]:
                    path.append({"step": step, "what": f"same parameters, uses {t} only in "
                                                        f"{side}"})
                    path.append({"step": producer, "what": f"only in {side}"})
                    return _ended(set_tag, path)
        if one_sided:
            t, side = one_sided[0]
            path.append({"step": step, "what": f"same parameters, uses {t} only in {side}"})
            return _ended(set_tag, path)
        differing = [t for t in ia if _content(ia[t]["elements"]) != _content(ib[t]["elements"])]
        if not differing:
            path.append({"step": step, "what": "same parameters and inputs, different output "
                                               "(code or randomness)"})
            return _ended(set_tag, path)
        t = differing[0]
        upstream = ia[t]["produced_by"] or ib[t]["produced_by"]
        path.append({"step": step, "what": f"same parameters, input {t} differs"})
        if not upstream:
            path.append({"set": t, "what": "raw input differs (no step produced it)"})
            return _ended(set_tag, path)
        step = upstream[0]
    return _ended(set_tag, path)


def _set_status(set_tag: str, a: dict, b: dict) -> str:
    if set_tag not in a:
        return "used only in B"
    if set_tag not in b:
        return "used only in A"
    return "different"


def _ended(set_tag: str, path: list[dict[str, Any]]) -> dict[str, Any]:
    text = " ← ".join(f"{p['set']} {p['what']}" if "set" in p else f"{p['step']} {p['what']}"
                      for p in path if "set" in p or p.get("step"))
    last = path[-1]
    return {"set": set_tag, "path": path, "first": last.get("step") or last.get("set"),
            "text": f"train used {text}"}
