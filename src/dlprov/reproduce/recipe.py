"""A recipe to train a model again, from its provenance alone (``dlprov reproduce MODEL -o DIR``).

The folder written holds:

- ``requirements.lock``: every distribution installed at training time, ``name==version``
  (local labels such as ``+cpu`` dropped: ``torch==2.13.0``); dlprov itself last;
- ``patch.diff``: the working-tree patch recorded at run start, if the tree was dirty;
- ``inputs.sha256``: the input files the trace names (raw data no step produced), with the
  sha256 of each file as it is now, for ``sha256sum -c``; the content digests the trace
  recorded are in ``recipe.json``;
- ``recipe.json``: all of it as data, with what is ``missing``;
- ``reproduce.sh``: builds a venv from the lock, checks out the commit (applying the patch),
  verifies the inputs and runs the command line in the recorded folder with capture on
  (``DLPROV_STORE``: the store the model came from, unless set): a new execution of the same
  dataflow.

What the provenance lacks (no git, no package list, files gone) is listed line by line in
``missing``; the recipe is written anyway, with those steps left out of ``reproduce.sh``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlprov.compare.sources import load_trace
from dlprov.store.files import file_digest
from dlprov.store.store import Store, as_store

_FILE_KEYS = ("dataset_dir", "path", "file", "files")


@dataclass
class Recipe:
    """What :func:`build_recipe` found: the recipe's data and the lines of what is missing."""

    data: dict[str, Any]
    missing: list[str] = field(default_factory=list)


def build_recipe(model: str, *, store: Store | str | None = None,
                 dataflow: str | None = None) -> Recipe:
    """The recipe of ``model`` (an id, a name, a file path or a package) as data."""
    store = as_store(store)
    trace = load_trace(model, store=store, dataflow=dataflow)
    env, code = trace.get("environment") or {}, trace.get("code") or {}
    missing = []
    packages = env.get("packages") or {}
    if not packages:
        missing.append("no package list recorded: the venv gets the current dlprov only")
    elif len(packages) < 20:
        missing.append(f"only {len(packages)} packages recorded (the ML ones; the run predates "
                       f"full package capture): other dependencies resolve to new versions")
    if not env.get("python_version"):
        missing.append("no Python version recorded: the venv uses the python3 found")
    if not code.get("git_commit"):
        missing.append("no git commit recorded (the script was not in a git repository): the "
                       "code cannot be checked out; the command runs on the files as they are")
    elif code.get("git_dirty") and not code.get("git_patch"):
        missing.append("the working tree was dirty but no patch was recorded (too large, or a "
                       "store without git_patch): the checkout lacks those changes")
    if not code.get("command_line"):
        missing.append("no command line recorded: reproduce.sh cannot run the training")
    if not code.get("cwd"):
        missing.append("no working directory recorded: the command runs in the recipe folder")
    inputs = _inputs(trace)
    for item in inputs:
        if item["sha256"] is None:
            missing.append(f"input file {item['path']} is gone (or unreadable): its digest "
                           f"cannot be checked")
    data = {
        "model": trace.get("model"), "dataflow": trace["dataflow"],
        # never a password in a file: DLPROV_STORE must then be set to run reproduce.sh
        "execution": trace.get("execution"), "store": store.safe_url,
        "python_version": env.get("python_version"), "packages": packages,
        "git_repository": code.get("git_repository"), "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"), "git_patch": code.get("git_patch"),
        "cwd": code.get("cwd"), "command_line": code.get("command_line"),
        "hyperparameters": (trace.get("training") or {}).get("hyperparameters"),
        "inputs": inputs, "missing": missing,
    }
    return Recipe(data, missing)


def _inputs(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Files of the elements used that no step of the trace produced (the raw inputs)."""
    raw: list[dict[str, Any]] = []
    produced = {(t, e.get("_id")) for step in trace["steps"] for t, els in step["outputs"].items()
                for e in els}
    for step in trace["steps"]:
        for set_tag, used in step["inputs"].items():
            if not used["produced_by"]:
                raw += [e for e in used["elements"] if (set_tag, e.get("_id")) not in produced]
    for set_tag, elements in trace["data"].items():
        if not trace.get("data_sources", {}).get(set_tag):
            raw += elements
    found: dict[str, dict[str, Any]] = {}
    for element in raw:
        for key in _FILE_KEYS:
            path = element.get(key)
            if isinstance(path, str) and path and path not in found:
                found[path] = {"path": path, "digest": element.get("digest"),
                               "sha256": _sha256(path)}
    return list(found.values())


def _sha256(path: str) -> str | None:
    """The file's sha256 as capture takes it (None for a folder or a file gone)."""
    return file_digest(path)["sha256"] if os.path.isfile(path) else None


def lock_lines(packages: dict[str, str]) -> list[str]:
    """``name==version`` per distribution, local labels dropped (``2.13.0+cpu`` → ``2.13.0``),
    dlprov last (it is installed from where it is, not pinned)."""
    lines = [f"{name}=={str(version).split('+', 1)[0]}" for name, version in packages.items()
             if name.lower() != "dlprov"]
    return lines


def write_recipe(model: str, directory: str | os.PathLike, *, store: Store | str | None = None,
                 dataflow: str | None = None) -> Recipe:
    """Write the recipe of ``model`` into ``directory`` (see the module); returns it."""
    found = build_recipe(model, store=store, dataflow=dataflow)
    data = found.data
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "requirements.lock").write_text("\n".join(lock_lines(data["packages"])) + "\n")
    if data["git_patch"]:
        (out / "patch.diff").write_text(data["git_patch"])
    (out / "inputs.sha256").write_text("".join(f"{i['sha256']}  {i['path']}\n"
                                               for i in data["inputs"] if i["sha256"]))
    (out / "recipe.json").write_text(json.dumps(data, indent=2, default=str))
    script = out / "reproduce.sh"
    script.write_text(shell_script(data))
    script.chmod(0o755)
    return found


def command_argv(command_line: str) -> list[str]:
    """The recorded command line as arguments, its interpreter (``python``) dropped."""
    argv = shlex.split(command_line)
    if argv and re.fullmatch(r"python[0-9.]*(\.exe)?", Path(argv[0]).name):
        argv = argv[1:]
    return argv


def shell_script(data: dict[str, Any]) -> str:
    """The text of ``reproduce.sh`` for a recipe's data."""
    q = shlex.quote
    python = f"python{'.'.join(str(data['python_version']).split('.')[:2])}" \
        if data.get("python_version") else "python3"
    lines = ["#!/usr/bin/env bash",
             f"# Rebuild model {(data.get('model') or {}).get('name')!s} of dataflow "
             f"{data['dataflow']} from its provenance (written by dlprov reproduce).",
             "set -euo pipefail", 'HERE="$(cd "$(dirname "$0")" && pwd)"',
             f'PYTHON="${{PYTHON:-{python}}}"',
             "", "# 1. the environment: a venv holding every distribution of the training",
             '"$PYTHON" -m venv "$HERE/venv"',
             '"$HERE/venv/bin/pip" install -r "$HERE/requirements.lock"',
             '"$HERE/venv/bin/pip" install "${DLPROV_SOURCE:-dlprov}"']
    workdir = data.get("cwd") or "$HERE"
    if data.get("git_commit"):
        repo = data.get("git_repository") or "."
        lines += ["", "# 2. the code: the commit, and the working-tree patch of the run",
                  f'REPO="${{REPO:-{repo}}}"',
                  f'git -C "$REPO" checkout {q(data["git_commit"])}']
        if data.get("git_patch"):
            lines.append('git -C "$REPO" apply "$HERE/patch.diff"')
    if any(i["sha256"] for i in data["inputs"]):
        lines += ["", "# 3. the inputs, as they were", 'sha256sum -c "$HERE/inputs.sha256"']
    if data.get("command_line"):
        argv = " ".join(q(a) for a in command_argv(data["command_line"]))
        lines += ["", "# 4. the training, captured into a new execution of the same dataflow",
                  f'export DLPROV_STORE="${{DLPROV_STORE:-{data["store"]}}}"',
                  f"cd {q(workdir) if workdir != '$HERE' else workdir}",
                  f'"$HERE/venv/bin/python" {argv}']
    return "\n".join(lines) + "\n"
