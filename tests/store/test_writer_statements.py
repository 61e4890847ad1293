"""The writer's driver-level statements (dlprov.store.statements) store what SQLAlchemy would.

A run with every field of every fixed table filled is written by the writer; each row is then
compared, as the driver reads it (SQLite's datetime text, JSON text, 0/1 booleans), with the row
SQLAlchemy Core stores for the same values in a twin table, and, as SQLAlchemy reads it, with
the values recorded. On SQLite and on the real PostgreSQL server.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import Column, MetaData, Table, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from dlprov.model import records as r
from dlprov.model.spec import Attribute, DataflowSpec
from dlprov.store import schema as s
from dlprov.store import statements
from dlprov.store.refusal import is_refusal
from dlprov.store.store import Store
from tests.conftest import postgresql_home

EXEC, TRAIN, TEST = "e" * 32, "a" * 32, "b" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """(store, dataflow tag): a dataflow's schema on PostgreSQL is dropped after the test."""
    if request.param == "sqlite":
        found = Store(f"sqlite:///{tmp_path / 'store.db'}")
        yield found, "wst"
        found.dispose()
        return
    with postgresql_home("wst") as (url, home):
        found = Store(url)
        yield found, f"{home}_df"
        found.dispose()


def spec_of(df_tag: str) -> DataflowSpec:
    spec = DataflowSpec(df_tag)
    spec.add_set("otrain", [Attribute("epoch", "numeric"), Attribute("loss", "numeric")])
    spec.add_role("train", "otrain", "output")
    spec.add_role("test", "otrain", "input", producer="train")
    return spec


EXEC_FIELDS = {"tag": "wst-run-1", "start_time": datetime(2026, 3, 4, 5, 6, 7),  # no microseconds
               "hostname": "node7", "pid": 4242, "workspace": "/w/space",
               "username": "ada", "email": None, "organization": "lab", "notes": "first try"}
TASK_FIELDS = {"identifier": 1, "sub_id": "s-1", "status": "running",
               "start_time": datetime(2026, 3, 4, 5, 6, 8, 1), "workspace": "/w/task",
               "computing_resource": "gpu-node", "pid": 4243, "rank": 0}
TASK_END = {"status": "finished", "end_time": datetime(2026, 3, 4, 5, 7, 0, 999999),
            "error_msg": "none, really", "output_msg": "done\nwell"}
ENVIRONMENT = {"hostname": "node7", "os": "Linux", "os_version": "6.1", "platform": "linux-x",
               "architecture": "x86_64", "processor": "cpu", "cpu_count": 16,
               "memory_bytes": 2**40, "in_container": True,
               "gpus": [{"name": "H200", "memory": 141}], "python_version": "3.11.7",
               "python_implementation": "CPython", "packages": {"torch": "2.13.0"},
               "git_commit": "c" * 40, "git_dirty": False, "git_repository": "/repo",
               "command_line": "python train.py --lr 0.1", "git_patch": "diff --git a b"}
EXEC_END = {"status": "finished", "end_time": datetime(2026, 3, 4, 6, 0, 0, 5),
            "error_msg": "nothing"}


def run_records(df_tag: str, run: int = 1) -> list[tuple]:
    """The records of run number ``run`` (1: the keys EXEC, TRAIN, TEST)."""
    if run != 1:
        keys = {key: f"{run:08x}{key[8:]}" for key in (EXEC, TRAIN, TEST)}
        return [_rekeyed(record, keys, run) for record in run_records(df_tag)]
    return [
        (r.SPEC, df_tag, spec_of(df_tag).to_dict()),
        (r.EXEC_START, EXEC, {**EXEC_FIELDS, "df_tag": df_tag, "tags": {"k": "v"}}),
        (r.ENVIRONMENT, EXEC, {**ENVIRONMENT, "agent_email": "ada@lab"}),
        (r.TASK_START, TRAIN, {**TASK_FIELDS, "exec_key": EXEC, "transformation": "train",
                               "depends_on": []}),
        (r.ELEMENT, TRAIN, "otrain", {"epoch": 1.0, "loss": 0.5}),
        (r.TASK_END, TRAIN, TASK_END),
        (r.TASK_START, TEST, {**TASK_FIELDS, "identifier": 2, "exec_key": EXEC,
                              "transformation": "test", "depends_on": [TRAIN]}),
        (r.USE, TEST, TRAIN, ["otrain"]),
        (r.TASK_END, TEST, TASK_END),
        (r.EXEC_END, EXEC, EXEC_END),
    ]


def _rekeyed(record: tuple, keys: dict[str, str], run: int) -> tuple:
    kind, key, *rest = record
    if kind == r.SPEC:
        return record
    if kind == r.USE:
        return (kind, keys[key], keys[rest[0]], rest[1])
    if kind in (r.EXEC_START, r.TASK_START):
        fields = dict(rest[0])
        if kind == r.EXEC_START:
            fields["tag"] = f"wst-run-{run}"
        else:
            fields["exec_key"] = keys[fields["exec_key"]]
            fields["depends_on"] = [keys[k] for k in fields["depends_on"]]
        rest = [fields]
    return (kind, keys[key], *rest)


def twin_rows(conn, table: Table, values: dict) -> list[tuple]:
    """The row SQLAlchemy Core stores for ``values`` in a table of ``table``'s column types, as
    the driver reads it back."""
    twin = Table(f"twin_{table.name}", MetaData(),
                 *(Column(name, table.c[name].type) for name in values))
    twin.create(conn)
    conn.execute(twin.insert(), values)
    found = conn.exec_driver_sql(f"SELECT {', '.join(values)} FROM {twin.name}").all()
    twin.drop(conn)
    return [tuple(row) for row in found]


def stored(conn, table: Table, values: dict, key: tuple[str, object]) -> tuple[list, list]:
    """The row of ``table`` whose column ``key[0]`` is ``key[1]``, restricted to the columns of
    ``values``: as the driver reads it, and as SQLAlchemy reads it."""
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    raw = conn.exec_driver_sql(f"SELECT {', '.join(values)} FROM {table.name} "
                               f"WHERE {key[0]} = {marker}", (key[1],)).all()
    typed = conn.execute(select(*(table.c[n] for n in values))
                         .where(table.c[key[0]] == key[1])).all()
    return [tuple(row) for row in raw], [tuple(row) for row in typed]


def test_rows_read_back_as_sqlalchemy_stores_them(store):
    store, df_tag = store
    records = run_records(df_tag)
    assert store.writer().write_batches([(uuid.uuid4().hex, records)]) == len(records)
    with store.engine().begin() as conn:
        exec_id, df_id = conn.execute(select(s.dataflow_execution.c.id,
                                             s.dataflow_execution.c.df_id)).one()
        task_ids = dict(conn.execute(select(s.task.c.uuid, s.task.c.id)).all())
        test_id, train_id = task_ids[TEST], task_ids[TRAIN]
        expected = {
            s.dataflow_execution: ({**EXEC_FIELDS, **EXEC_END, "email": "ada@lab", "uuid": EXEC,
                                    "df_id": df_id, "df_version": 1}, ("uuid", EXEC)),
            s.task: ({**TASK_FIELDS, **TASK_END, "uuid": TEST, "identifier": 2,
                      "df_exec": "wst-run-1", "exec_id": exec_id}, ("uuid", TEST)),
            s.environment: ({**ENVIRONMENT, "exec_id": exec_id}, ("exec_id", exec_id)),
            s.task_dependency: ({"task_id": test_id, "depends_on_id": train_id},
                                ("task_id", test_id)),
            s.task_usage: ({"task_id": test_id, "producer_task_id": train_id},
                           ("task_id", test_id)),
        }
        for table, (values, key) in expected.items():
            raw, typed = stored(conn, table, values, key)
            assert raw == twin_rows(conn, table, values), table.name
            assert typed == [tuple(values.values())], table.name
        assert isinstance(conn.execute(select(s.applied_batch.c.applied_at)).scalar_one(),
                          datetime)
        otrain = s.set_table(conn.dialect.name, spec_of(df_tag), "otrain")
        assert conn.execute(select(otrain.c.test_task_id)).scalar_one() == test_id


def statements_sent(store: Store) -> list[str]:
    """The statements of the store's engine from now on (a list that grows): SQLAlchemy's and
    those the writer runs at driver level."""
    seen: list[str] = []
    event.listen(store.engine(), "before_cursor_execute",
                 lambda _c, _cur, sql, *_: seen.append(sql))
    return seen


def test_a_warm_writer_compiles_nothing_and_reads_no_catalogue(store):
    store, df_tag = store
    writer = store.writer()
    writer.write_batches([(uuid.uuid4().hex, run_records(df_tag, 1))])
    compiled = dict(statements._cache)
    seen = statements_sent(store)
    with statements.observe(lambda sql, *_: seen.append(sql)):
        for run in (2, 3):
            writer.write_batches([(uuid.uuid4().hex, run_records(df_tag, run))])
    assert any(sql.startswith("INSERT INTO task ") for sql in seen)  # the writer's were seen
    assert statements._cache == compiled  # every statement of runs 2 and 3 was compiled before
    catalogue = ("sqlite_master", "pragma", "information_schema", "pg_catalog", "pg_class")
    assert not [sql for sql in seen if any(word in sql.lower() for word in catalogue)]
    with store.engine().begin() as conn:
        assert conn.execute(select(s.task.c.status)).scalars().all() == ["finished"] * 6


@pytest.mark.parametrize("bad", [{"end_time": "not a date"}, {"status": None}])
def test_a_value_the_store_cannot_take_is_a_refusal_and_nothing_is_kept(store, bad):
    store, df_tag = store
    writer = store.writer()
    records = run_records(df_tag)
    writer.write_batches([(uuid.uuid4().hex, records[:4])])  # up to the train task's start
    with pytest.raises(Exception) as refused:
        writer.apply_batches([(uuid.uuid4().hex, [(r.TASK_END, TRAIN, {**TASK_END, **bad})])])
    assert is_refusal(refused.value), refused.value
    with store.engine().begin() as conn:
        assert conn.execute(select(s.task.c.status, s.task.c.end_time)).all() == [
            ("running", None)]
        assert conn.execute(select(s.applied_batch.c.batch_id)).scalars().all() != []


def test_fields_no_column_takes_are_left_out_as_sqlalchemy_leaves_them(store):
    store, df_tag = store
    records = run_records(df_tag)[:4]
    records.append((r.TASK_END, TRAIN, {**TASK_END, "not_a_column": 1}))
    records.append((r.TASK_END, TRAIN, {"not_a_column": 2}))  # nothing to set: nothing done
    store.writer().write_batches([(None, records)])
    with store.engine().begin() as conn:
        assert conn.execute(select(s.task.c.status, s.task.c.output_msg)).all() == [
            ("finished", TASK_END["output_msg"])]


def test_the_summary_of_interleaved_tasks_names_each_ones_newest_element(store):
    store, df_tag = store
    records = run_records(df_tag)[:4]
    records.append((r.TASK_START, TEST, {**TASK_FIELDS, "identifier": 2, "exec_key": EXEC,
                                         "transformation": "train", "depends_on": []}))
    writer = store.writer()
    for writes in range(2):  # the second block's ids sought above the first's
        records += [(r.ELEMENT, key, "otrain", {"epoch": float(epoch), "loss": 1.0 / (epoch + 1)})
                    for epoch in range(5) for key in ((TRAIN, TEST) if epoch % 2 else (TRAIN,))]
        writer.write_batches([(None, records)])
        records = []
    with store.engine().begin() as conn:
        otrain = s.set_table(conn.dialect.name, spec_of(df_tag), "otrain")
        expected = {task: (count, newest) for task, count, newest in conn.execute(
            select(otrain.c.train_task_id, func.count(), func.max(otrain.c.id))
            .group_by(otrain.c.train_task_id))}
        summary = s.metric_summary
        found = {task: (n, latest_id) for task, n, latest_id in conn.execute(
            select(summary.c.task_id, summary.c.n, summary.c.latest_id)
            .where(summary.c.attribute == ""))}
        assert found == expected and len(found) == 2
        latest = conn.execute(select(summary.c.latest).where(
            summary.c.attribute == "loss", summary.c.task_id == min(found))).scalar_one()
        assert latest == 1.0 / 5


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it_naming_the_store(store):
    store, df_tag = store
    with pytest.raises(IntegrityError) as raised, store.engine().begin() as conn:
        for _ in range(2):
            statements.run(conn, "INSERT INTO dataflow (id, tag) VALUES (999, 'twice')")
    assert isinstance(raised.value.orig, conn.dialect.loaded_dbapi.IntegrityError)
    assert "INSERT INTO dataflow" in raised.value.statement
    assert any(note.startswith("dlprov store: ") for note in raised.value.__notes__)
    assert is_refusal(raised.value)
    with store.engine().begin() as conn:  # the transaction was rolled back, the engine works
        assert conn.execute(select(s.dataflow.c.id).where(s.dataflow.c.tag == "twice")
                            ).first() is None


def test_a_connection_the_server_dropped_is_invalidated_and_replaced(store):
    store, _ = store
    engine = store.engine()
    if engine.dialect.name != "postgresql":
        pytest.skip("a server-side disconnect needs a server")
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            other.commit()
        with pytest.raises(OperationalError) as raised:
            statements.run(conn, "SELECT 1")
        assert raised.value.connection_invalidated
        assert conn.invalidated
    with engine.connect() as conn:  # the pool opened a new connection
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
