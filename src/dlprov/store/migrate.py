"""Copying a whole store to another backend (SQLite ↔ PostgreSQL), ids preserved.

The fixed tables are copied in dependency order with their ids, so every reference (task ids in
set tables, ``exec_id``, ``df_id``…) still holds; then each dataflow's set tables are created from
its latest spec in the target's namespace and their rows copied. Everything is written in one
transaction on the target: a failed migration leaves it as it was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import Connection, MetaData, Table, func, select, text

from dlprov.errors import DlprovError, StoreUnavailable
from dlprov.store import schema as s
from dlprov.store.specs import create_set_tables, read_spec
from dlprov.store.store import Store, as_store

CHUNK = 5000


class MigrationRefused(DlprovError):
    """A migration cannot start: the target already holds provenance, or a store is remote."""


@dataclass
class MigrationReport:
    """Rows copied per table (set tables named ``<df_tag>.<set_tag>``)."""
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def migrate(source: Store | str | os.PathLike, target: Store | str | os.PathLike
            ) -> MigrationReport:
    """Copy every table of ``source`` into the empty store ``target`` (URLs or SQLite paths)."""
    source, target = as_store(source), as_store(target)
    for store in (source, target):
        if store.remote:
            raise MigrationRefused(f"{store.url} is a dlprov server; migrate between databases "
                                   f"(run it where the server's database is reachable)")
    if not source._has_tables():
        raise StoreUnavailable(f"no dlprov store at {source.safe_url}")
    report = MigrationReport()
    with source.read() as read, target.engine().begin() as write:
        _refuse_non_empty(write, target)
        for table in s.metadata.sorted_tables:
            report.rows[table.name] = _copy(read, write, table, table)
        tags = read.execute(select(s.dataflow.c.tag).order_by(s.dataflow.c.id)).scalars().all()
        for df_tag in tags:
            found = read_spec(read, df_tag)
            if found is None:
                continue
            spec = found[2]
            create_set_tables(write, spec)
            for set_tag in spec.sets:
                report.rows[f"{df_tag}.{set_tag}"] = _copy(
                    read, write, s.set_table(read.dialect.name, spec, set_tag, MetaData()),
                    s.set_table(write.dialect.name, spec, set_tag, MetaData()))
    return report


def _refuse_non_empty(conn: Connection, target: Store) -> None:
    for table in s.metadata.sorted_tables:
        if conn.execute(select(func.count()).select_from(table)).scalar():
            raise MigrationRefused(
                f"target store {target.safe_url} is not empty (table {table.name} has rows): "
                f"migrate into a new SQLite file or an empty PostgreSQL database or schema")


def _copy(read: Connection, write: Connection, source: Table, target: Table) -> int:
    """Copy all rows of ``source`` into ``target`` (same columns) in chunks; then move the
    target's id sequence past the copied ids (PostgreSQL)."""
    names = [c.name for c in target.columns]
    result = read.execution_options(yield_per=CHUNK).execute(
        select(*(source.c[n] for n in names)).order_by(*source.primary_key.columns))
    count = 0
    for chunk in result.partitions(CHUNK):
        write.execute(target.insert(), [dict(zip(names, row)) for row in chunk])
        count += len(chunk)
    if write.dialect.name == "postgresql" and _serial_id(target):
        name = write.dialect.identifier_preparer.format_table(target)
        write.execute(text(f"SELECT setval(pg_get_serial_sequence(:table, 'id'), "
                           f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"),
                      {"table": name})
    return count


def _serial_id(table: Table) -> bool:
    keys = list(table.primary_key.columns)
    return len(keys) == 1 and keys[0].name == "id" and keys[0].autoincrement in (True, "auto") \
        and keys[0].type._type_affinity.__name__ == "Integer"
