"""Deployment packages: one zip archive holding a trained model and its provenance.

::

    from dlprov.prov.package import package_model, verify_package, inspect_package
    package_model("mlp-adam", "mlp-adam.zip")       # dlprov package --model mlp-adam -o ...
    verify_package("mlp-adam.zip").ok                # dlprov verify mlp-adam.zip
    inspect_package("mlp-adam.zip", "q11").rows      # dlprov inspect mlp-adam.zip q11

The archive holds ``model/<file>`` (or ``model/<folder>/...``), the model's derivation trace as
``provenance.json`` (PROV-JSON) and ``provenance.provn`` (PROV-N), its picture
``provenance.svg``, ``provenance.db`` (an SQLite extract of the store holding that trace, see
:mod:`dlprov.prov.extract`) and ``manifest.json``: the sha256 and size of every other member,
the model's id, name and the sha256 the store recorded for it. Verifying checks every digest,
that the model's bytes are those the provenance recorded, and that the document is well formed;
inspecting answers Q7–Q12 from the extract with the store's own queries.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dlprov.errors import DlprovError
from dlprov.prov import ids
from dlprov.prov.export import deserialize, serialize
from dlprov.prov.extract import model_ids, write_extract
from dlprov.prov.mapping import model_document
from dlprov.prov.picture import render
from dlprov.query.building import Context
from dlprov.query.sql import QueryResult
from dlprov.store import schema as s
from dlprov.store.store import Store

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROV_JSON = "provenance.json"
PROV_N = "provenance.provn"
PICTURE = "provenance.svg"
EXTRACT = "provenance.db"
MODEL_DIR = "model/"
#: the questions a package answers: those about one model
QUESTIONS = ("q7", "q8", "q9", "q10", "q11", "q12")


class PackageError(DlprovError, ValueError):
    """A package cannot be made or read: no model file, not a zip, no manifest, unsafe names."""


@dataclass
class Verdict:
    """What :func:`verify_package` found: ``ok``, the checks passed and the failures."""

    path: str
    ok: bool = True
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.ok = False
        self.failures.append(reason)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def __str__(self) -> str:
        if self.ok:
            return "\n".join([f"OK {self.path}: " + "; ".join(self.checks)])
        return "\n".join(f"FAILED: {reason}" for reason in self.failures)


# -- writing --------------------------------------------------------------------------------
def package_model(model: str, path: str | os.PathLike, store: Store | str | None = None,
                  dataflow: str | None = None) -> Path:
    """Write the deployment package of ``model`` (an id, a name or a file path) to ``path``.
    Raises :class:`PackageError` if the model's file is gone, and :class:`NotFound` /
    :class:`QueryError` as the questions do for an unknown or ambiguous model."""
    ctx = Context.open(store, dataflow)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="dlprov-package-") as tmp:
        extract = Path(tmp) / EXTRACT
        found, task_count = write_extract(ctx, model, extract)
        recorded = _recorded_model(ctx.store, found.model_id)
        model_path = _model_file(found.path, recorded)
        doc = model_document(found.model_id or model, ctx.store, dataflow=ctx.spec.tag)
        members: dict[str, bytes | Path] = {
            PROV_JSON: serialize(doc, "json"),
            PROV_N: serialize(doc, "provn"),
            PICTURE: render(doc, "svg"),
            EXTRACT: extract,
        }
        for name, file in _model_members(model_path):
            members[name] = file
        manifest = {
            "format_version": FORMAT_VERSION,
            "dlprov_version": _version(),
            "created_at": datetime.now(UTC).isoformat(),
            "dataflow": ctx.spec.tag,
            "model": {"model_id": found.model_id, "name": found.name,
                      "exec_tag": found.exec_tag, "train_task_id": found.train_task_id,
                      "member": MODEL_DIR + model_path.name,
                      "is_dir": model_path.is_dir(),
                      "recorded_sha256": recorded.get("sha256"),
                      "recorded_size_bytes": recorded.get("size_bytes")},
            "trace_tasks": task_count,
            "members": {name: _digest(content) for name, content in sorted(members.items())},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
            for name, content in sorted(members.items()):
                if isinstance(content, Path):
                    zf.write(content, name)
                else:
                    zf.writestr(name, content)
    return path


def _version() -> str:
    from dlprov import __version__
    return __version__


def _recorded_model(store: Store, model_id: str | None) -> dict[str, Any]:
    if model_id is None:
        return {}
    with store.read() as conn:
        row = conn.execute(select(s.trained_model.c.path, s.trained_model.c.sha256,
                                  s.trained_model.c.size_bytes)
                           .where(s.trained_model.c.model_id == model_id)).first()
    return dict(row._mapping) if row else {}


def _model_file(path: str | None, recorded: dict[str, Any]) -> Path:
    where = recorded.get("path") or path
    if not where or not Path(where).exists():
        raise PackageError(f"the model's file {where!r} is not there any more: a package needs "
                           f"the model's bytes; restore the file (or record the model again)")
    return Path(where)


def _model_members(model_path: Path) -> list[tuple[str, Path]]:
    if not model_path.is_dir():
        return [(MODEL_DIR + model_path.name, model_path)]
    return [(MODEL_DIR + model_path.name + "/" + file.relative_to(model_path).as_posix(), file)
            for file in sorted(p for p in model_path.rglob("*") if p.is_file())]


def _digest(content: bytes | Path) -> dict[str, Any]:
    data = content.read_bytes() if isinstance(content, Path) else content
    return {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


# -- reading --------------------------------------------------------------------------------
def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts \
        and ":" not in parts[0]


def _open(path: str | os.PathLike) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    """The archive and its manifest; :class:`PackageError` if it is no package or names a
    member outside the archive's folder (zip-slip)."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{os.fspath(path)} is not a readable dlprov package: {exc}") from None
    unsafe = [name for name in zf.namelist() if not _safe_name(name)]
    if unsafe:
        zf.close()
        raise PackageError(f"{os.fspath(path)} has members with unsafe names (absolute or "
                           f"with '..'): {', '.join(map(repr, unsafe[:5]))}; refused")
    try:
        manifest = json.loads(zf.read(MANIFEST))
        manifest["members"], manifest["model"]
    except (KeyError, ValueError, TypeError) as exc:
        zf.close()
        raise PackageError(f"{os.fspath(path)} is not a dlprov package: no readable "
                           f"{MANIFEST} ({exc})") from None
    return zf, manifest


def _model_sha256(zf: zipfile.ZipFile, manifest: dict[str, Any]) -> str:
    """The model's sha256 as :func:`dlprov.store.files.file_digest` computes it."""
    member = manifest["model"]["member"]
    if not manifest["model"].get("is_dir"):
        return hashlib.sha256(zf.read(member)).hexdigest()
    prefix = member.rstrip("/") + "/"
    names = sorted(n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/"))
    digest = hashlib.sha256()
    for name in names:
        if len(names) > 1:
            digest.update(name[len(prefix):].encode())
        digest.update(zf.read(name))
    return digest.hexdigest()


def verify_package(path: str | os.PathLike) -> Verdict:
    """Check a package: every member's digest matches the manifest and no member is missing or
    added; the model's bytes have the sha256 recorded in the PROV document's model entity, in
    the extract and in the store at packaging time; the PROV-JSON reads back with ``prov``.
    Raises :class:`PackageError` for a file that is no package at all."""
    zf, manifest = _open(path)
    verdict = Verdict(os.fspath(path))
    with zf:
        listed = manifest["members"]
        present = set(zf.namelist()) - {MANIFEST}
        for name in sorted(set(listed) - present):
            verdict.fail(f"member {name} is missing")
        for name in sorted(present - set(listed)):
            verdict.fail(f"member {name} is not in the manifest")
        for name in sorted(set(listed) & present):
            if _digest(zf.read(name)) != listed[name]:
                verdict.fail(f"member {name} does not match its sha256 in the manifest")
        if verdict.ok:
            verdict.checks.append(f"{len(listed)} members match the manifest")
        model = manifest["model"]
        try:
            actual = _model_sha256(zf, manifest)
        except KeyError:
            verdict.fail(f"the model {model.get('member')} is missing")
            return verdict
        if model.get("recorded_sha256") != actual:
            verdict.fail(f"the model's sha256 {actual} is not the {model.get('recorded_sha256')} "
                         f"the store recorded")
        _check_document(zf, model, actual, verdict)
        _check_extract(zf, model, actual, verdict)
    if verdict.ok:
        verdict.checks.append(f"model {model.get('name')} ({model.get('model_id')}) has sha256 "
                              f"{actual[:12]}… as its provenance records")
    return verdict


def _check_document(zf: zipfile.ZipFile, model: dict[str, Any], actual: str,
                    verdict: Verdict) -> None:
    try:
        doc = deserialize(zf.read(PROV_JSON), "json")
    except Exception as exc:  # noqa: BLE001  (prov raises many kinds on malformed input)
        verdict.fail(f"{PROV_JSON} is not a well-formed PROV-JSON document: "
                     f"{type(exc).__name__}: {exc}")
        return
    if not model.get("model_id"):
        verdict.checks.append(f"{PROV_JSON} is well formed")
        return
    wanted = ids.model_id(model["model_id"])
    entities = [r for r in doc.flattened().get_records()
                if r.is_element() and r.identifier == wanted]
    if not entities:
        verdict.fail(f"{PROV_JSON} has no entity for the model {wanted}")
        return
    recorded = {str(v) for e in entities for v in e.get_attribute("dlprov:sha256")}
    if recorded != {actual}:
        verdict.fail(f"the model's sha256 {actual} is not the one {PROV_JSON} records "
                     f"({', '.join(sorted(recorded)) or 'none'})")
    else:
        verdict.checks.append(f"{PROV_JSON} is well formed and records the model's sha256")


def _check_extract(zf: zipfile.ZipFile, model: dict[str, Any], actual: str,
                   verdict: Verdict) -> None:
    if not model.get("model_id"):
        return
    with _extracted(zf) as store:
        try:
            with store.read() as conn:
                found = dict(model_ids(conn))
        except (DlprovError, SQLAlchemyError) as exc:  # a damaged database file
            verdict.fail(f"{EXTRACT} cannot be read: {exc}")
            return
        finally:
            store.dispose()
    if found.get(model["model_id"]) != actual:
        verdict.fail(f"the model's sha256 {actual} is not the one {EXTRACT} records "
                     f"({found.get(model['model_id'])})")


class _extracted:
    """The package's extract, written to a temporary folder, as a :class:`Store`."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf

    def __enter__(self) -> Store:
        self.tmp = tempfile.mkdtemp(prefix="dlprov-inspect-")
        target = Path(self.tmp) / EXTRACT
        with self.zf.open(EXTRACT) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
        return Store(target)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def inspect_package(path: str | os.PathLike, question: str, **params: Any) -> QueryResult:
    """The answer to ``question`` (q7 … q12) from the package alone, by the store's own
    queries run on its extract. ``model`` defaults to the packaged model."""
    from dlprov.query.questions import ask

    question = str(question).lower()
    if question not in QUESTIONS:
        raise PackageError(f"a package answers {', '.join(QUESTIONS)}, not {question!r}")
    zf, manifest = _open(path)
    with zf:
        listed = manifest["members"].get(EXTRACT)
        if listed is None or EXTRACT not in zf.namelist() or _digest(zf.read(EXTRACT)) != listed:
            raise PackageError(f"{os.fspath(path)}: {EXTRACT} is missing or does not match the "
                               f"manifest; run dlprov verify")
        model = manifest["model"]
        params.setdefault("model", model.get("model_id") or model.get("name"))
        with _extracted(zf) as store:
            try:
                return ask(question, store=store, dataflow=manifest.get("dataflow"), **params)
            finally:
                store.dispose()
