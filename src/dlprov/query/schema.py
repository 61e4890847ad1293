"""Describing dataflow specs and their set tables (``dlprov schema``)."""
from __future__ import annotations

from sqlalchemy import func, select

from dlprov.model.names import task_column
from dlprov.model.spec import DataflowSpec
from dlprov.query.catalogue import choose_dataflow, dataflow_tags
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store


def describe(store: Store | str | None = None, df_tag: str | None = None,
             all_dataflows: bool = False) -> str:
    """Text describing one dataflow (default: the most recent) or all of them."""
    store = as_store(store)
    with store.read() as conn:
        tags = dataflow_tags(conn) if all_dataflows else [choose_dataflow(conn, df_tag).tag]
        parts = []
        for tag in tags:
            spec = choose_dataflow(conn, tag)
            versions = conn.execute(
                select(func.max(s.dataflow_version.c.version))
                .join(s.dataflow, s.dataflow.c.id == s.dataflow_version.c.df_id)
                .where(s.dataflow.c.tag == tag)).scalar()
            parts.append(describe_spec(spec, versions or 0, conn.dialect.name))
    return "\n\n".join(parts)


def describe_spec(spec: DataflowSpec, version: int, dialect: str) -> str:
    lines = [f"dataflow {spec.tag} (version {version})", "", "transformations:"]
    for transformation in spec.transformations:
        inputs = []
        for set_tag in spec.sets_of(transformation, "input"):
            producers = [d.previous for d in spec.dependencies
                         if d.set_tag == set_tag and d.following == transformation and d.previous]
            inputs.append(f"{set_tag} (from {', '.join(producers)})" if producers else set_tag)
        outputs = spec.sets_of(transformation, "output")
        lines.append(f"  {transformation}: {', '.join(inputs) or '-'} -> {', '.join(outputs) or '-'}")
    lines += ["", "set tables (bare names in `dlprov sql`):"]
    for set_tag, set_spec in spec.sets.items():
        schema_name, table = s.set_table_location(dialect, spec.tag, set_tag)
        where = f"{schema_name}.{table}" if schema_name else table
        columns = ["id"] + [task_column(t) for t in spec.transformations_of(set_tag)]
        columns += [f"{a.name} {a.type.value}" for a in set_spec.attributes.values()]
        lines.append(f"  {set_tag} [{where}]: {', '.join(columns)}")
    return "\n".join(lines)
