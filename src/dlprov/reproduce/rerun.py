"""Training a model again here and checking the result (``dlprov reproduce MODEL --run``).

The recorded command line runs in the recorded working folder with this Python (the current
environment, not a new venv), capture on into the same store, so it makes a new execution of
the same dataflow. Its model (the one of the same name, else the first) is then compared with
the old one by :func:`dlprov.compare.diff`: the verdict says which of hyperparameters, data,
preparation, environment and code matched, and whether the metrics agree within ``rtol``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from dlprov.compare.align import SAME, compare_traces
from dlprov.compare.sources import load_trace
from dlprov.reproduce.recipe import build_recipe, command_argv
from dlprov.store.store import Store, as_store

#: the sections whose match decides the verdict (the environment is reported, not required)
REQUIRED = ("hyperparameters", "data", "preparation", "metrics")


@dataclass
class Verdict:
    """What :func:`rerun` found: ``ok``, the lines to print, the comparison."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    new_model: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def rerun(model: str, *, store: Store | str | None = None, dataflow: str | None = None,
          rtol: float = 1e-5, timeout: float | None = None) -> Verdict:
    """Run ``model``'s training again here and compare the new model with it (see the
    module). Missing information is a line of the verdict, never an exception."""
    store = as_store(store)
    recipe = build_recipe(model, store=store, dataflow=dataflow)
    data = recipe.data
    lines = [f"note: {line}" for line in recipe.missing]
    if not data.get("command_line"):
        return Verdict(False, lines + ["cannot run: no command line recorded"])
    cwd = data.get("cwd") or os.getcwd()
    if not os.path.isdir(cwd):
        return Verdict(False, lines + [f"cannot run: the working folder {cwd} is gone"])
    gone = [i["path"] for i in data["inputs"] if i["sha256"] is None]
    if gone:
        return Verdict(False, lines + [f"cannot run: input file {p} is gone" for p in gone])
    argv = [sys.executable, *command_argv(data["command_line"])]
    before = _executions(store, data["dataflow"])
    env = {**os.environ, "DLPROV_STORE": store.url}
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return Verdict(False, lines + [f"cannot run {' '.join(argv)}: {exc}"])
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return Verdict(False, lines + [f"the command failed (exit {done.returncode}): "
                                       f"{' '.join(argv)}", *tail])
    old = data.get("model") or {}
    new_id = _new_model(store, data["dataflow"], before, old.get("name"))
    if new_id is None:
        return Verdict(False, lines + ["the command ran but recorded no new model in "
                                       f"{store.safe_url}"])
    # by id: after the rerun, a name names two models
    found = compare_traces(load_trace(old.get("model_id") or model, store=store,
                                      dataflow=dataflow),
                           load_trace(new_id, store=store), rtol=rtol, atol=1e-9)
    ok = True
    for name in (*REQUIRED, "environment", "code", "model"):
        differing = [r for r in found["sections"][name] if r["status"] != SAME]
        required = name in REQUIRED
        ok = ok and not (required and differing)
        if not differing:
            lines.append(f"{name}: match" + (f" (within rtol {rtol:g})"
                                              if name == "metrics" else ""))
        else:
            listed = ", ".join(r["name"] for r in differing[:8])
            lines.append(f"{name}: {len(differing)} differ{'s' if len(differing) == 1 else ''}"
                         f" ({listed}{', …' if len(differing) > 8 else ''})"
                         + ("" if required else "; reported, not required"))
    lines.append(("reproduced: " if ok else "NOT reproduced: ")
                 + f"new model {new_id} of {found['b']['exec_tag']}")
    return Verdict(ok, lines, found, new_id)


def _executions(store: Store, dataflow: str) -> set[str]:
    """The exec tags of ``dataflow`` (on every kind of store, a server too)."""
    from dlprov.query.runs import runs_table
    return {row["exec_tag"] for row in runs_table(store, dataflow).rows}


def _new_model(store: Store, dataflow: str, before: set[str], name: str | None) -> str | None:
    """The model of the executions started since ``before``: the one named ``name``, else the
    first found."""
    found = []
    for exec_tag in sorted(_executions(store, dataflow) - before):
        model = load_trace(exec_tag, store=store, runs=True).get("model") or {}
        if model.get("model_id"):
            found.append((model.get("name") != name, model["model_id"]))
    return min(found)[1] if found else None
