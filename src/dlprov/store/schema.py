"""The store's tables, in one place.

The fixed tables follow the original DfAnalyzer database (``dataflow``, ``data_transformation``,
``data_set``, ``attribute``, ``data_dependency``, ``dataflow_execution``, ``task``), with numbers
and times typed as such. Each set of a dataflow gets its own table, named after the set tag, in a
namespace of the dataflow: a PostgreSQL schema named after it, or in SQLite (one file, no schemas)
the prefix ``<df_tag>__``; ``dlprov sql --dataflow`` makes the bare set names resolve there.
"""
from __future__ import annotations

import json

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from dlprov.errors import StoreUnavailable
from dlprov.model.names import task_column
from dlprov.model.spec import AttributeType, DataflowSpec

metadata = MetaData()

dataflow = Table(
    "dataflow", metadata,
    Column("id", Integer, primary_key=True),
    Column("tag", String(64), nullable=False, unique=True),
    Column("created_at", DateTime),
    # The tag as the user first wrote it (KerasProv-example) where it differs from ``tag``, the
    # lower-cased form every lookup matches. Added after 0.1.0: see add_missing_columns.
    Column("label", String(64)),
)

dataflow_version = Table(
    "dataflow_version", metadata,
    Column("id", Integer, primary_key=True),
    Column("df_id", Integer, ForeignKey("dataflow.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime),
    UniqueConstraint("df_id", "version"),
)

def _tagged_per_dataflow(name: str) -> Table:
    """A catalogue table of tags unique within a dataflow (transformations, sets)."""
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True),
        Column("df_id", Integer, ForeignKey("dataflow.id", ondelete="CASCADE"), nullable=False),
        Column("tag", String(64), nullable=False),
        UniqueConstraint("df_id", "tag"),
    )


data_transformation = _tagged_per_dataflow("data_transformation")
data_set = _tagged_per_dataflow("data_set")

attribute = Table(
    "attribute", metadata,
    Column("id", Integer, primary_key=True),
    Column("ds_id", Integer, ForeignKey("data_set.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("type", String(16), nullable=False),
    Column("allow_nan", Boolean, nullable=False, default=False),
    # The framework's name the attribute was made for (val/loss), where it differs from the
    # name; None otherwise. Added after 0.1.0's first stores: see add_missing_columns.
    Column("label", Text),
    UniqueConstraint("ds_id", "name"),
)

data_dependency = Table(
    "data_dependency", metadata,
    Column("id", Integer, primary_key=True),
    Column("previous_dt_id", Integer, ForeignKey("data_transformation.id", ondelete="CASCADE")),
    Column("next_dt_id", Integer, ForeignKey("data_transformation.id", ondelete="CASCADE")),
    Column("ds_id", Integer, ForeignKey("data_set.id", ondelete="CASCADE"), nullable=False),
)

dataflow_execution = Table(
    "dataflow_execution", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("tag", String(200), nullable=False, unique=True),
    Column("df_id", Integer, ForeignKey("dataflow.id", ondelete="CASCADE"), nullable=False),
    Column("df_version", Integer),
    Column("status", String(16), nullable=False),
    Column("start_time", DateTime),
    Column("end_time", DateTime),
    Column("hostname", String(255)),
    Column("username", String(255)),
    Column("email", String(255)),
    Column("organization", String(255)),
    Column("pid", Integer),
    Column("workspace", Text),
    Column("error_msg", Text),
    # What the user wrote about the run (dlprov.run(notes=...), dlprov note). Added after
    # 0.1.0's first stores: see add_missing_columns.
    Column("notes", Text),
)

# Tags of an execution (dlprov.run(tags=...), dlprov tag): key=value text, one value per key.
execution_tag = Table(
    "execution_tag", metadata,
    Column("exec_id", Integer, ForeignKey("dataflow_execution.id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The computational environment of an execution (the original's hardware_info, widened).
environment = Table(
    "environment", metadata,
    Column("exec_id", Integer, ForeignKey("dataflow_execution.id", ondelete="CASCADE"),
           primary_key=True),
    Column("hostname", String(255)),
    Column("os", String(64)),
    Column("os_version", String(255)),
    Column("platform", String(255)),
    Column("architecture", String(64)),
    Column("processor", String(255)),
    Column("cpu_count", Integer),
    Column("memory_bytes", BigInteger),
    Column("in_container", Boolean),
    Column("gpus", JSON),
    Column("python_version", String(32)),
    Column("python_implementation", String(32)),
    Column("packages", JSON),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean),
    Column("git_repository", Text),
    Column("command_line", Text),
    Column("git_patch", Text),  # the working tree's `git diff HEAD` when dirty (bounded)
)

task = Table(
    "task", metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("identifier", Integer, nullable=False),
    Column("sub_id", String(64)),
    Column("df_version", Integer),
    Column("df_exec", String(200), nullable=False, index=True),
    Column("exec_id", Integer, ForeignKey("dataflow_execution.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("dt_id", Integer, ForeignKey("data_transformation.id", ondelete="CASCADE"),
           nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", DateTime),
    Column("end_time", DateTime),
    Column("workspace", Text),
    Column("computing_resource", String(255)),
    Column("output_msg", Text),
    Column("error_msg", Text),
    # The rank of the process that ran the task under torchrun (its host: computing_resource);
    # None outside a distributed world. Added after 0.1.0's first stores: see add_missing_columns.
    Column("rank", Integer),
    # The process that ran it, on computing_resource: a reader can tell a task whose process
    # was killed (it stays "running") from one still running (see dlprov.query.liveness).
    Column("pid", Integer),
)

task_dependency = Table(
    "task_dependency", metadata,
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)

# Which task used the elements of a set that another task produced. The set tables' consumer
# columns keep the first consumer only (as the original did); this table keeps them all.
task_usage = Table(
    "task_usage", metadata,
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("producer_task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"),
           primary_key=True, index=True),
    Column("ds_id", Integer, ForeignKey("data_set.id", ondelete="CASCADE"), primary_key=True),
)

# Trained models as first-class entities. The tasks that tested a model are those that used the
# sets its training task produced (task_usage).
trained_model = Table(
    "trained_model", metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", String(36), nullable=False, unique=True),
    Column("exec_id", Integer, ForeignKey("dataflow_execution.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("name", String(255), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger),
    Column("sha256", String(64), index=True),
    Column("framework", String(64)),
    Column("parameter_count", BigInteger),
    Column("layer_count", Integer),
    Column("created_at", DateTime),
)

# The recorder's batches already written, each in the transaction that wrote it: a batch that was
# committed but whose acknowledgement was lost (the connection died) is spooled, and its replay
# must then skip it. This is what makes replay exactly-once.
applied_batch = Table(
    "applied_batch", metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("applied_at", DateTime),
)

# Per task, per metric set (dlprov.store.summary.SUMMARIZED_SETS) and per numeric attribute:
# the count, sum, lowest, highest and latest of its finite values, kept by the writer in the
# transaction that stores the elements, so that ranking 10,000 runs by a metric reads 10,000
# rows, not a million. The row with attribute '' counts the task's elements (n): a reader
# trusts the summary of a set only while those counts add up to the set's rows.
metric_summary = Table(
    "metric_summary", metadata,
    Column("task_id", Integer, ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("set_tag", String(64), primary_key=True),
    Column("attribute", String(64), primary_key=True),
    Column("exec_id", Integer, ForeignKey("dataflow_execution.id", ondelete="CASCADE"),
           nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("total", Double),
    Column("lowest", Double),
    Column("highest", Double),
    Column("latest", Double),
    Column("latest_id", BigInteger),  # the element id of the latest: orders a run's tasks
    Index("ix_metric_summary_column", "set_tag", "attribute", "exec_id"),
)


class JsonValue(TypeDecorator):
    """A JSON attribute. In SQLite it is a TEXT column holding JSON text: a column declared
    JSON has numeric affinity there, which would turn the JSON text ``5`` into the integer 5."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(Text() if dialect.name == "sqlite" else JSON())

    def process_bind_param(self, value, dialect):
        if dialect.name == "sqlite" and value is not None:
            return json.dumps(value, allow_nan=False)
        return value

    def process_result_value(self, value, dialect):
        if dialect.name == "sqlite" and isinstance(value, str):
            return json.loads(value)
        return value


COLUMN_TYPES = {
    AttributeType.TEXT: Text,
    AttributeType.FILE: Text,
    AttributeType.NUMERIC: Double,
    AttributeType.TIMESTAMP: DateTime,
    AttributeType.JSON: JsonValue,
}


def set_table_location(dialect_name: str, df_tag: str, set_tag: str) -> tuple[str | None, str]:
    """(schema, table name) of a set's table: the dataflow's namespace, then the set tag."""
    if dialect_name == "postgresql":
        return df_tag, set_tag
    return None, f"{df_tag}__{set_tag}"


def set_columns(spec: DataflowSpec, set_tag: str) -> list[Column]:
    """The columns of a set table: id, one ``<transformation>_task_id`` per transformation that
    produces or consumes the set, then the attributes in declaration order."""
    columns = [Column("id", Integer, primary_key=True)]
    columns += [Column(task_column(t), Integer) for t in spec.transformations_of(set_tag)]
    columns += [Column(a.name, COLUMN_TYPES[a.type]())
                for a in spec.sets[set_tag].attributes.values()]
    return columns


def set_table(dialect_name: str, spec: DataflowSpec, set_tag: str,
              table_metadata: MetaData | None = None) -> Table:
    """A SQLAlchemy :class:`Table` for the set as ``spec`` describes it (not created here)."""
    schema, name = set_table_location(dialect_name, spec.tag, set_tag)
    return Table(name, table_metadata or MetaData(), *set_columns(spec, set_tag), schema=schema)


def add_missing_columns(conn: Connection) -> list[str]:
    """Add to the fixed tables the nullable columns that a store made by an older dlprov lacks
    (``task.rank``, ``attribute.label``, ``dataflow.label``, ``dataflow_execution.notes``); returns them as ``table.column``. Run in a write
    transaction: SQLite's ``BEGIN IMMEDIATE`` serialises two processes upgrading at once,
    PostgreSQL's guard lets the second one pass."""
    dialect, inspector, added = conn.dialect, inspect(conn), []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise StoreUnavailable(
                    f"the store's table {table.name} lacks column {column.name}, which cannot "
                    f"be added to existing rows: migrate the store (dlprov migrate) to a new one")
            # Core has no ADD COLUMN construct; the names are ours, quoted here.
            ddl = CreateColumn(column).compile(dialect=dialect)
            guard = "IF NOT EXISTS " if dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"ALTER TABLE {dialect.identifier_preparer.format_table(table)} "
                                 f"ADD COLUMN {guard}{ddl}")
            added.append(f"{table.name}.{column.name}")
    return added


def task_column_index(table: Table, column: str) -> Index:
    """Index on a task column: the joins of every provenance query go through these."""
    return Index(f"ix_{table.name}_{column}", table.c[column])


# The training measures the paper's questions aggregate per training task (Q2: elapsed_time,
# Q3 and Listing 4: accuracy): a covering index answers them from the index alone, half the
# time of a lookup per row at 1M rows (benchmarks/queries.py).
MEASURES_INDEXED = {"otrain": ("train_task_id", ("accuracy", "elapsed_time"))}


def measures_index(table: Table, set_tag: str) -> Index | None:
    """The covering index of a set's per-task measures (see MEASURES_INDEXED), over the measure
    columns it has; None for other sets, or one with no such column yet. Its name names the
    columns: a set that gains one gets a new index beside the narrower one."""
    if set_tag not in MEASURES_INDEXED:
        return None
    task, measures = MEASURES_INDEXED[set_tag]
    present = [name for name in measures if name in table.c]
    if task not in table.c or not present:
        return None
    return Index(f"ix_{table.name}_{'_'.join(['measures', *present])}",
                 table.c[task], *(table.c[name] for name in present))
from dlprov.store import external as _external  # noqa: E402,F401  (its tables join metadata)
