"""Importing the provenance another tool recorded (the DLProv paper's Provenance Integration
Layer): a PROV document is kept in the store as that source's provenance, and its nodes that
name a record (``record_id``) meet dlprov's elements that carry the same identifier.

    from dlprov.prov.imports import import_document
    report = import_document("prep.json", source="dataprep")
    print(report.summary())

``dlprov import FILE`` is the command-line twin; :func:`dlprov.query.external_lineage` follows a
model back through dlprov's tasks into the imported provenance.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from dlprov.prov.constraints import Validation
from dlprov.prov.constraints.report import Report
from dlprov.prov.reading import (
    DEFAULT_RECORD_KEYS,
    FORMATS,
    MAX_BYTES,
    MAX_VALUE_CHARS,
    Batch,
    Flattened,
    ProvImportError,
    batch_rows,
    choose_format,
    key_ranks,
    merge_node,
    read_batches,
    record_rank,
)
from dlprov.query.external import linked_records
from dlprov.store import external as x
from dlprov.store.store import Store, as_store

__all__ = ["DEFAULT_RECORD_KEYS", "FORMATS", "MAX_BYTES", "MAX_VALUE_CHARS", "ImportReport",
           "ProvImportError", "import_document"]


_PLURALS = {"entity": "entities", "activity": "activities"}


@dataclass
class ImportReport:
    """What an import stored, or found stored already (``created`` False: same bytes)."""

    doc_id: int
    source: str
    format: str
    sha256: str
    created: bool
    imported_at: datetime
    nodes: int
    relations: int
    bundles: int
    kinds: dict[str, int] = field(default_factory=dict)
    records: int = 0
    linked: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for people: what was stored and how much of it meets dlprov's records."""
        kinds = ", ".join(f"{n} {k if n == 1 else _PLURALS.get(k, k + 's')}"
                          for k, n in sorted(self.kinds.items()))
        head = (f"imported document {self.doc_id} from source {self.source!r} ({self.format})"
                if self.created else
                f"already imported as document {self.doc_id} from source {self.source!r} on "
                f"{self.imported_at:%Y-%m-%d %H:%M:%S} (same sha256): nothing stored")
        lines = [head,
                 f"nodes: {self.nodes}" + (f" ({kinds})" if kinds else ""),
                 f"relations: {self.relations}" + (f", bundles: {self.bundles}"
                                                    if self.bundles else ""),
                 (f"nodes naming a record: {self.records}; linked to dlprov records: "
                  f"{self.linked}")]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def import_document(path_or_bytes: str | os.PathLike | bytes, *,
                    store: Store | str | os.PathLike | None = None, source: str | None = None,
                    format: str | None = None,
                    record_keys: Sequence[str] = DEFAULT_RECORD_KEYS,
                    record_id_from_name: bool = False, strict: bool = True,
                    max_bytes: int = MAX_BYTES,
                    max_value_chars: int = MAX_VALUE_CHARS,
                    constraints: str = "warn") -> ImportReport:
    """Import the PROV document at ``path_or_bytes`` (a file, or its bytes) into ``store`` as
    the provenance of ``source`` (default: the file's name without suffix).

    ``format`` is one of json, xml, ttl, trig, rdfxml, provn, jsonld (default: from the file's
    suffix or first bytes). A node's record id is its first attribute whose local name is one
    of ``record_keys`` (any case), else, with ``record_id_from_name``, an entity's local name.
    Importing the same bytes again stores nothing and says so (``created`` False).

    Raises :class:`ProvImportError`, with nothing stored, for a document that is not PROV, is
    malformed, declares an XML DOCTYPE, or is over ``max_bytes`` or has a string over
    ``max_value_chars``; with ``strict``, also for what ``prov`` reads only with a warning that
    it will reject it.

    The document is checked against W3C PROV-CONSTRAINTS (:mod:`dlprov.prov.constraints`)
    before it is stored: ``constraints="warn"`` (default) stores an invalid one with a
    warning, ``"strict"`` refuses it, ``"off"`` does not check."""
    if constraints not in ("warn", "strict", "off"):
        raise ValueError(f"constraints must be warn, strict or off, not {constraints!r}")
    data, default_source, suffix = _read(path_or_bytes, max_bytes)
    fmt = choose_format(format, data, suffix)
    source = (source or default_source).strip()
    if not source or len(source) > 255:
        raise ProvImportError(f"source must be a name of 1 to 255 characters, got {source!r}")
    digest = hashlib.sha256(data).hexdigest()
    store = as_store(store)
    engine = store.engine()
    x.ensure_tables(engine)
    with store.read() as conn:
        stored = x.find_document(conn, digest)
    said: list[str] = []
    created = False
    if stored is None:
        header = {"source": source, "format": fmt, "sha256": digest, "size_bytes": len(data),
                  "imported_at": datetime.now(), "node_count": 0, "relation_count": 0,
                  "bundle_count": 0, "namespaces": None}
        try:
            with engine.begin() as conn:  # one transaction: all of it or nothing
                if x.find_document(conn, digest) is None:
                    writer = _Writer(conn, header, record_keys)
                    validation = Validation(source=source)
                    for batch in read_batches(data, fmt, max_bytes=max_bytes, strict=strict,
                                              warned=said):
                        writer.add(batch, batch_rows(batch, record_keys=record_keys,
                                                     record_id_from_name=record_id_from_name,
                                                     max_value_chars=max_value_chars))
                        if constraints != "off":
                            validation.add(batch.records, bundle=batch.bundle)
                    writer.finish()
                    if constraints != "off":  # strict: raises, and the transaction rolls back
                        said += _constraints(validation.report(), constraints)
                    created = True
        except IntegrityError:  # the same bytes, imported at this moment by another process
            created = False
        with store.read() as conn:
            stored = x.find_document(conn, digest)
        if stored is None:
            raise ProvImportError("the document could not be stored (a conflicting row); "
                                  "nothing was stored")
    return _report(store, stored, created, said)


class _Writer:
    """Stores a document batch by batch in the caller's transaction, so that only one batch of
    rows is in memory at a time: a node declared again in a later batch (in a bundle, say) is
    merged into its stored row as :func:`~dlprov.prov.reading.merge_node` says."""

    def __init__(self, conn: Connection, header: dict, record_keys: Sequence[str]) -> None:
        self.conn = conn
        self.keys = key_ranks(record_keys)
        self.doc_id = conn.execute(x.prov_document.insert().values(**header)
                                   ).inserted_primary_key[0]
        self.nodes = self.relations = 0
        self.bundles: set[str] = set()
        self.namespaces: dict[str, str] = {}

    def add(self, batch: Batch, rows: Flattened) -> None:
        if batch.bundle is not None:
            self.bundles.add(batch.bundle)
        for prefix, uri in rows.namespaces.items():
            self.namespaces.setdefault(prefix, uri)
        fresh = [{k: v for k, v in node.items() if k != "_rank"}
                 for node in self._merge(rows.nodes)]
        x.insert_rows(self.conn, x.prov_node, self.doc_id, fresh)
        x.insert_rows(self.conn, x.prov_relation, self.doc_id, rows.relations)
        self.nodes += len(fresh)
        self.relations += len(rows.relations)

    def _merge(self, nodes: list[dict]) -> list[dict]:
        """The nodes not stored yet; those stored already get the new declaration merged in."""
        n = x.prov_node
        uris = sorted({node["identifier"] for node in nodes})
        stored: dict[tuple[str, str], dict] = {}
        for start in range(0, len(uris), 1000):
            for row in self.conn.execute(
                    select(n.c.id, n.c.identifier, n.c.kind, n.c.label, n.c.attributes,
                           n.c.record_key, n.c.record_id)
                    .where(n.c.doc_id == self.doc_id,
                           n.c.identifier.in_(uris[start:start + 1000]))):
                stored[(row.identifier, row.kind)] = dict(row._mapping)
        fresh = []
        for node in nodes:
            other = {"entity": "activity", "activity": "entity"}.get(node["kind"])
            if other and (node["identifier"], other) in stored:
                raise ProvImportError(f"{node['name']} is declared both an entity and an "
                                      "activity, which PROV forbids")
            before = stored.get((node["identifier"], node["kind"]))
            if before is None:
                fresh.append(node)
                continue
            before["_rank"] = record_rank(before["record_key"], self.keys)
            merged = merge_node(before, node)
            self.conn.execute(n.update().where(n.c.id == before["id"]).values(
                label=merged["label"], attributes=merged["attributes"],
                record_key=merged["record_key"], record_id=merged["record_id"]))
        return fresh

    def finish(self) -> None:
        """Refuse a document without records; store the counts."""
        if not self.nodes and not self.relations:
            raise ProvImportError("the document holds no PROV records (no entity, activity, "
                                  "agent or relation): is it PROV?")
        d = x.prov_document
        self.conn.execute(d.update().where(d.c.id == self.doc_id).values(
            node_count=self.nodes, relation_count=self.relations,
            bundle_count=len(self.bundles), namespaces=self.namespaces))


def _constraints(report: Report, mode: str) -> list[str]:
    """The warning an invalid document gets (none if valid); with ``mode`` strict, raise."""
    if report.valid:
        return []
    first = report.violations[0]
    problem = (f"the document breaks W3C PROV-CONSTRAINTS: {len(report.violations)} "
               f"violation(s), the first of constraint {first.number} {first.name} "
               f"({first.message}); `dlprov validate FILE` lists them all")
    if mode == "strict":
        raise ProvImportError(f"{problem}; nothing stored")
    return [problem]


def _read(path_or_bytes: str | os.PathLike | bytes, max_bytes: int) -> tuple[bytes, str, str]:
    """(bytes, default source, suffix), refusing a file over ``max_bytes`` before reading it."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "document", ""
    path = Path(path_or_bytes)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ProvImportError(f"{path} has {size:,} bytes, over the limit of {max_bytes:,}: "
                                  "raise max_bytes if it is genuine")
        return path.read_bytes(), path.stem, path.suffix
    except OSError as exc:
        raise ProvImportError(f"cannot read {path}: {exc.strerror or exc}") from None


def _report(store: Store, stored: dict, created: bool, said: list[str]) -> ImportReport:
    n = x.prov_node
    with store.read() as conn:
        rows = conn.execute(select(n.c.kind, func.count(), func.count(n.c.record_id))
                            .where(n.c.doc_id == stored["id"]).group_by(n.c.kind)).all()
    linked = {row["node"] for row in linked_records(store=store).records()
              if row["doc_id"] == stored["id"]}
    return ImportReport(doc_id=stored["id"], source=stored["source"], format=stored["format"],
                        sha256=stored["sha256"], created=created,
                        imported_at=stored["imported_at"], nodes=stored["node_count"],
                        relations=stored["relation_count"], bundles=stored["bundle_count"],
                        kinds={kind: count for kind, count, _ in rows},
                        records=sum(named for _, _, named in rows), linked=len(linked),
                        warnings=said)
