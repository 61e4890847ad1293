"""Applying captured records to a store, one batch per transaction.

Used by the recorder's background thread only. Caches (spec, set tables, task ids) spare a
round trip per record; after a failed batch they are dropped and rebuilt from the store, so a
rolled-back transaction never leaves them ahead of the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dlprov.model import records as r
from dlprov.model.names import task_column
from dlprov.model.spec import DataflowSpec
from dlprov.store import schema as s
from dlprov.store.bulk import SetTable, insert_rows
from dlprov.store.files import file_digest
from dlprov.store.specs import read_spec, save_spec


# (column positions, row width, position of the task column, task id, the rows to insert)
_ElementSlot = tuple[dict[str, int], int, int, int, list[list]]


@dataclass(frozen=True)
class _Dataflow:
    id: int
    version: int
    spec: DataflowSpec


@dataclass(frozen=True)
class _Exec:
    id: int
    tag: str
    df_tag: str


@dataclass(frozen=True)
class _Task:
    id: int
    transformation: str
    df_tag: str


class StoreWriter:
    """Writes batches of records (see :mod:`dlprov.model.records`) into one store."""

    def __init__(self, engine: Engine, *, read_model_files: bool = True) -> None:
        """``read_model_files``: digest model files named in MODEL records (the writer runs beside
        the training script). A server writing for remote clients turns it off: their paths
        are not its files, and the client's writer sends the digest with the record."""
        self.engine = engine
        self.dialect = engine.dialect.name
        self.read_model_files = read_model_files
        self._upserts: dict[tuple[bool, tuple[str, ...]], Any] = {}
        self._forget()

    def _forget(self) -> None:
        self._dataflows: dict[str, _Dataflow] = {}
        self._tables: dict[tuple[str, str], tuple[Table, dict]] = {}
        self._execs: dict[str, _Exec] = {}
        self._tasks: dict[str, _Task] = {}
        self._ids: dict[tuple[str, str, str], int] = {}
        self._ledger_ready = False

    def write(self, batch: Sequence[tuple], batch_id: str | None = None) -> None:
        """Apply ``batch`` in one transaction: all of it is stored, or none of it. With a
        ``batch_id``, a batch already applied under that id is skipped (see :meth:`write_batches`)."""
        self.write_batches([(batch_id, batch)])

    def write_batches(self, batches: Iterable[tuple[str | None, Sequence[tuple]]]) -> int:
        """Apply ``(batch_id, records)`` pairs in one transaction, skipping the batches whose id
        the store has already applied and noting the ids of the others in ``applied_batch``, in
        the same transaction: replaying a batch writes it exactly once. Returns the number of
        records applied."""
        batches = list(batches)
        try:
            with self.engine.begin() as conn:
                done = self._applied(conn, [b for b, _ in batches if b is not None])
                todo = [(b, records) for b, records in batches if b is None or b not in done]
                records = [record for _, records in todo for record in records]
                self._apply(conn, records)
                ids = [{"batch_id": b, "applied_at": datetime.now()} for b, _ in todo
                       if b is not None]
                if ids:
                    conn.execute(s.applied_batch.insert(), ids)
                return len(records)
        except BaseException:
            self._forget()
            raise

    def applied(self, batch_ids: Iterable[str]) -> set[str]:
        """Which of ``batch_ids`` the store has applied."""
        with self.engine.begin() as conn:
            return self._applied(conn, list(batch_ids))

    def _applied(self, conn: Connection, batch_ids: list[str]) -> set[str]:
        if not self._ledger_ready:  # a store made before the table existed gets it now
            s.applied_batch.create(conn, checkfirst=True)
            self._ledger_ready = True
        found: set[str] = set()
        for start in range(0, len(batch_ids), 500):
            chunk = batch_ids[start:start + 500]
            found.update(conn.execute(select(s.applied_batch.c.batch_id)
                                      .where(s.applied_batch.c.batch_id.in_(chunk))).scalars())
        return found

    # -- dispatch ---------------------------------------------------------------------------
    def _apply(self, conn: Connection, batch: Sequence[tuple]) -> None:
        # Spec snapshots only grow, so the last one of a dataflow in the batch, applied where its
        # first one stands, serves every record after it: one new version per batch, not per step.
        last_spec = {rec[1]: rec for rec in batch if rec[0] == r.SPEC}
        pending: dict[tuple[str, str], list[list]] = {}
        slots: dict[tuple[str, str], _ElementSlot] = {}
        for record in batch:
            kind = record[0]
            if kind == r.ELEMENT:
                slot = slots.get((record[1], record[2]))
                if slot is None:
                    slot = slots[record[1], record[2]] = self._element_slot(
                        conn, pending, record[1], record[2])
                position, width, task_at, task_id, rows = slot
                row = [None] * width
                for name, value in record[3].items():
                    row[position[name]] = value
                row[task_at] = task_id
                rows.append(row)
                continue
            if kind == r.SPEC:
                record = last_spec.pop(record[1], None)
                if record is None:
                    continue
            # Everything else may depend on elements written before it (a USE stamps them).
            self._insert_elements(conn, pending)
            pending, slots = {}, {}
            getattr(self, "_on_" + kind)(conn, *record[1:])
        self._insert_elements(conn, pending)

    def _element_slot(self, conn: Connection, pending: dict[tuple[str, str], list[list]],
                      task_key: str, set_tag: str) -> "_ElementSlot":
        # What every element of one task in one set needs, looked up once per batch: the
        # elements of a batch are mostly a few tasks' outputs to a few sets.
        task = self._task(conn, task_key)
        position = self._table(conn, task.df_tag, set_tag).position
        rows = pending.setdefault((task.df_tag, set_tag), [])
        return position, len(position), position[task_column(task.transformation)], task.id, rows

    def _insert_elements(self, conn: Connection, pending: dict[tuple[str, str], list[list]]) -> None:
        for (df_tag, set_tag), rows in pending.items():
            insert_rows(conn, self._table(conn, df_tag, set_tag), rows)

    # -- record kinds -----------------------------------------------------------------------
    def _on_spec(self, conn: Connection, df_tag: str, spec: dict) -> None:
        wanted = DataflowSpec.from_dict(spec)
        known = self._dataflows.get(df_tag)
        if known is not None and not known.spec.copy().merge(wanted):
            return
        df_id, version, merged = save_spec(conn, wanted)
        self._dataflows[df_tag] = _Dataflow(df_id, version, merged)
        for key in [k for k in self._tables if k[0] == df_tag]:
            del self._tables[key]

    def _on_exec_start(self, conn: Connection, key: str, fields: dict) -> None:
        fields = dict(fields)  # the record may yet be spooled: leave it as it was
        df_tag = fields.pop("df_tag")
        # Under torchrun every rank starts the same execution (same key, same tag) and any may
        # reach the store first: insert if absent; the leader's (rank 0's) start time, host,
        # pid and user then overwrite a follower's, never its status. A tag held by another
        # key still fails, as it does outside torchrun.
        leader = fields.pop("leader", True)
        dataflow = self._dataflow(conn, df_tag)
        table = s.dataflow_execution
        # Values go as parameters, not into the statement: its cache key then stays the same
        # from run to run and SQLAlchemy reuses the compiled form (no per-value bind objects).
        conn.execute(self._exec_upsert(leader, tuple(fields)),
                     {"uuid": key, "df_id": dataflow.id, "df_version": dataflow.version,
                      "status": "running", **fields})
        exec_id, tag = conn.execute(select(table.c.id, table.c.tag)
                                    .where(table.c.uuid == key)).one()
        self._execs[key] = _Exec(exec_id, tag, df_tag)

    def _exec_upsert(self, leader: bool, overwrite: tuple[str, ...]):
        """The execution's insert-if-absent (a leader's overwriting ``overwrite``), made once."""
        found = self._upserts.get((leader, overwrite))
        if found is None:
            table = s.dataflow_execution
            insert = self._dialect_insert(table)
            found = self._upserts[leader, overwrite] = (
                insert.on_conflict_do_update(index_elements=[table.c.uuid],
                                             set_={k: insert.excluded[k] for k in overwrite})
                if leader else insert.on_conflict_do_nothing(index_elements=[table.c.uuid]))
        return found

    def _on_exec_end(self, conn: Connection, key: str, fields: dict) -> None:
        execution = self._exec(conn, key)
        # The spec may have grown since the execution started (sets inferred from their first
        # element): the execution ran under the version its last records needed.
        version = self._dataflow(conn, execution.df_tag).version
        self._update(conn, s.dataflow_execution, execution.id,
                     {**fields, "df_version": version})

    def _on_task_start(self, conn: Connection, key: str, fields: dict) -> None:
        fields = dict(fields)
        execution = self._exec(conn, fields.pop("exec_key"))
        transformation = fields.pop("transformation")
        depends_on = fields.pop("depends_on", ())
        dataflow = self._dataflow(conn, execution.df_tag)
        task_id = conn.execute(s.task.insert(), {
            "uuid": key, "df_exec": execution.tag, "exec_id": execution.id,
            "df_version": dataflow.version,
            "dt_id": self._catalogue_id(conn, s.data_transformation, execution.df_tag,
                                        transformation),
            **fields}).inserted_primary_key[0]
        self._tasks[key] = _Task(task_id, transformation, execution.df_tag)
        rows = [{"task_id": task_id, "depends_on_id": self._task(conn, k).id} for k in depends_on]
        if rows:
            conn.execute(self._insert_ignore(s.task_dependency), rows)

    def _on_task_end(self, conn: Connection, key: str, fields: dict) -> None:
        self._update(conn, s.task, self._task(conn, key).id, fields)

    @staticmethod
    def _update(conn: Connection, table: Table, row_id: int, fields: dict) -> None:
        """``UPDATE table SET fields WHERE id = row_id``, the values as parameters."""
        conn.execute(update(table).where(table.c.id == bindparam("row_id")),
                     {"row_id": row_id, **fields})

    def _on_use(self, conn: Connection, consumer_key: str, producer_key: str,
                set_tags: list[str]) -> None:
        consumer, producer = self._task(conn, consumer_key), self._task(conn, producer_key)
        usage = []
        for set_tag in set_tags:
            table = self._table(conn, producer.df_tag, set_tag).table
            mine = table.c[task_column(consumer.transformation)]
            theirs = table.c[task_column(producer.transformation)]
            # As the original: the consumer's id goes on the rows it used that no task of its
            # transformation used before; task_usage keeps every consumer.
            conn.execute(update(table).where(theirs == producer.id, mine.is_(None))
                         .values({mine: consumer.id}))
            usage.append({"task_id": consumer.id, "producer_task_id": producer.id,
                          "ds_id": self._catalogue_id(conn, s.data_set, producer.df_tag, set_tag)})
        if usage:
            conn.execute(self._insert_ignore(s.task_usage), usage)

    def _on_environment(self, conn: Connection, key: str, fields: dict) -> None:
        fields = dict(fields)
        exec_id = self._exec(conn, key).id
        # git's user.email, asked on the probe's thread: the agent's e-mail if none was given
        email = fields.pop("agent_email", None)
        if email:
            execution = s.dataflow_execution
            conn.execute(update(execution).where(execution.c.id == exec_id,
                                                 execution.c.email.is_(None)).values(email=email))
        conn.execute(self._insert_ignore(s.environment), {"exec_id": exec_id, **fields})

    def _on_model(self, conn: Connection, task_key: str, fields: dict) -> None:
        task = self._task(conn, task_key)
        exec_id = conn.execute(select(s.task.c.exec_id).where(s.task.c.id == task.id)).scalar_one()
        digest = {"size_bytes": fields.get("size_bytes"), "sha256": fields.get("sha256")}
        if digest["sha256"] is None and self.read_model_files:
            digest = file_digest(fields["path"])
        conn.execute(self._insert_ignore(s.trained_model).values(
            exec_id=exec_id, task_id=task.id, **{**fields, **digest}))

    # -- lookups (cached) -------------------------------------------------------------------
    def _dataflow(self, conn: Connection, df_tag: str) -> _Dataflow:
        known = self._dataflows.get(df_tag)
        if known is None:
            found = read_spec(conn, df_tag) or save_spec(conn, DataflowSpec(df_tag))
            known = self._dataflows[df_tag] = _Dataflow(*found)
        return known

    def _table(self, conn: Connection, df_tag: str, set_tag: str) -> SetTable:
        key = (df_tag, set_tag)
        found = self._tables.get(key)
        if found is None:
            table = s.set_table(self.dialect, self._dataflow(conn, df_tag).spec, set_tag)
            found = self._tables[key] = SetTable.of(table, conn.dialect)
        return found

    def _catalogue_id(self, conn: Connection, table: Table, df_tag: str, tag: str) -> int:
        key = (table.name, df_tag, tag)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = conn.execute(
                select(table.c.id).join(s.dataflow, s.dataflow.c.id == table.c.df_id)
                .where(s.dataflow.c.tag == df_tag, table.c.tag == tag)).scalar_one()
        return found

    def _exec(self, conn: Connection, key: str) -> _Exec:
        found = self._execs.get(key)
        if found is None:
            row = conn.execute(
                select(s.dataflow_execution.c.id, s.dataflow_execution.c.tag, s.dataflow.c.tag)
                .join(s.dataflow, s.dataflow.c.id == s.dataflow_execution.c.df_id)
                .where(s.dataflow_execution.c.uuid == key)).one()
            found = self._execs[key] = _Exec(*row)
        return found

    def _task(self, conn: Connection, key: str) -> _Task:
        found = self._tasks.get(key)
        if found is None:
            row = conn.execute(
                select(s.task.c.id, s.data_transformation.c.tag, s.dataflow.c.tag)
                .join(s.data_transformation, s.data_transformation.c.id == s.task.c.dt_id)
                .join(s.dataflow, s.dataflow.c.id == s.data_transformation.c.df_id)
                .where(s.task.c.uuid == key)).one()
            found = self._tasks[key] = _Task(*row)
        return found

    def _dialect_insert(self, table: Table):
        """The backend's INSERT, the one with ``on_conflict_do_*``."""
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    def _insert_ignore(self, table: Table):
        return self._dialect_insert(table).on_conflict_do_nothing()
