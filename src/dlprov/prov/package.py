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
the model's id, name and the sha256 the store recorded for it; signed (``sign=``, an Ed25519
key), also ``manifest.sig``. Verifying checks every digest, that the model's bytes are those the
provenance recorded, that the document is well formed, and, if asked, the signature
(``key=``) and that the store the package came from holds the same trace (``store=``);
inspecting answers Q7–Q12 from the extract with the store's own queries.

A package is read as untrusted input (see :mod:`dlprov.prov.archive`): members are checked
against size and compression limits before any is decompressed, digests are computed in chunks,
the extract is refused if it holds views or triggers and is queried under a time limit, and
every temporary file lives in a private folder removed on every way out.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from dlprov.errors import DlprovError, ProvImportError
from dlprov.localfiles import private_tempdir
from dlprov.prov import ids, signing
from dlprov.prov.archive import (
    DEFAULT_LIMITS,
    MODEL_DIR,
    Limits,
    PackageError,
    load_json,
    open_archive,
    read_small,
    safe_name,
    stream,
)
from dlprov.prov.constraints.report import Report
from dlprov.prov.export import serialize
from dlprov.prov.extract import (
    ExtractRefused,
    compare_extracts,
    open_untrusted,
    time_limit,
    write_extract,
)
from dlprov.prov.mapping import model_document
from dlprov.prov.picture import render
from dlprov.query.building import Context
from dlprov.query.models import model_context
from dlprov.query.sql import QueryResult
from dlprov.store import schema as s
from dlprov.store.files import file_digest
from dlprov.store.store import Store

__all__ = ["package_model", "verify_package", "inspect_package", "generate_key", "Verdict",
           "Limits", "DEFAULT_LIMITS", "PackageError", "QUESTIONS"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PROV_JSON = "provenance.json"
PROV_N = "provenance.provn"
PICTURE = "provenance.svg"
EXTRACT = "provenance.db"
#: the questions a package answers: those about one model
QUESTIONS = ("q7", "q8", "q9", "q10", "q11", "q12")
#: members that the manifest does not list: itself and its signature
_UNLISTED = frozenset({MANIFEST, SIGNATURE})

generate_key = signing.generate_key


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
                  dataflow: str | None = None, *,
                  sign: str | os.PathLike | Ed25519PrivateKey | None = None) -> Path:
    """Write the deployment package of ``model`` (an id, a name or a file path) to ``path``;
    with ``sign`` (an Ed25519 private key or its PEM file), sign its manifest.
    Raises :class:`PackageError` if the model's file is gone or the key unreadable, and
    :class:`NotFound` / :class:`QueryError` as the questions do for an unknown or ambiguous
    model. Nothing is left at ``path`` if it fails."""
    key = sign if isinstance(sign, Ed25519PrivateKey) or sign is None else \
        signing.load_private_key(sign)
    ctx = model_context(store, model, dataflow)
    path = Path(path)
    with private_tempdir("dlprov-package-") as tmp:
        extract = tmp / EXTRACT
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
        # A model recorded as a plain element (model_name, model_dir; DfAnalyzer style) has no
        # digest in the store: the one taken now is what verify checks, and the manifest says so.
        packaged = None if recorded.get("sha256") else file_digest(model_path)["sha256"]
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
                      "recorded_size_bytes": recorded.get("size_bytes"),
                      **({} if packaged is None else {
                          "packaged_sha256": packaged,
                          "store_recorded": "none: the sha256 was taken at packaging"})},
            "trace_tasks": task_count,
            "members": {name: _digest(content) for name, content in sorted(members.items())},
        }
        manifest_bytes = json.dumps(manifest, indent=2).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(MANIFEST, manifest_bytes)
                if key is not None:
                    zf.writestr(SIGNATURE, signing.sign(key, manifest_bytes))
                for name, content in sorted(members.items()):
                    if isinstance(content, Path):
                        zf.write(content, name)
                    else:
                        zf.writestr(name, content)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
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
    digest = hashlib.sha256()
    if isinstance(content, Path):
        size = 0
        with open(content, "rb") as source:
            while chunk := source.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
    else:
        digest.update(content)
        size = len(content)
    return {"sha256": digest.hexdigest(), "size_bytes": size}


# -- reading --------------------------------------------------------------------------------
def _manifest(zf: zipfile.ZipFile, where: str, limits: Limits) -> tuple[bytes, dict[str, Any]]:
    """The manifest's bytes and content, checked to have the shape dlprov writes."""
    if MANIFEST not in zf.NameToInfo:
        raise PackageError(f"{where} is not a dlprov package: no readable {MANIFEST}")
    data = read_small(zf, MANIFEST, limits.manifest_bytes)
    manifest = load_json(data, f"{where}: {MANIFEST}")
    problem = _manifest_problem(manifest)
    if problem:
        raise PackageError(f"{where}: {MANIFEST} is not valid: {problem}")
    return data, manifest


def _manifest_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if manifest.get("format_version") != FORMAT_VERSION:
        return (f"format_version {manifest.get('format_version')!r}, where this dlprov reads "
                f"{FORMAT_VERSION}")
    members, model = manifest.get("members"), manifest.get("model")
    if not isinstance(members, dict) or not isinstance(model, dict):
        return "no members or model"
    for name, entry in members.items():
        if not (safe_name(name) and isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)
                and type(entry.get("size_bytes")) is int):
            return f"member entry {name[:80]!r} is not a name with a sha256 and a size"
    if not (isinstance(model.get("member"), str) and model["member"].startswith(MODEL_DIR)):
        return f"the model's member is not under {MODEL_DIR}"
    for key in ("model_id", "name", "recorded_sha256", "packaged_sha256"):
        if model.get(key) is not None and not isinstance(model[key], str):
            return f"model.{key} is not text"
    if not isinstance(manifest.get("dataflow", ""), str):
        return "dataflow is not text"
    return None


@dataclass
class _Scan:
    """The digests of the members read, and the sha256 of the model as
    :func:`dlprov.store.files.file_digest` computes it (None if its file is missing)."""

    digests: dict[str, dict[str, Any]]
    model_sha256: str | None


def _scan(zf: zipfile.ZipFile, manifest: dict[str, Any], limits: Limits,
          extract_to: Path | None) -> _Scan:
    """Read every member once, in chunks: its digest, the model's, and the extract written to
    ``extract_to``."""
    model = manifest["model"]
    member = model["member"]
    prefix = member.rstrip("/") + "/"
    names = sorted(n for n in zf.namelist() if n not in _UNLISTED and not n.endswith("/"))
    model_files = [n for n in names if n == member] if not model.get("is_dir") else \
        [n for n in names if n.startswith(prefix)]
    model_digest = hashlib.sha256()
    model_left = limits.model_bytes
    digests = {}
    for name in names:
        digest = hashlib.sha256()
        sinks: list[Callable[[bytes], Any]] = [digest.update]
        if name in model_files:
            if len(model_files) > 1:
                model_digest.update(name[len(prefix):].encode())
            sinks.append(model_digest.update)
        limit = model_left if name.startswith(MODEL_DIR) else limits.member_bytes
        if name == EXTRACT and extract_to is not None:
            with open(extract_to, "wb") as out:
                size = stream(zf, name, [*sinks, out.write], limit)
        else:
            size = stream(zf, name, sinks, limit)
        if name.startswith(MODEL_DIR):
            model_left -= size
        digests[name] = {"sha256": digest.hexdigest(), "size_bytes": size}
    return _Scan(digests, model_digest.hexdigest() if model_files else None)


def verify_package(path: str | os.PathLike, *,
                   key: str | os.PathLike | Ed25519PublicKey | None = None,
                   store: Store | str | None = None,
                   limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Check a package: every member's digest matches the manifest and no member is missing or
    added; the model's bytes have the sha256 recorded in the PROV document's model entity, in
    the extract and in the store at packaging time; the PROV-JSON reads back.

    With ``key`` (an Ed25519 public key or its PEM file), the manifest must carry that key's
    signature. With ``store``, the store must hold the packaged model with the same sha256 and
    every record of the package's extract as it is.

    Raises :class:`PackageError` for a file that is no package at all, one that breaks the
    limits (``limits``), and a key that cannot be read."""
    public = key if isinstance(key, Ed25519PublicKey) or key is None else \
        signing.load_public_key(key)
    where = os.fspath(path)
    verdict = Verdict(where)
    with closing(open_archive(path, limits)) as zf, private_tempdir("dlprov-verify-") as tmp:
        manifest_bytes, manifest = _manifest(zf, where, limits)
        _check_signature(zf, manifest_bytes, public, verdict, limits)
        extract = tmp / EXTRACT
        scan = _scan(zf, manifest, limits, extract)
        listed = manifest["members"]
        for name in sorted(set(listed) - set(scan.digests)):
            verdict.fail(f"member {name} is missing")
        for name in sorted(set(scan.digests) - set(listed)):
            verdict.fail(f"member {name} is not in the manifest")
        for name in sorted(set(listed) & set(scan.digests)):
            if scan.digests[name] != listed[name]:
                verdict.fail(f"member {name} does not match its sha256 in the manifest")
        if verdict.ok:
            verdict.checks.append(f"{len(listed)} members match the manifest")
        model = manifest["model"]
        actual = scan.model_sha256
        if actual is None:
            verdict.fail(f"the model {model['member']} is missing")
            return verdict
        if model.get("recorded_sha256") is None and model.get("packaged_sha256") is not None:
            if model["packaged_sha256"] != actual:
                verdict.fail(f"the model's sha256 {actual} is not the {model['packaged_sha256']} "
                             f"taken when it was packaged (the store recorded none)")
            else:
                verdict.checks.append("the store recorded no sha256 for the model (a plain "
                                      "element); it has the one taken when it was packaged")
        elif model.get("recorded_sha256") != actual:
            verdict.fail(f"the model's sha256 {actual} is not the {model.get('recorded_sha256')} "
                         f"the store recorded")
        _check_document(zf, model, actual, verdict, limits)
        if EXTRACT in scan.digests:
            _check_extract(extract, model, actual, verdict, limits)
        if store is not None:
            _check_store(store, manifest, actual, extract, tmp, verdict, limits)
    if verdict.ok:
        verdict.checks.append(f"model {model.get('name')} ({model.get('model_id')}) has sha256 "
                              f"{actual[:12]}… as its provenance records")
    return verdict


def _check_signature(zf: zipfile.ZipFile, manifest: bytes, key: Ed25519PublicKey | None,
                     verdict: Verdict, limits: Limits) -> None:
    signed = SIGNATURE in zf.NameToInfo
    signature = read_small(zf, SIGNATURE, limits.manifest_bytes) if signed else b""
    if key is None:
        if signed:
            verdict.checks.append(f"signed by key {signing.signer(signature)[:16]}… (not "
                                  f"checked: no key given)")
        return
    if not signed:
        verdict.fail(f"the package is not signed ({SIGNATURE} is missing), but a key was given")
        return
    problem = signing.check(signature, manifest, key)
    if problem:
        verdict.fail(problem)
    else:
        verdict.checks.append(f"the manifest is signed by key {signing.fingerprint(key)[:16]}…")


def _check_document(zf: zipfile.ZipFile, model: dict[str, Any], actual: str,
                    verdict: Verdict, limits: Limits) -> None:
    from dlprov.prov.constraints import Validation
    from dlprov.prov.reading import read_batches

    if PROV_JSON not in zf.NameToInfo:
        return  # reported as a missing member
    if zf.getinfo(PROV_JSON).file_size > limits.document_bytes:
        verdict.fail(f"{PROV_JSON} is over the limit of {limits.document_bytes:,} bytes "
                     f"that verify reads")
        return
    wanted = ids.model_id(model["model_id"]) if model.get("model_id") else None
    validation = Validation(source=PROV_JSON)
    recorded: set[str] = set()
    declared = False
    try:
        data = read_small(zf, PROV_JSON, limits.document_bytes)
        for batch in read_batches(data, "json", max_bytes=limits.document_bytes, strict=False):
            validation.add(batch.records, bundle=batch.bundle)
            for record in batch.records:
                if wanted is not None and record.is_element() and record.identifier == wanted:
                    declared = True
                    recorded |= {str(v) for v in record.get_attribute("dlprov:sha256")}
    except (ProvImportError, PackageError) as exc:
        verdict.fail(f"{PROV_JSON} is not a well-formed PROV-JSON document: {exc}")
        return
    _check_constraints(validation.report(), verdict)
    if wanted is None:
        verdict.checks.append(f"{PROV_JSON} is well formed")
    elif not declared:
        verdict.fail(f"{PROV_JSON} has no entity for the model {wanted}")
    elif recorded != {actual}:
        verdict.fail(f"the model's sha256 {actual} is not the one {PROV_JSON} records "
                     f"({', '.join(sorted(recorded)) or 'none'})")
    else:
        verdict.checks.append(f"{PROV_JSON} is well formed and records the model's sha256")


def _check_constraints(report: Report, verdict: Verdict) -> None:
    """The document must be valid under W3C PROV-CONSTRAINTS (dlprov.prov.constraints)."""
    if report.valid:
        verdict.checks.append(f"{PROV_JSON} is valid under W3C PROV-CONSTRAINTS")
        return
    shown = "; ".join(f"constraint {v.number} {v.name}: {v.message}"
                      for v in report.violations[:3])
    more = len(report.violations) - 3
    verdict.fail(f"{PROV_JSON} breaks W3C PROV-CONSTRAINTS: {shown}"
                 + (f" (and {more} more)" if more > 0 else ""))


def _check_extract(extract: Path, model: dict[str, Any], actual: str, verdict: Verdict,
                   limits: Limits) -> None:
    if not model.get("model_id"):
        return
    try:
        with closing(open_untrusted(extract, limits.query_seconds)) as conn:
            found = dict(conn.execute("SELECT model_id, sha256 FROM trained_model").fetchall())
    except ExtractRefused as exc:
        verdict.fail(f"{EXTRACT}: {exc}")
        return
    except sqlite3.DatabaseError as exc:  # damaged, or interrupted by the time limit
        verdict.fail(f"{EXTRACT} cannot be read: {_why(exc, limits)}")
        return
    if found.get(model["model_id"]) != actual:
        verdict.fail(f"the model's sha256 {actual} is not the one {EXTRACT} records "
                     f"({found.get(model['model_id'])})")


def _why(exc: Exception, limits: Limits) -> str:
    if "interrupted" in str(exc):
        return f"a query ran over the limit of {limits.query_seconds:g} s"
    return str(exc)


def _check_store(store: Store | str, manifest: dict[str, Any], actual: str, extract: Path,
                 tmp: Path, verdict: Verdict, limits: Limits) -> None:
    """The store holds the packaged model with the same sha256, and every record of the
    extract as it is (records added since, a later test of the model say, are fine)."""
    model_id = manifest["model"].get("model_id")
    if not model_id:
        verdict.fail("the package names no model id to look up in the store")
        return
    fresh = tmp / "from-store.db"
    try:
        ctx = Context.open(store, manifest.get("dataflow") or None)
        url = ctx.store.safe_url
        recorded = _recorded_model(ctx.store, model_id)
        if not recorded:
            verdict.fail(f"the store {url} holds no model {model_id}")
            return
        if recorded.get("sha256") != actual:
            verdict.fail(f"the store {url} records sha256 {recorded.get('sha256')} for model "
                         f"{model_id}, not the package's {actual}")
        write_extract(ctx, model_id, fresh)
    except DlprovError as exc:
        verdict.fail(f"the store does not hold the package's trace: {exc}")
        return
    try:
        with closing(open_untrusted(extract, limits.query_seconds)) as packaged, \
                closing(sqlite3.connect(fresh)) as made:
            problems, extra = compare_extracts(packaged, made)
    except (ExtractRefused, sqlite3.DatabaseError) as exc:
        verdict.fail(f"{EXTRACT} cannot be compared with the store: {exc}")
        return
    for problem in problems:
        verdict.fail(f"the store {url} differs: {problem}")
    if not problems:
        more = f" ({extra} records more there, recorded since)" if extra else ""
        verdict.checks.append(f"the store {url} holds the model and its trace as packaged{more}")


class _ExtractStore(Store):
    """A package's extract as a store whose every read is interrupted after ``seconds``."""

    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__(path)
        self.seconds = seconds

    @contextmanager
    def read(self, prepare: Callable[[Connection], None] | None = None
             ) -> Iterator[Connection]:
        def limited(conn: Connection) -> None:
            time_limit(conn.connection.dbapi_connection, self.seconds)
            if prepare is not None:
                prepare(conn)
        with super().read(limited) as conn:
            yield conn


def inspect_package(path: str | os.PathLike, question: str, *, limits: Limits = DEFAULT_LIMITS,
                    **params: Any) -> QueryResult:
    """The answer to ``question`` (q7 … q12) from the package alone, by the store's own
    queries run on its extract (refused if it holds views or triggers; each query is
    interrupted after ``limits.query_seconds``). ``model`` defaults to the packaged model."""
    from dlprov.query.questions import ask

    question = str(question).lower()
    if question not in QUESTIONS:
        raise PackageError(f"a package answers {', '.join(QUESTIONS)}, not {question!r}")
    where = os.fspath(path)
    with packaged_store(path, limits) as (store, manifest):
        model = manifest["model"]
        params.setdefault("model", model.get("model_id") or model.get("name"))
        try:
            return ask(question, store=store, dataflow=manifest.get("dataflow"), **params)
        except OperationalError as exc:
            raise PackageError(f"{where}: {EXTRACT} cannot be queried: "
                               f"{_why(exc, limits)}") from None


@contextmanager
def packaged_store(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS
                   ) -> Iterator[tuple["_ExtractStore", dict[str, Any]]]:
    """The package's store extract, checked against its manifest and opened as untrusted
    input (read-only, queries time-limited), with the manifest; removed afterwards. Raises
    :class:`PackageError` for a missing, altered or unsafe extract."""
    where = os.fspath(path)
    with closing(open_archive(path, limits)) as zf, private_tempdir("dlprov-extract-") as tmp:
        _, manifest = _manifest(zf, where, limits)
        listed = manifest["members"].get(EXTRACT)
        extract = tmp / EXTRACT
        digest = hashlib.sha256()
        if listed is not None and EXTRACT in zf.NameToInfo:
            with open(extract, "wb") as out:
                size = stream(zf, EXTRACT, [digest.update, out.write], limits.member_bytes)
        if listed is None or EXTRACT not in zf.NameToInfo or \
                {"sha256": digest.hexdigest(), "size_bytes": size} != listed:
            raise PackageError(f"{where}: {EXTRACT} is missing or does not match the "
                               f"manifest; run dlprov verify")
        try:
            open_untrusted(extract, limits.query_seconds).close()
        except (ExtractRefused, sqlite3.DatabaseError) as exc:
            raise PackageError(f"{where}: {EXTRACT}: {exc}") from None
        store = _ExtractStore(extract, limits.query_seconds)
        try:
            yield store, manifest
        finally:
            store.dispose()
