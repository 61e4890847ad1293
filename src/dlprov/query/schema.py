"""Describing dataflow specs and their set tables (``dlprov schema``), and the attributes with
the names they stand for (``dlprov schema --attributes``)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from dlprov.model.names import task_column
from dlprov.model.spec import Attribute, DataflowSpec
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


def attributes(store: Store | str | None = None, df_tag: str | None = None,
               all_dataflows: bool = False) -> list[dict[str, Any]]:
    """The attributes of one dataflow's sets (default: the most recent dataflow's) or of all,
    one dict each: ``dataflow``, ``set``, ``attribute`` (its column), ``type``, ``allow_nan``
    and ``label``: the name it was made for where that differs from the column (a framework's
    metric ``val/loss`` stored as ``val_loss``), else None."""
    store = as_store(store)
    with store.read() as conn:
        tags = dataflow_tags(conn) if all_dataflows else [choose_dataflow(conn, df_tag).tag]
        specs = [choose_dataflow(conn, tag) for tag in tags]
    return [{"dataflow": spec.label or spec.tag, "set": set_tag, "attribute": a.name,
             "type": a.type.value,
             "allow_nan": a.allow_nan, "label": a.label}
            for spec in specs for set_tag, set_spec in spec.sets.items()
            for a in set_spec.attributes.values()]


def describe_spec(spec: DataflowSpec, version: int, dialect: str) -> str:
    lines = [f"dataflow {spec.label or spec.tag} (version {version})", "", "transformations:"]
    for transformation in spec.transformations:
        inputs = []
        for set_tag in spec.sets_of(transformation, "input"):
            producers = [d.previous for d in spec.dependencies
                         if d.set_tag == set_tag and d.following == transformation and d.previous]
            inputs.append(f"{set_tag} (from {', '.join(producers)})" if producers else set_tag)
        outputs = spec.sets_of(transformation, "output")
        lines.append(f"  {transformation}: {', '.join(inputs) or '-'} -> {', '.join(outputs) or '-'}")
    labelled = any(a.label is not None for set_spec in spec.sets.values()
                   for a in set_spec.attributes.values())
    lines += ["", "set tables (bare names in `dlprov sql`"
              + ("; column ← the name it was made for):" if labelled else "):")]
    for set_tag, set_spec in spec.sets.items():
        schema_name, table = s.set_table_location(dialect, spec.tag, set_tag)
        where = f"{schema_name}.{table}" if schema_name else table
        columns = ["id"] + [task_column(t) for t in spec.transformations_of(set_tag)]
        columns += [_column(a) for a in set_spec.attributes.values()]
        lines.append(f"  {set_tag} [{where}]: {', '.join(columns)}")
    return "\n".join(lines)


def _column(attribute: Attribute) -> str:
    """``name type``, and ``← 'label'`` where the attribute was made for another name."""
    text = f"{attribute.name} {attribute.type.value}"
    return text if attribute.label is None else f"{text} ← {attribute.label!r}"
