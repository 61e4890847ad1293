"""Persisting prospective provenance: dataflow specs, their versions and set tables.

A stored version and the set tables change in one transaction, so the tables always match the
latest stored spec: growing a spec needs only the difference, no reflection of the database.
"""
from __future__ import annotations

import zlib
from datetime import datetime

from sqlalchemy import Connection, MetaData, Table, select, text
from sqlalchemy.schema import CreateColumn, CreateSchema

from dlprov.model.names import task_column
from dlprov.model.spec import Attribute, DataflowSpec
from dlprov.store import schema as s


def read_spec(conn: Connection, df_tag: str) -> tuple[int, int, DataflowSpec] | None:
    """(dataflow id, latest version, spec) of ``df_tag``, or None if the store lacks it."""
    row = conn.execute(
        select(s.dataflow.c.id, s.dataflow_version.c.version, s.dataflow_version.c.spec)
        .join(s.dataflow_version, s.dataflow_version.c.df_id == s.dataflow.c.id)
        .where(s.dataflow.c.tag == df_tag)
        .order_by(s.dataflow_version.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return row.id, row.version, DataflowSpec.from_dict(row.spec)


def save_spec(conn: Connection, spec: DataflowSpec) -> tuple[int, int, DataflowSpec]:
    """Merge ``spec`` into the stored one; if that grows it, store a new version and create or
    alter the set tables. Returns (dataflow id, version, merged spec). Run inside a write
    transaction so that concurrent writers see each other's versions."""
    if conn.dialect.name == "postgresql":
        # SQLite's BEGIN IMMEDIATE serialises writers; PostgreSQL needs a lock per dataflow.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                     {"key": zlib.crc32(spec.tag.encode())})
    found = read_spec(conn, spec.tag)
    if found is None:
        df_id = conn.execute(s.dataflow.insert().values(
            tag=spec.tag, label=spec.label, created_at=datetime.now())).inserted_primary_key[0]
        version, previous = 0, DataflowSpec(spec.tag, label=spec.label)
    else:
        df_id, version, previous = found
    merged = previous.copy()
    if not merged.merge(spec) and found is not None:
        return df_id, version, previous
    version += 1
    conn.execute(s.dataflow_version.insert().values(
        df_id=df_id, version=version, spec=merged.to_dict(), created_at=datetime.now()))
    _save_catalogue(conn, df_id, previous, merged)
    _grow_set_tables(conn, previous, merged)
    return df_id, version, merged


def _ids(conn: Connection, table: Table, df_id: int) -> dict[str, int]:
    return dict(conn.execute(select(table.c.tag, table.c.id).where(table.c.df_id == df_id)).all())


def _save_catalogue(conn: Connection, df_id: int, previous: DataflowSpec,
                    merged: DataflowSpec) -> None:
    """Keep the original's catalogue tables (transformations, sets, attributes, dependencies)."""
    new_transformations = [t for t in merged.transformations
                           if t not in previous.transformations]
    if new_transformations:
        conn.execute(s.data_transformation.insert(),
                     [{"df_id": df_id, "tag": t} for t in new_transformations])
    new_sets = [t for t in merged.sets if t not in previous.sets]
    if new_sets:
        conn.execute(s.data_set.insert(), [{"df_id": df_id, "tag": t} for t in new_sets])
    ds_ids = _ids(conn, s.data_set, df_id)
    attributes = [_attribute_row(ds_ids[tag], a)
                  for tag, set_spec in merged.sets.items()
                  for a in set_spec.attributes.values()
                  if tag not in previous.sets or a.name not in previous.sets[tag].attributes]
    if attributes:
        conn.execute(s.attribute.insert(), attributes)
    if merged.dependencies != previous.dependencies:
        dt_ids = _ids(conn, s.data_transformation, df_id)
        conn.execute(s.data_dependency.delete().where(
            s.data_dependency.c.ds_id.in_(list(ds_ids.values()))))
        conn.execute(s.data_dependency.insert(), [
            {"previous_dt_id": dt_ids.get(d.previous), "next_dt_id": dt_ids.get(d.following),
             "ds_id": ds_ids[d.set_tag]} for d in merged.dependency_rows()])


def _attribute_row(ds_id: int, attribute: Attribute) -> dict:
    return {"ds_id": ds_id, "name": attribute.name, "type": attribute.type.value,
            "allow_nan": attribute.allow_nan, "label": attribute.label}


def _grow_set_tables(conn: Connection, previous: DataflowSpec, merged: DataflowSpec) -> None:
    """Create the tables of new sets; add to the others the columns they lack (a new
    attribute or a new consumer's task column)."""
    dialect = conn.dialect
    if dialect.name == "postgresql" and not previous.sets:
        conn.execute(CreateSchema(merged.tag, if_not_exists=True))
    for set_tag in merged.sets:
        table = s.set_table(dialect.name, merged, set_tag, MetaData())
        task_columns = {task_column(t) for t in merged.transformations_of(set_tag)}
        measures = s.measures_index(table, set_tag)
        if set_tag not in previous.sets:
            table.create(conn, checkfirst=True)
            # the measures index leads with its task column: it serves that column's lookups
            covered = measures.columns[0].name if measures is not None else None
            for column in sorted(task_columns - {covered}):
                s.task_column_index(table, column).create(conn, checkfirst=True)
            if measures is not None:
                measures.create(conn, checkfirst=True)
            continue
        present = {c.name for c in s.set_columns(previous, set_tag)}
        for column in table.columns:
            if column.name in present:
                continue
            # Core has no ADD COLUMN construct; the identifiers are checked names, quoted here.
            ddl = CreateColumn(column).compile(dialect=dialect)
            name = dialect.identifier_preparer.format_table(table)
            guard = "IF NOT EXISTS " if dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {guard}{ddl}")
            if column.name in task_columns:
                s.task_column_index(table, column.name).create(conn, checkfirst=True)
        if measures is not None:  # made now if the set has just gained a measure
            measures.create(conn, checkfirst=True)


def create_set_tables(conn: Connection, spec: DataflowSpec) -> None:
    """Create the set tables (and the dataflow's namespace) of ``spec`` where they are missing,
    without storing a version: for a store whose catalogue rows are copied as they were."""
    _grow_set_tables(conn, DataflowSpec(spec.tag), spec)
