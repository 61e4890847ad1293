"""Persisting prospective provenance: dataflow specs, their versions and set tables."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, MetaData, Table, inspect, select
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
    found = read_spec(conn, spec.tag)
    if found is None:
        df_id = conn.execute(s.dataflow.insert().values(
            tag=spec.tag, created_at=datetime.now())).inserted_primary_key[0]
        version, merged, changed = 0, spec.copy(), True
    else:
        df_id, version, merged = found
        changed = merged.merge(spec)
    if not changed:
        return df_id, version, merged
    version += 1
    conn.execute(s.dataflow_version.insert().values(
        df_id=df_id, version=version, spec=merged.to_dict(), created_at=datetime.now()))
    _save_catalogue(conn, df_id, merged)
    _sync_set_tables(conn, merged)
    return df_id, version, merged


def _ids(conn: Connection, table: Table, df_id: int) -> dict[str, int]:
    return dict(conn.execute(select(table.c.tag, table.c.id).where(table.c.df_id == df_id)).all())


def _save_catalogue(conn: Connection, df_id: int, spec: DataflowSpec) -> None:
    """Keep the original's catalogue tables (transformations, sets, attributes, dependencies)."""
    dt_ids = _ids(conn, s.data_transformation, df_id)
    for tag in spec.transformations:
        if tag not in dt_ids:
            dt_ids[tag] = conn.execute(s.data_transformation.insert().values(
                df_id=df_id, tag=tag)).inserted_primary_key[0]
    ds_ids = _ids(conn, s.data_set, df_id)
    for tag, set_spec in spec.sets.items():
        if tag not in ds_ids:
            ds_ids[tag] = conn.execute(s.data_set.insert().values(
                df_id=df_id, tag=tag)).inserted_primary_key[0]
        known = set(conn.execute(select(s.attribute.c.name)
                                 .where(s.attribute.c.ds_id == ds_ids[tag])).scalars())
        new = [_attribute_row(ds_ids[tag], a) for a in set_spec.attributes.values()
               if a.name not in known]
        if new:
            conn.execute(s.attribute.insert(), new)
    conn.execute(s.data_dependency.delete().where(
        s.data_dependency.c.ds_id.in_(list(ds_ids.values()))))
    rows = [{"previous_dt_id": dt_ids.get(d.previous), "next_dt_id": dt_ids.get(d.following),
             "ds_id": ds_ids[d.set_tag]} for d in spec.dependency_rows()]
    if rows:
        conn.execute(s.data_dependency.insert(), rows)


def _attribute_row(ds_id: int, attribute: Attribute) -> dict:
    return {"ds_id": ds_id, "name": attribute.name, "type": attribute.type.value,
            "allow_nan": attribute.allow_nan}


def _sync_set_tables(conn: Connection, spec: DataflowSpec) -> None:
    """Create each set's table, or add the columns it lacks (a new attribute or consumer)."""
    dialect = conn.dialect
    if dialect.name == "postgresql":
        conn.execute(CreateSchema(spec.tag, if_not_exists=True))
    inspector = inspect(conn)
    for set_tag in spec.sets:
        table = s.set_table(dialect.name, spec, set_tag, MetaData())
        task_columns = [task_column(t) for t in spec.transformations_of(set_tag)]
        if not inspector.has_table(table.name, schema=table.schema):
            table.create(conn)
            for column in task_columns:
                s.task_column_index(table, column).create(conn)
            continue
        present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name in present:
                continue
            # Core has no ADD COLUMN construct; the identifiers are checked names, quoted here.
            ddl = CreateColumn(column).compile(dialect=dialect)
            name = dialect.identifier_preparer.format_table(table)
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
            if column.name in task_columns:
                s.task_column_index(table, column.name).create(conn)

