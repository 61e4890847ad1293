"""Applying captured records to a store, one batch per transaction.

Used by the recorder's background thread only. Caches (spec, set tables, task ids) spare a
round trip per record; after a failed batch they are dropped and rebuilt from the store, so a
rolled-back transaction never leaves them ahead of the database.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Callable, Iterable, Sequence

from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.exc import NoResultFound

from dlprov.errors import DlprovError
from dlprov.model import records as r
from dlprov.model.names import task_column
from dlprov.model.spec import DataflowSpec
from dlprov.store import handover
from dlprov.store import schema as s
from dlprov.store import statements as st
from dlprov.store.bulk import SetTable, insert_flat, server_column_types
from dlprov.store.files import file_digest
from dlprov.store.recall import Recall
from dlprov.store.refusal import RecordRefused, is_refusal, reason_of
from dlprov.store.specs import read_spec, save_spec
from dlprov.store.summary import SUMMARIZED_SETS, Summarizer

#: A record left out of a batch because the store would refuse it, and why.
Refusal = tuple[tuple, str]


@dataclass
class Applied:
    """What :meth:`StoreWriter.apply_batches` did: records written, and those set aside."""
    written: int
    refused: list[Refusal]


# (column positions, row width, position of the task column, task id, the rows to insert (their
#  values in one list, row after row), the row builder of each order of attribute names seen:
#  see _row_builder)
_ElementSlot = tuple[dict[str, int], int, int, int, list, dict]


def _row_builder(slot: _ElementSlot, names: tuple) -> tuple[Callable[[tuple], tuple] | None,
                                                             tuple | None]:
    """For elements whose attributes come in the order ``names``: a function from
    ``(*values, task id, None)`` to the row in the table's column order (C's itemgetter: a
    per-value Python loop was most of the writer's time), and, where the table's columns are
    the task columns and then ``names`` in this order (the usual case: the set's spec was
    inferred from such an element), the task columns' values, the row's head (the row is then
    the head and the values, one tuple made). (None, None) when a name is not a column as
    written (another case, unknown, a task column): such elements take :meth:`_slow_row`."""
    position, width, task_at = slot[0], slot[1], slot[2]
    at: dict[int, int] = {}
    for i, name in enumerate(names):
        column = position.get(name) if isinstance(name, str) else None
        if column is None or column == task_at or name.endswith("_task_id"):
            return None, None
        at[column] = i
    index = [len(names) if column == task_at else at.get(column, len(names) + 1)
             for column in range(width)]
    head = width - len(names)
    prefix = (tuple(slot[3] if column == task_at else None for column in range(head))
              if index[head:] == list(range(len(names))) and task_at < head else None)
    if width == 1:
        return (lambda values: (values[index[0]],)), prefix
    return itemgetter(*index), prefix


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
    exec_id: int


class StoreWriter:
    """Writes batches of records (see :mod:`dlprov.model.records`) into one store.

    Names of sets, attributes and transformations are matched as stored: lower-cased (as in
    the original DfAnalyzer), whatever case a record spells them in.
    """

    def __init__(self, engine: Engine, *, read_model_files: bool = True,
                 recall: Recall | None = None, schema_whole: bool = False) -> None:
        """``read_model_files``: digest model files named in MODEL records (the writer runs beside
        the training script). A server writing for remote clients turns it off: their paths
        are not its files, and the client's writer sends the digest with the record.
        ``recall``: the recorder's memory of its live runs; the writer notes the start records
        there and sends them again to a store that lost them (see :mod:`.recall`).
        ``schema_whole``: every table of the schema was just found in the store (the batch
        ledger's is not looked for before the first batch)."""
        self.engine = engine
        self.dialect = engine.dialect.name
        self._dialect = engine.dialect  # the statements' (see .statements)
        self.read_model_files = read_model_files
        self.recall = recall if recall is not None else Recall()
        self._remember = recall is not None
        self._refused: list[Refusal] | None = None  # None: refusals raise (write_batches)
        self._summarizer = Summarizer(self.dialect)
        self._forget()
        self._ledger_ready = schema_whole
        # a closed writer's caches of this store, kept if the first transaction finds them true
        self._handed = handover.take(engine)

    def _forget(self) -> None:
        self._dataflows: dict[str, _Dataflow] = {}
        self._tables: dict[tuple[str, str], SetTable] = {}
        self._execs: dict[str, _Exec] = {}
        self._tasks: dict[str, _Task] = {}
        self._ids: dict[tuple[str, str, str], int] = {}
        self._exec_of: dict[int, int] = {}  # task id -> its execution's (the summary's key)
        self._specs_seen: dict[str, dict] = {}  # the last spec record found stored, by dataflow
        self._ledger_ready = False
        self._handed: handover.Handed | None = None
        self._summarizer.forget()

    def hand_back(self) -> None:
        """Leave what this writer learned of the store's dataflows (specs, set tables,
        catalogue ids) to the next writer of the store in this process (see
        :mod:`.handover`). Call it when the writer is done, never after a failed batch."""
        handover.hand_back(self.engine, handover.Handed(
            handover.file_of(self.engine), dict(self._dataflows), dict(self._tables),
            dict(self._ids), dict(self._specs_seen)))

    def _adopt(self, conn: Connection) -> None:
        handed, self._handed = self._handed, None
        if handover.still_true(conn, handed):
            self._dataflows.update(handed.dataflows)
            self._tables.update(handed.tables)
            self._ids.update(handed.ids)
            self._specs_seen.update(handed.specs_seen)

    def write(self, batch: Sequence[tuple], batch_id: str | None = None) -> None:
        """Apply ``batch`` in one transaction: all of it is stored, or none of it. With a
        ``batch_id``, a batch already applied under that id is skipped (see :meth:`write_batches`)."""
        self.write_batches([(batch_id, batch)])

    def write_batches(self, batches: Iterable[tuple[str | None, Sequence[tuple]]]) -> int:
        """Apply ``(batch_id, records)`` pairs in one transaction, skipping the batches whose id
        the store has already applied and noting the ids of the others in ``applied_batch``, in
        the same transaction: replaying a batch writes it exactly once. Returns the number of
        records applied. All or nothing: a record the store refuses raises (``RecordRefused``
        or the database's error) and nothing of the batches is stored."""
        return self._write_batches(list(batches), None).written

    def apply_batches(self, batches: Iterable[tuple[str | None, Sequence[tuple]]]) -> Applied:
        """:meth:`write_batches`, except that the records this writer can tell the store would
        refuse (an element of a set whose table could not be made or of an attribute the set
        lacks, a record of a task the store does not hold, a spec the store cannot take in
        full) are left out, with their reason, and the others committed. A refusal raised by the
        database itself still raises, and nothing is stored (the caller splits the batch)."""
        return self._write_batches(list(batches), [])

    def _write_batches(self, batches: list, refused: list[Refusal] | None) -> Applied:
        self._refused = refused
        try:
            with self.engine.begin() as conn:
                if self._handed is not None:
                    self._adopt(conn)
                claimed = self._claim(conn, [b for b, _ in batches if b is not None])
                todo = _first_of_each(batches, claimed)
                records = (todo[0][1] if len(todo) == 1 else
                           [record for _, records in todo for record in records])
                self._apply(conn, records)
                left_out = refused or []
                return Applied(len(records) - len(left_out), left_out)
        except BaseException:
            self._forget()
            raise
        finally:
            self._refused = None

    def applied(self, batch_ids: Iterable[str]) -> set[str]:
        """Which of ``batch_ids`` the store has applied."""
        with self.engine.begin() as conn:
            return self._applied(conn, list(batch_ids))

    def _claim(self, conn: Connection, batch_ids: list[str]) -> set[str]:
        """Note ``batch_ids`` as applied by this transaction, first thing, and return those it
        noted: the others were applied before. A transaction of another connection applying
        the same batch (a retry while the first attempt's commit is still under way on the
        server) makes this one wait for it, then find the batch applied: never both."""
        if not batch_ids:
            return set()
        self._applied(conn, [])  # the ledger table exists
        claimed: set[str] = set()
        now = datetime.now()
        for start in range(0, len(batch_ids), 500):
            chunk = list(dict.fromkeys(batch_ids[start:start + 500]))
            values = {f"b{i}": b for i, b in enumerate(chunk)}
            values.update((f"t{i}", now) for i in range(len(chunk)))
            claimed.update(row[0] for row in st.claim(self._dialect, len(chunk))
                           .execute(conn, values))
        return claimed

    def _applied(self, conn: Connection, batch_ids: list[str]) -> set[str]:
        if not self._ledger_ready:  # a store made before the table existed gets it now
            s.applied_batch.create(conn, checkfirst=True)
            self._ledger_ready = True
        found: set[str] = set()
        for start in range(0, len(batch_ids), 500):
            chunk = batch_ids[start:start + 500]
            found.update(row[0] for row in st.applied(self._dialect, len(chunk))
                         .execute(conn, {f"b{i}": b for i, b in enumerate(chunk)}))
        return found

    def _refuse(self, record: tuple, refusal: RecordRefused) -> None:
        """Leave ``record`` out (apply_batches) or refuse the whole call (write_batches)."""
        if self._refused is None:
            raise refusal
        self._refused.append((record, str(refusal)))
        if record[0] in (r.EXEC_START, r.TASK_START):  # what depends on it is refused at once
            self.recall.refused_keys[record[1]] = str(refusal)

    # -- dispatch ---------------------------------------------------------------------------
    def _apply(self, conn: Connection, batch: Sequence[tuple]) -> None:
        # Spec snapshots only grow, so the last one of a dataflow in the batch, applied where its
        # first one stands, serves every record after it: one new version per batch, not per step.
        # (Found at the batch's first spec: most batches hold none, and a scan is a Python loop.)
        last_spec: dict | None = None
        pending: dict[tuple[str, str], list] = {}  # each set's rows' values, row after row
        slots: dict[tuple[str, str], _ElementSlot] = {}
        last: tuple | None = None  # (task key, set, slot) of the element before: most repeat it
        # ... and with the same attribute names, in the same order: then its row builder serves
        same: tuple = (None, None, None)  # (task key, set, names)
        extend = build = task_id = prefix = None
        element = r.ELEMENT
        for record in batch:
            kind = record[0]
            if kind == element:
                task_key, set_tag, values = record[1], record[2], record[3]
                names = tuple(values)
                if task_key is same[0] and set_tag is same[1] and names == same[2]:
                    if prefix is not None:  # the row: the task columns, then the values
                        extend(prefix)
                        extend(values.values())
                    else:
                        extend(build((*values.values(), task_id, None)))
                    continue
                if last is not None and task_key is last[0] and set_tag is last[1]:
                    slot = last[2]
                else:
                    slot = slots.get((task_key, set_tag))
                    if slot is None:
                        try:
                            slot = slots[task_key, set_tag] = self._element_slot(
                                conn, pending, task_key, set_tag)
                        except RecordRefused as refusal:
                            self._refuse(record, refusal)
                            continue
                    last = (task_key, set_tag, slot)
                found = slot[5].get(names)
                if found is None:
                    found = slot[5][names] = _row_builder(slot, names)
                build, prefix = found
                if build is not None:
                    extend, task_id = slot[4].extend, slot[3]
                    same = (task_key, set_tag, names)
                    if prefix is not None:
                        extend(prefix)
                        extend(values.values())
                    else:
                        extend(build((*values.values(), task_id, None)))
                    continue
                same = (None, None, None)
                try:  # a name spelt in another case, or one the set lacks
                    row = self._slow_row(slot, record)
                except RecordRefused as refusal:
                    self._refuse(record, refusal)
                    continue
                row[slot[2]] = slot[3]
                slot[4].extend(row)
                continue
            if kind == r.SPEC:
                if last_spec is None:
                    last_spec = {rec[1]: rec for rec in batch if rec[0] == r.SPEC}
                record = last_spec.pop(record[1], None)
                if record is None:
                    continue
            # Everything else may depend on elements written before it (a USE stamps them).
            self._insert_elements(conn, pending)
            pending, slots, last, same = {}, {}, None, (None, None, None)
            try:
                getattr(self, "_on_" + kind)(conn, *record[1:])
            except RecordRefused as refusal:
                self._refuse(record, refusal)
        self._insert_elements(conn, pending)

    def _element_slot(self, conn: Connection, pending: dict[tuple[str, str], list],
                      task_key: str, set_tag: str) -> "_ElementSlot":
        # What every element of one task in one set needs, looked up once per batch: the
        # elements of a batch are mostly a few tasks' outputs to a few sets.
        task = self._task(conn, task_key)
        set_tag = set_tag.lower()
        table = self._table(conn, task.df_tag, set_tag)
        position = table.position
        column = task_column(task.transformation)
        if column not in position:
            raise RecordRefused(f"set {set_tag!r} of dataflow {task.df_tag!r} has no column "
                                f"for transformation {task.transformation!r}: the spec never "
                                f"gave it this set")
        self._exec_of[task.id] = task.exec_id
        rows = pending.setdefault((task.df_tag, set_tag), [])
        return position, len(position), position[column], task.id, rows, {}

    def _slow_row(self, slot: "_ElementSlot", record: tuple) -> list:
        position, width = slot[0], slot[1]
        row = [None] * width
        for name, value in record[3].items():
            at = position.get(name.lower()) if isinstance(name, str) else None
            if at is None or name.lower().endswith("_task_id") or name.lower() == "id":
                raise RecordRefused(self._missing_attribute(record, name))
            row[at] = value
        return row

    def _missing_attribute(self, record: tuple, name: object) -> str:
        set_tag = str(record[2]).lower()
        task = self._tasks.get(record[1])
        df_tag = task.df_tag if task is not None else "?"
        why = self.recall.refused_sets.get((df_tag, set_tag))
        grown = f" (the set could not grow: {why[1]})" if why is not None else ""
        return f"set {set_tag!r} of dataflow {df_tag!r} has no attribute {name!r}{grown}"

    def _insert_elements(self, conn: Connection, pending: dict[tuple[str, str], list]) -> None:
        for (df_tag, set_tag), flat in pending.items():
            if not flat:
                continue
            target = self._table(conn, df_tag, set_tag)
            if set_tag not in SUMMARIZED_SETS:
                insert_flat(conn, target, flat)
                continue
            # summarized in the same transaction as the rows, which need their ids: told by
            # SQLite, else sought above a bound below them
            after_id = (0 if self.dialect == "sqlite" else
                        self._summarizer.lower_bound(conn, target.table, target.position))
            ids = insert_flat(conn, target, flat)[1]
            self._summarizer.add(conn, target.table, target.position, set_tag, flat,
                                 self._exec_of, after_id, ids)

    # -- record kinds -----------------------------------------------------------------------
    def _on_spec(self, conn: Connection, df_tag: str, spec: dict) -> None:
        seen = str(df_tag).lower()
        if seen in self._dataflows and self._specs_seen.get(seen) == spec:
            return  # each run sends its dataflow's spec: the same one costs nothing again
        data = _lowered_spec(spec)
        df_tag = data["tag"]
        if self._remember:
            self.recall.specs[df_tag] = data
        wanted = _spec_of(self._without_refused_sets(data))
        known = self._dataflows.get(df_tag)
        if known is not None and not _grows(known.spec, wanted):
            self._specs_seen[df_tag] = copy.deepcopy(spec)
            return
        refused = self._save_spec(conn, data)[1]
        if not refused:
            self._specs_seen[df_tag] = copy.deepcopy(spec)  # the record's dict may change later
        if refused:
            raise RecordRefused(f"dataflow {df_tag!r}: " + "; ".join(
                f"set {tag!r} was not stored ({why})" for tag, why in refused.items())
                + "; the rest of the spec was stored")

    def _save_spec(self, conn: Connection, data: dict) -> tuple["_Dataflow", dict[str, str]]:
        """Merge the spec ``data`` into the store. A set whose table the store refuses (too many
        columns, ...) is left out and remembered with the reason (its elements are then refused
        with it), and the rest saved. Returns the dataflow and {refused set: reason}."""
        df_tag = data["tag"]
        wanted = _spec_of(self._without_refused_sets(data))
        refused: dict[str, str] = {}
        try:
            with conn.begin_nested():
                saved = save_spec(conn, wanted)
        except Exception as exc:  # noqa: BLE001 - sorted below: refusal or not
            if not is_refusal(exc):
                raise
            saved, refused = self._save_set_by_set(conn, self._without_refused_sets(data))
        found = self._dataflows[df_tag] = _Dataflow(*saved)
        for key in [k for k in self._tables if k[0] == df_tag]:
            del self._tables[key]
        return found, refused

    def _save_set_by_set(self, conn: Connection, data: dict):
        """Save the spec's sets one at a time (each in a savepoint), leaving out those the
        store refuses. Returns (saved dataflow, {refused set: reason})."""
        found = read_spec(conn, data["tag"])
        stored = found[2].sets if found is not None else {}
        fresh = [tag for tag, attributes in data["sets"].items()
                 if tag not in stored or not {a["name"] for a in attributes}
                 <= set(stored[tag].attributes)]
        accepted = set(data["sets"]) - set(fresh)
        saved, refused = None, {}
        for candidate in [None, *fresh]:
            keep = accepted | ({candidate} if candidate else set())
            try:
                with conn.begin_nested():
                    saved = save_spec(conn, _spec_of(_only_sets(data, keep)))
            except Exception as exc:  # noqa: BLE001
                if candidate is None or not is_refusal(exc):
                    raise
                refused[candidate] = reason_of(exc)
                names = frozenset(a["name"] for a in data["sets"][candidate])
                self.recall.refused_sets[data["tag"], candidate] = (names, refused[candidate])
                continue
            if candidate is not None:
                accepted.add(candidate)
        return saved, refused

    def _without_refused_sets(self, data: dict) -> dict:
        """``data`` without the sets refused before as they are now (a set refused and since
        grown is tried again)."""
        refused = self.recall.refused_sets
        if not refused:
            return data
        drop = set()
        for tag, attributes in data["sets"].items():
            before = refused.get((data["tag"], tag))
            if before is not None and {a["name"] for a in attributes} <= before[0]:
                drop.add(tag)
        return _only_sets(data, set(data["sets"]) - drop) if drop else data

    def _on_exec_start(self, conn: Connection, key: str, fields: dict) -> None:
        if self._remember:
            self.recall.execs[key] = fields
        fields = dict(fields)  # the record may yet be spooled: leave it as it was
        df_tag = str(fields.pop("df_tag")).lower()
        # Under torchrun every rank starts the same execution (same key, same tag) and any may
        # reach the store first: insert if absent; the leader's (rank 0's) start time, host,
        # pid and user then overwrite a follower's, never its status. A tag held by another
        # key still fails, as it does outside torchrun.
        leader = fields.pop("leader", True)
        tags = fields.pop("tags", None)
        dataflow = self._dataflow(conn, df_tag)
        table = s.dataflow_execution
        values = {"uuid": key, "df_id": dataflow.id, "df_version": dataflow.version,
                  "status": "running", **fields}
        upsert = st.insert(self._dialect, table, tuple(values), conflict=("uuid",),
                           overwrite=tuple(fields) if leader else (), returning=("id", "tag"))
        found = upsert.first(conn, values)
        if found is None:  # a follower's start, the execution already there
            found = st.select_by(self._dialect, table, ("id", "tag"), "uuid").one(
                conn, {"key": key})
        exec_id, tag = found
        self._execs[key] = _Exec(exec_id, tag, df_tag)
        if tags:
            self._set_tags(conn, exec_id, tags)

    def _on_annotation(self, conn: Connection, exec_tag: str, fields: dict) -> None:
        table = s.dataflow_execution
        found = conn.execute(select(table.c.id, table.c.notes)
                             .where(table.c.tag == exec_tag)).first()
        if found is None:
            raise RecordRefused(f"no execution {exec_tag!r} in the store to tag or annotate")
        if fields.get("tags"):
            self._set_tags(conn, found.id, fields["tags"])
        notes = fields.get("notes")
        if notes is not None:
            if fields.get("append") and found.notes:
                notes = f"{found.notes}\n{notes}"
            conn.execute(update(table).where(table.c.id == found.id).values(notes=notes))

    def _set_tags(self, conn: Connection, exec_id: int, tags: dict) -> None:
        """Set (or, where the value is None, remove) the execution's tags."""
        table = s.execution_tag
        gone = [k for k, v in tags.items() if v is None]
        if gone:
            conn.execute(table.delete().where(table.c.exec_id == exec_id,
                                              table.c.key.in_(gone)))
        rows = [{"exec_id": exec_id, "key": k, "value": v} for k, v in tags.items()
                if v is not None]
        if rows:
            insert = self._dialect_insert(table)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[table.c.exec_id, table.c.key],
                set_={"value": insert.excluded.value}), rows)

    def _on_exec_end(self, conn: Connection, key: str, fields: dict) -> None:
        execution = self._exec(conn, key)
        # The spec may have grown since the execution started (sets inferred from their first
        # element): the execution ran under the version its last records needed.
        version = self._dataflow(conn, execution.df_tag).version
        self._update(conn, s.dataflow_execution, execution.id,
                     {**fields, "df_version": version})
        if self._remember:
            self.recall.forget_execution(key)

    def _on_task_start(self, conn: Connection, key: str, fields: dict) -> None:
        if self._remember:
            self.recall.tasks[key] = fields
        fields = dict(fields)
        execution = self._exec(conn, fields.pop("exec_key"))
        transformation = str(fields.pop("transformation")).lower()
        depends_on = [self._task(conn, k).id for k in fields.pop("depends_on", ())]
        dataflow = self._dataflow(conn, execution.df_tag)
        try:
            dt_id = self._catalogue_id(conn, s.data_transformation, execution.df_tag,
                                       transformation)
        except NoResultFound:
            raise RecordRefused(f"transformation {transformation!r} is not in dataflow "
                                f"{execution.df_tag!r}'s spec") from None
        # Insert if absent: a start sent again (see Recall) or by a forked child finds it there.
        values = {"uuid": key, "df_exec": execution.tag, "exec_id": execution.id,
                  "df_version": dataflow.version, "dt_id": dt_id, **fields}
        task_id = st.insert(self._dialect, s.task, tuple(values), conflict=("uuid",),
                            returning=("id",)).scalar(conn, values)
        if task_id is None:  # a start sent again: the task is there
            task_id = st.select_by(self._dialect, s.task, ("id",), "uuid").one(
                conn, {"key": key})[0]
        self._tasks[key] = _Task(task_id, transformation, execution.df_tag, execution.id)
        st.insert(self._dialect, s.task_dependency, ("task_id", "depends_on_id"), conflict=()
                  ).execute_many(conn, [{"task_id": task_id, "depends_on_id": d}
                                        for d in depends_on])

    def _on_task_end(self, conn: Connection, key: str, fields: dict) -> None:
        self._update(conn, s.task, self._task(conn, key).id, fields)

    def _update(self, conn: Connection, table: Table, row_id: int, fields: dict) -> None:
        """``UPDATE table SET fields WHERE id = row_id`` (fields no column takes left out)."""
        statement = st.update_by_id(self._dialect, table, tuple(fields))
        if len(statement.names) > 1:  # something to set
            statement.execute(conn, {**fields, "row_id": row_id})

    def _on_use(self, conn: Connection, consumer_key: str, producer_key: str,
                set_tags: list[str]) -> None:
        consumer, producer = self._task(conn, consumer_key), self._task(conn, producer_key)
        # Every lookup first: a refused USE must leave nothing of itself behind.
        tables = [(tag.lower(), self._table(conn, producer.df_tag, tag.lower()).table)
                  for tag in set_tags]
        usage = []
        for set_tag, table in tables:
            mine, theirs = (table.c.get(task_column(t.transformation))
                            for t in (consumer, producer))
            if mine is None or theirs is None:
                raise RecordRefused(f"set {set_tag!r} has no column for transformation "
                                    f"{consumer.transformation!r} or {producer.transformation!r}")
            usage.append((set_tag, table, mine, theirs))
        rows = []
        for set_tag, table, mine, theirs in usage:
            # As the original: the consumer's id goes on the rows it used that no task of its
            # transformation used before; task_usage keeps every consumer.
            _use_statement(self._dialect, table, mine, theirs).execute(
                conn, {"producer": producer.id, "consumer": consumer.id})
            rows.append({"task_id": consumer.id, "producer_task_id": producer.id,
                         "ds_id": self._catalogue_id(conn, s.data_set, producer.df_tag, set_tag)})
        st.insert(self._dialect, s.task_usage, ("task_id", "producer_task_id", "ds_id"),
                  conflict=()).execute_many(conn, rows)

    def _on_environment(self, conn: Connection, key: str, fields: dict) -> None:
        fields = dict(fields)
        exec_id = self._exec(conn, key).id
        # git's user.email, asked on the probe's thread: the agent's e-mail if none was given
        email = fields.pop("agent_email", None)
        if email:
            execution = s.dataflow_execution
            st.prepare(self._dialect, ("agent email",), lambda: update(execution).where(
                execution.c.id == bindparam("row_id", type_=execution.c.id.type),
                execution.c.email.is_(None)).values(
                    email=bindparam("email", type_=execution.c.email.type))
            ).execute(conn, {"row_id": exec_id, "email": email})
        values = {"exec_id": exec_id, **fields}
        st.insert(self._dialect, s.environment, tuple(values), conflict=()).execute(conn, values)

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
            found = read_spec(conn, df_tag)
            if found is None:  # new here; a store that lost it gets the spec remembered
                return self._save_spec(conn, self.recall.specs.get(df_tag)
                                       or DataflowSpec(df_tag).to_dict())[0]
            known = self._dataflows[df_tag] = _Dataflow(*found)
        return known

    def _table(self, conn: Connection, df_tag: str, set_tag: str) -> SetTable:
        key = (df_tag, set_tag)
        found = self._tables.get(key)
        if found is None:
            spec = self._dataflow(conn, df_tag).spec
            if set_tag not in spec.sets:
                why = self.recall.refused_sets.get(key)
                raise RecordRefused(
                    f"set {set_tag!r} of dataflow {df_tag!r} could not be created: {why[1]}"
                    if why is not None else
                    f"set {set_tag!r} is not in dataflow {df_tag!r}'s spec")
            table = s.set_table(self.dialect, spec, set_tag)
            server_types = (server_column_types(conn, table) if self.dialect == "postgresql"
                            else None)
            found = self._tables[key] = SetTable.of(table, conn.dialect, server_types)
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
                .where(s.dataflow_execution.c.uuid == key)).first()
            if row is None:
                self._restore(conn, "execution", key, self.recall.execs, self._on_exec_start)
                return self._execs[key]
            found = self._execs[key] = _Exec(*row)
        return found

    def _task(self, conn: Connection, key: str) -> _Task:
        found = self._tasks.get(key)
        if found is None:
            row = conn.execute(
                select(s.task.c.id, s.data_transformation.c.tag, s.dataflow.c.tag,
                       s.task.c.exec_id)
                .join(s.data_transformation, s.data_transformation.c.id == s.task.c.dt_id)
                .join(s.dataflow, s.dataflow.c.id == s.data_transformation.c.df_id)
                .where(s.task.c.uuid == key)).first()
            if row is None:
                self._restore(conn, "task", key, self.recall.tasks, self._on_task_start)
                return self._tasks[key]
            found = self._tasks[key] = _Task(*row)
        return found

    def _restore(self, conn: Connection, kind: str, key: str, starts: dict, start) -> None:
        """The store lacks execution or task ``key``: write its start again if this process
        remembers it (the store file was replaced, or a parent process's start is late), else
        refuse the record that needs it."""
        refused = self.recall.refused_keys.get(key)
        if refused is not None:
            raise RecordRefused(f"{kind} {key} was refused by the store: {refused}")
        fields = starts.get(key)
        if fields is None:
            raise RecordRefused(f"{kind} {key} is not in the store: its start was not written "
                                f"there (refused, or written to a store file since replaced)")
        try:
            start(conn, key, fields)
        except RecordRefused as refusal:
            self.recall.refused_keys[key] = str(refusal)
            raise
        self.recall.resent.append(f"{kind} {key}")

    def _dialect_insert(self, table: Table):
        """The backend's INSERT, the one with ``on_conflict_do_*``."""
        return st.dialect_insert(self._dialect, table)

    def _insert_ignore(self, table: Table):
        return self._dialect_insert(table).on_conflict_do_nothing()


def _use_statement(dialect, table: Table, mine, theirs) -> st.Prepared:
    """``UPDATE set table SET mine = :consumer WHERE theirs = :producer AND mine IS NULL``."""
    return st.prepare(dialect, ("use", table.fullname, mine.name, theirs.name), lambda: (
        update(table).where(theirs == bindparam("producer", type_=theirs.type), mine.is_(None))
        .values({mine: bindparam("consumer", type_=mine.type)})))


def _first_of_each(batches: list, claimed: set[str]) -> list:
    """The batches to apply: those without an id, and the first of each id claimed now (a
    batch kept in two places is applied once)."""
    todo, seen = [], set()
    for batch_id, records in batches:
        if batch_id is None or (batch_id in claimed and batch_id not in seen):
            todo.append((batch_id, records))
            if batch_id is not None:
                seen.add(batch_id)
    return todo


def _lowered_spec(spec: dict) -> dict:
    """A spec snapshot with every name lower-cased, as the store keeps them."""
    try:
        return {
            "tag": str(spec["tag"]).lower(),
            "transformations": [str(t).lower() for t in spec.get("transformations", [])],
            "sets": {str(tag).lower(): [{**a, "name": str(a["name"]).lower()} for a in attributes]
                     for tag, attributes in spec.get("sets", {}).items()},
            "dependencies": [[None if p is None else str(p).lower(),
                              None if f is None else str(f).lower(), str(t).lower()]
                             for p, f, t in spec.get("dependencies", [])],
            # the tag as first written (KerasProv-example): dataflow.label, shown by readers
            **({"label": str(spec["label"])} if spec.get("label") else {}),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordRefused(f"not a dataflow spec ({type(exc).__name__}: {exc})") from None


def _only_sets(data: dict, keep: set[str]) -> dict:
    """The spec ``data`` with only the sets in ``keep`` (and their dependencies)."""
    return {**data, "sets": {t: a for t, a in data["sets"].items() if t in keep},
            "dependencies": [d for d in data["dependencies"] if d[2] in keep]}


def _spec_of(data: dict) -> DataflowSpec:
    try:
        return DataflowSpec.from_dict(data)
    except (DlprovError, KeyError, TypeError, ValueError) as exc:
        raise RecordRefused(f"dataflow {data.get('tag')!r}: the spec is refused: {exc}") from None


def _grows(known: DataflowSpec, wanted: DataflowSpec) -> bool:
    try:
        return known.copy().merge(wanted)
    except DlprovError as exc:  # e.g. an attribute's type changed
        raise RecordRefused(str(exc)) from None
