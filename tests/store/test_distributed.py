"""The store's side of torchrun: one execution started by every rank (rank 0's fields win), and
the ``task.rank`` column added to stores made before it. SQLite and the real PostgreSQL."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from dlprov.model import records as r
from dlprov.model.spec import DataflowSpec
from dlprov.store import schema as s
from dlprov.store.store import Store
from dlprov.store.writer import StoreWriter
from tests.conftest import postgresql_home


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        found = Store(tmp_path / "dlprov.db")
        yield found
        found.dispose()
        return
    with postgresql_home("dist") as (url, _):
        found = Store(url)
        yield found
        found.dispose()


def spec() -> tuple:
    found = DataflowSpec("ddp")
    found.add_transformation("train")
    return (r.SPEC, "ddp", found.to_dict())


def start(rank: int, key: str = "k" * 32) -> tuple:
    fields = {"tag": "ddp-shared", "df_tag": "ddp", "start_time": datetime(2025, 1, 1, 0, rank),
              "hostname": f"node{rank}", "pid": 1000 + rank, "workspace": "/w",
              "username": "u", "email": None, "organization": None}
    return (r.EXEC_START, key, {**fields, **({"leader": False} if rank else {})})


def task(rank: int, key: str) -> tuple:
    return (r.TASK_START, key, {"exec_key": "k" * 32, "transformation": "train",
                                "identifier": rank + 1, "sub_id": None, "status": "running",
                                "start_time": datetime.now(), "workspace": "/w",
                                "computing_resource": f"node{rank}", "depends_on": [],
                                "rank": rank})


def execution(store: Store) -> list[tuple]:
    e, t = s.dataflow_execution, s.task
    with store.read() as conn:
        return [tuple(row) for row in conn.execute(
            select(e.c.tag, e.c.hostname, e.c.pid, e.c.status, t.c.rank, t.c.computing_resource)
            .join(t, t.c.exec_id == e.c.id).order_by(t.c.rank))]


@pytest.mark.parametrize("first", [0, 1])
def test_every_rank_starts_one_execution_rank_zeros_fields_win(store, first) -> None:
    writers = {rank: StoreWriter(store.engine()) for rank in (0, 1)}  # one per process
    for rank in (first, 1 - first):
        writers[rank].write([spec(), start(rank), task(rank, f"{rank}" * 32)])
    writers[0].write([(r.EXEC_END, "k" * 32, {"status": "finished", "end_time": datetime.now(),
                                              "error_msg": None})])
    assert execution(store) == [("ddp-shared", "node0", 1000, "finished", 0, "node0"),
                                ("ddp-shared", "node0", 1000, "finished", 1, "node1")]


def test_a_tag_held_by_another_execution_still_fails(store) -> None:
    writer = StoreWriter(store.engine())
    writer.write([start(0)])
    with pytest.raises(Exception, match="(?i)unique"):
        writer.write([start(1, key="j" * 32)])
    with store.read() as conn:
        assert conn.execute(select(s.dataflow_execution.c.uuid)).scalars().all() == ["k" * 32]


def test_a_store_made_before_task_rank_gets_it_on_open(store) -> None:
    writer = StoreWriter(store.engine())
    writer.write([spec(), start(0), task(0, "0" * 32)])
    engine = store.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE task DROP COLUMN rank")
    store.dispose()

    older = Store(store.url)  # a new process opening the old store
    try:
        assert not older._schema_present(older.engine(read_only=True))
        older.engine()  # the first writer upgrades it
        assert older._schema_present(older.engine(read_only=True))
        with older.engine().begin() as conn:
            assert s.add_missing_columns(conn) == []  # a second upgrade finds nothing to do
        with older.read() as conn:
            assert conn.execute(select(s.task.c.uuid, s.task.c.rank)).all() == [("0" * 32, None)]
    finally:
        older.dispose()
