"""Provenance imported from other tools (a data-preparation tracker, say), kept as that source's.

One ``prov_document`` row per imported document (its bytes' sha256 is unique, so importing the
same bytes twice stores nothing new), its elements in ``prov_node`` and its relations in
``prov_relation``, bundles flattened (the bundle each record came from is kept). Nodes and
relations name each other by the full URI of their PROV identifier, as PROV does: a relation may
point at a node the document never declares.

``prov_node.record_id`` is the identifier of the record a node describes (the paper's
Provenance Mapper ``record_id``); dlprov's own elements carry it in an attribute of that name,
which is how the two provenance graphs meet (:mod:`dlprov.query.external`).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from dlprov.store.schema import metadata

prov_document = Table(
    "prov_document", metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(255), nullable=False, index=True),
    Column("format", String(16), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("imported_at", DateTime, nullable=False),
    Column("node_count", Integer, nullable=False),
    Column("relation_count", Integer, nullable=False),
    Column("bundle_count", Integer, nullable=False),
    Column("namespaces", JSON(none_as_null=True)),
)

prov_node = Table(
    "prov_node", metadata,
    Column("id", Integer, primary_key=True),
    Column("doc_id", Integer, ForeignKey("prov_document.id", ondelete="CASCADE"),
           nullable=False),
    Column("identifier", Text, nullable=False),  # the full URI
    Column("name", Text, nullable=False),        # prefix:local, as the document wrote it
    Column("kind", String(16), nullable=False),  # entity, activity or agent
    Column("bundle", Text),
    Column("label", Text),
    Column("attributes", JSON(none_as_null=True)),
    Column("record_key", String(255)),           # the attribute record_id came from
    Column("record_id", Text, index=True),
    # An agent may also be an entity (PROV allows it); an entity is never an activity.
    UniqueConstraint("doc_id", "identifier", "kind"),
)

prov_relation = Table(
    "prov_relation", metadata,
    Column("id", Integer, primary_key=True),
    Column("doc_id", Integer, ForeignKey("prov_document.id", ondelete="CASCADE"),
           nullable=False),
    Column("kind", String(32), nullable=False),  # the PROV-N keyword: used, wasGeneratedBy, ...
    Column("identifier", Text),
    Column("subject", Text, nullable=False),     # first formal attribute (URI)
    Column("object", Text),                      # second one, if given
    Column("bundle", Text),
    Column("attributes", JSON(none_as_null=True)),  # the other formal and the extra ones
    Index("ix_prov_relation_doc_subject", "doc_id", "subject"),
)

TABLES = (prov_document, prov_node, prov_relation)

#: Keys whose values are file digests: compared lower-case, without a ``sha256:`` prefix.
DIGEST_KEYS = frozenset({"sha256", "digest"})
#: Longest identifier or record id kept (PostgreSQL's btree index refuses entries over about
#: 2.7 kB).
MAX_KEY_BYTES = 1024


def record_id(key: str, value: Any) -> str | None:
    """What ``prov_node.record_id`` holds for ``value`` found under attribute ``key``: its
    text (a whole number without ``.0``), a digest lower-case without ``sha256:``; None where
    it is empty or too long to index. :mod:`dlprov.query.external` reads dlprov's elements
    the same way."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = str(value).strip()
    if key.lower() in DIGEST_KEYS:
        text = text.lower().removeprefix("sha256:")
    if not text or len(text.encode()) > MAX_KEY_BYTES:
        return None
    return text


def ensure_tables(engine: Engine) -> None:
    """Create the tables where a store made before they existed lacks them (the store only
    creates its schema when its newest core table is missing)."""
    metadata.create_all(engine, tables=list(TABLES))


def has_tables(conn: Connection) -> bool:
    """Whether the store holds the tables. Give it a connection of its own: on PostgreSQL a
    failed statement spoils the rest of its transaction."""
    try:
        conn.execute(select(prov_relation.c.id).limit(0)).all()
        return True
    except SQLAlchemyError:
        return False


def find_document(conn: Connection, sha256: str) -> dict[str, Any] | None:
    """The stored document with these bytes, or None."""
    row = conn.execute(select(prov_document).where(prov_document.c.sha256 == sha256)).first()
    return dict(row._mapping) if row else None


def insert_document(conn: Connection, document: dict[str, Any],
                    nodes: Sequence[dict[str, Any]],
                    relations: Sequence[dict[str, Any]]) -> int:
    """Insert a document and its nodes and relations in the caller's transaction; its id."""
    doc_id = conn.execute(prov_document.insert().values(**document)).inserted_primary_key[0]
    for table, rows in ((prov_node, nodes), (prov_relation, relations)):
        insert_rows(conn, table, doc_id, rows)
    return doc_id


def insert_rows(conn: Connection, table: Table, doc_id: int,
                rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows of ``prov_node`` or ``prov_relation`` of document ``doc_id``, in the
    caller's transaction."""
    for chunk in _chunks(rows, 5000):
        conn.execute(table.insert(), [dict(row, doc_id=doc_id) for row in chunk])


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
