"""The element write path (dlprov.store.bulk) stores every attribute type exactly, on SQLite and
on the real PostgreSQL server, where elements go through COPY: the same values as the
``executemany`` path it replaced, awkward text, NULLs and timestamps included; a batch it
refuses leaves nothing behind."""
from __future__ import annotations

import copy
import math
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError

import dlprov
from dlprov.model import records as r
from dlprov.model.spec import Attribute
from dlprov.store import schema as s
from dlprov.store import statements
from dlprov.store.bulk import (
    SetTable,
    _copyable,
    insert_rows,
    server_column_types,
    statement_sizes,
)
from dlprov.store.store import Store
from dlprov.store.writer import StoreWriter
from tests.conftest import postgresql_home

ATTRIBUTES = [Attribute("note", "text"), Attribute("path", "file"),
              Attribute("loss", "numeric", allow_nan=True), Attribute("at", "timestamp"),
              Attribute("doc", "json")]
NAMES = [a.name for a in ATTRIBUTES]

AWKWARD_TEXT = [
    "plain", "tab\there", "new\nline", "crlf\r\n", "back\\slash", "\\N", "\\.", "\\", "\\t",
    "quote ' and \"", "unicode é ß 中文 😀", "", "  spaces  ", "a,b;c|d", "\x01\x08\x0b\x0c\x7f",
    "x" * 20_000, "COPY t FROM STDIN;\n\\.\n",
]
VALUES: dict[str, list[Any]] = {
    "note": AWKWARD_TEXT,
    "path": ["/data/with space/and\ttab.pt", "C:\\models\\net.pt", "relative/ü.ckpt"],
    "loss": [0.1, -0.0, 5e-324, 1e-300, 1.7976931348623157e308, 123456789.12345679, -1.5, 3.0,
             math.inf, -math.inf, math.nan],
    "at": [datetime(2024, 1, 2, 3, 4, 5, 123456), datetime(1, 1, 1), datetime(2000, 2, 29),
           datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1970, 1, 1, 0, 0, 0, 1)],
    "doc": [{"a": [1, 2.5, None, True, "t\tb\\\"q\n"]}, [], {}, "a string", 42, [None],
            {"nested": {"emoji": "😀", "ctl": "\x01", "back": "\\N"}}, {"$datetime": "x"}],
}


def elements() -> list[dict[str, Any]]:
    """Every value above once, NULLs where a list is shorter, and one element of NULLs only."""
    count = max(len(values) for values in VALUES.values())
    found = [{name: values[i] if i < len(values) else None for name, values in VALUES.items()}
             for i in range(count)]
    return found + [dict.fromkeys(NAMES)]


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(store URL, dataflow tag) on each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "bulk.db"), "bulk"
        return
    with postgresql_home("bulk") as (url, schema):
        yield url, f"{schema}_df"


def capture(url: str, df_tag: str, rows: list[dict[str, Any]]) -> str:
    """``rows`` captured as elements of ``oval``; returns the task's key."""
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        run.declare_set("oval", ATTRIBUTES)
        with run.task("train") as train:
            for row in rows:
                train.output("oval", **row)
        assert run.recorder.rejected == 0
    return train.key


def stored(url: str, df_tag: str) -> list[tuple]:
    """The attributes of ``oval``'s rows, in insertion order, read through SQLAlchemy."""
    store = Store(url)
    table = s.set_table(store.backend, store.load_spec(df_tag), "oval")
    with store.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(*[table.c[name] for name in NAMES]).order_by(table.c.id))]


def same(found: Any, wanted: Any) -> bool:
    """Equal, NaN equal to NaN, and -0.0 told from 0.0."""
    if isinstance(found, float) and isinstance(wanted, float):
        if math.isnan(wanted):
            return math.isnan(found)
        return found == wanted and math.copysign(1, found) == math.copysign(1, wanted)
    return found == wanted


def test_every_attribute_type_and_awkward_text_are_stored_exactly(home) -> None:
    url, df_tag = home
    given = elements()
    capture(url, df_tag, given)
    rows = stored(url, df_tag)
    assert len(rows) == len(given)
    sqlite = not url.startswith("postgresql")
    for number, (row, element) in enumerate(zip(rows, given)):
        for name, found in zip(NAMES, row):
            wanted = element[name]
            if sqlite and name == "loss" and isinstance(wanted, float):
                if math.isnan(wanted):
                    wanted = None  # documented: SQLite has no NaN and stores NULL
                elif wanted == 0:
                    wanted = 0.0  # SQLite keeps a whole REAL as an integer: -0.0 loses its sign
            assert same(found, wanted), (number, name, found, wanted)


def test_copy_stores_what_executemany_stored(tmp_path: Path) -> None:
    """On PostgreSQL the same rows through COPY and through the driver's executemany (the
    path before COPY, still taken for values of other types) read back identically."""
    with postgresql_home("bulk") as (url, schema):
        df_tag = f"{schema}_df"
        capture(url, df_tag, elements()[:1])
        store = Store(url)
        table = s.set_table(store.backend, store.load_spec(df_tag), "oval")
        engine = store.engine()
        target = SetTable.of(table, engine.dialect)
        assert target.copy_sql is not None
        rows = []
        for element in elements():
            row = [None] * len(target.position)
            for name, value in element.items():
                row[target.position[name]] = value
            rows.append(row)
        with engine.begin() as conn:
            first = conn.execute(select(func.max(table.c.id))).scalar_one()
            assert insert_rows(conn, target, copy.deepcopy(rows)) is True  # by COPY
            assert insert_rows(conn, replace(target, copy_sql=None), copy.deepcopy(rows)) is False
        with engine.connect() as conn:
            found = conn.execute(select(*[table.c[name] for name in NAMES])
                                 .where(table.c.id > first).order_by(table.c.id)).all()
        by_copy, by_executemany = found[:len(rows)], found[len(rows):]
        assert len(by_copy) == len(by_executemany) == len(rows)
        for one, other in zip(by_copy, by_executemany):
            assert all(same(a, b) for a, b in zip(one, other)), (one, other)


PLAIN = ATTRIBUTES[:4]  # no JSON: every column of its table has a binary COPY form


def plain_home(url: str, df_tag: str) -> tuple[Store, SetTable, int]:
    """Set ``oplain`` made by a real run; (store, its SetTable as the writer makes it, the
    training task's id)."""
    with dlprov.run(df_tag, store=url, capture_environment=False) as run:
        run.declare_set("oplain", PLAIN)
        with run.task("train") as train:
            train.output("oplain", note="first")
    store = Store(url)
    table = s.set_table(store.backend, store.load_spec(df_tag), "oplain")
    with store.engine().connect() as conn:
        task_id = conn.execute(select(func.max(table.c.train_task_id))).scalar_one()
        target = SetTable.of(table, conn.dialect, server_column_types(conn, table))
    return store, target, task_id


def test_binary_copy_stores_what_executemany_stored() -> None:
    """A table whose every column has a binary form takes COPY's binary format: the same
    values as executemany's, NaN, infinities, -0.0, the extreme timestamps and text included."""
    with postgresql_home("bulk") as (url, schema):
        store, target, task_id = plain_home(url, f"{schema}_df")
        assert target.copy_binary == ("int4", "text", "text", "float8", "timestamp")
        assert target.copy_sql.endswith("(FORMAT BINARY)")
        table, names = target.table, [a.name for a in PLAIN]
        rows = []
        for element in elements():
            row = [None] * len(target.position)
            row[target.position["train_task_id"]] = task_id
            for name in names:
                row[target.position[name]] = element[name]
            rows.append(row)
        with store.engine().begin() as conn:
            first = conn.execute(select(func.max(table.c.id))).scalar_one()
            assert insert_rows(conn, target, copy.deepcopy(rows)) is True
            assert insert_rows(conn, replace(target, copy_sql=None), copy.deepcopy(rows)) is False
        with store.engine().connect() as conn:
            found = conn.execute(select(table.c.train_task_id, *[table.c[n] for n in names])
                                 .where(table.c.id > first).order_by(table.c.id)).all()
        by_copy, by_executemany = found[:len(rows)], found[len(rows):]
        assert len(by_copy) == len(by_executemany) == len(rows)
        for one, other in zip(by_copy, by_executemany):
            assert all(same(a, b) for a, b in zip(one, other)), (one, other)


def test_the_writer_copies_in_binary_and_integers_beyond_the_column_are_not_copied() -> None:
    """The writer's COPY of a plain set is binary; an integer its column cannot hold is not
    COPY's (the binary form would wrap it): executemany refuses it as before, nothing stored."""
    with postgresql_home("bulk") as (url, schema):
        df_tag = f"{schema}_df"
        store, target, task_id = plain_home(url, df_tag)
        sent = []
        with statements.observe(lambda sql, params, many: sent.append((sql, params))):
            with dlprov.run(df_tag, store=url, capture_environment=False) as run:
                with run.task("train") as train:
                    train.output("oplain", note="binary", loss=0.5)
        assert ("copy", (target.copy_sql, target.copy_binary)) in sent, sent
        assert "FORMAT BINARY" in target.copy_sql
        at = target.position["train_task_id"]

        def row(task: int) -> list:
            found = [None] * len(target.position)
            found[at] = task
            return found

        assert _copyable([row(2**31 - 1), row(-2**31)], target.copy_types, target.copy_binary)
        assert not _copyable([row(2**31)], target.copy_types, target.copy_binary)
        assert not _copyable([row(-2**31 - 1)], target.copy_types, target.copy_binary)
        assert _copyable([row(2**31)], target.copy_types)  # text: the server checks the range
        before = len(stored_plain(store, target))
        with pytest.raises(DataError, match="out of range"):
            with store.engine().begin() as conn:
                insert_rows(conn, target, [row(task_id), row(2**40)])
        assert len(stored_plain(store, target)) == before


def stored_plain(store: Store, target: SetTable) -> list[tuple]:
    with store.engine().connect() as conn:
        return conn.execute(select(target.table)).all()


def test_a_column_of_another_type_on_the_server_takes_copy_text() -> None:
    """A table whose column the server holds with another type than the spec would make (a
    store made or altered by other software) is copied as text, which the server parses."""
    with postgresql_home("bulk") as (url, schema):
        store, target, task_id = plain_home(url, f"{schema}_df")
        with store.engine().begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {schema}_df.oplain ALTER COLUMN loss TYPE numeric")
            altered = SetTable.of(target.table, conn.dialect,
                                  server_column_types(conn, target.table))
        assert altered.copy_binary is None and "BINARY" not in altered.copy_sql
        row = [None] * len(altered.position)
        row[altered.position["train_task_id"]] = task_id
        row[altered.position["loss"]] = 0.25
        with store.engine().begin() as conn:
            assert insert_rows(conn, altered, [row]) is True
        assert stored_plain(store, altered)[-1][altered.position["loss"] + 1] == 0.25


def test_a_column_altered_under_a_writer_loses_nothing() -> None:
    """A column the server's table changes type under a writer that copies it in binary: the
    COPY fails, the writer forgets what it knew and the recorder's retry copies as text; no
    record is refused or lost."""
    with postgresql_home("bulk") as (url, schema):
        df_tag = f"{schema}_df"
        store, target, _ = plain_home(url, df_tag)
        copies: list[str] = []
        with dlprov.run(df_tag, store=url, capture_environment=False) as run:
            with run.task("train") as train:
                train.output("oplain", note="before", loss=0.5)
                run.flush()
                with store.engine().begin() as conn:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {schema}_df.oplain ALTER COLUMN loss TYPE numeric")
                with statements.observe(lambda sql, params, many: copies.append(
                        params[0]) if sql == "copy" else None):
                    train.output("oplain", note="after", loss=0.75)
                    run.flush()
            assert run.recorder.rejected == 0
        # the writer's binary COPY was refused, then the retry's copied as text
        assert copies[0] == target.copy_sql and "BINARY" not in copies[-1], copies
        rows = stored_plain(store, target)
        at = target.position
        assert [(row[at["note"] + 1], float(row[at["loss"] + 1])) for row in rows[-2:]] == [
            ("before", 0.5), ("after", 0.75)]


def test_values_of_other_types_take_the_executemany_path_as_before() -> None:
    """An int in a numeric column, a datetime with a zone, text with NUL: not COPY's to take."""
    with postgresql_home("bulk") as (url, schema):
        df_tag = f"{schema}_df"
        capture(url, df_tag, elements()[:1])
        store = Store(url)
        table = s.set_table(store.backend, store.load_spec(df_tag), "oval")
        target = SetTable.of(table, store.engine().dialect)

        def row(**values: Any) -> list:
            found = [None] * len(target.position)
            for name, value in values.items():
                found[target.position[name]] = value
            return found

        assert _copyable([row(loss=1.5, note="n")], target.copy_types)
        assert not _copyable([row(loss=3)], target.copy_types)
        assert not _copyable([row(note="a\x00b")], target.copy_types)
        assert not _copyable([row(at=datetime(2024, 1, 1, tzinfo=timezone.utc))],
                             target.copy_types)
        with store.engine().begin() as conn:
            assert insert_rows(conn, target, [row(loss=3, note="int loss")]) is False
        assert stored(url, df_tag)[-1][:3] == ("int loss", None, 3.0)


def test_nul_in_text_is_kept_by_sqlite_and_refused_by_postgresql_whole_batch(home) -> None:
    url, df_tag = home
    task_key = capture(url, df_tag, [{"note": "first"}])
    writer = StoreWriter(Store(url).engine())
    batch = [(r.ELEMENT, task_key, "oval", {"note": "fine", "loss": 1.0}),
             (r.ELEMENT, task_key, "oval", {"note": "nul\x00inside", "loss": 2.0})]
    batch_id = uuid.uuid4().hex
    if url.startswith("postgresql"):
        with pytest.raises(DataError, match="NUL"):
            writer.write_batches([(batch_id, batch)])
        assert [row[0] for row in stored(url, df_tag)] == ["first"]
        assert writer.applied([batch_id]) == set()
    else:
        assert writer.write_batches([(batch_id, batch)]) == 2
        assert [row[0] for row in stored(url, df_tag)] == ["first", "fine", "nul\x00inside"]


def test_a_refused_batch_stores_nothing_and_a_replay_writes_once(home) -> None:
    """JSON with NaN is refused (PostgreSQL's json has no NaN; SQLite's JSON text neither)
    in the middle of a batch: none of it is stored; the good batch then writes exactly once."""
    url, df_tag = home
    task_key = capture(url, df_tag, [{"note": "first"}])
    writer = StoreWriter(Store(url).engine())
    good = [(r.ELEMENT, task_key, "oval", {"note": f"n{i}", "loss": float(i)})
            for i in range(50)]
    bad = good[:25] + [(r.ELEMENT, task_key, "oval", {"doc": {"x": math.nan}})] + good[25:]
    batch_id = uuid.uuid4().hex
    with pytest.raises((DataError, ValueError)):
        writer.write_batches([(batch_id, bad)])
    assert len(stored(url, df_tag)) == 1
    assert writer.write_batches([(batch_id, good)]) == 50
    assert writer.write_batches([(batch_id, good)]) == 0  # already applied: skipped
    rows = stored(url, df_tag)
    assert [row[0] for row in rows] == ["first"] + [f"n{i}" for i in range(50)]
    assert [row[2] for row in rows[1:]] == [float(i) for i in range(50)]


def test_sqlite_multirow_statements_keep_every_row_in_order(tmp_path: Path) -> None:
    """A batch of more rows than one SQLite statement may bind (its variable limit over the row
    width), in mixed attribute orders and cases, with values a float column must convert,
    is stored whole and in order."""
    url = str(tmp_path / "many.db")
    rows = 3 * (32_766 // 4) + 7  # 4 columns: train_task_id, step, loss, note
    with dlprov.run("many", store=url, capture_environment=False) as run:
        with run.task("train") as train:
            for i in range(rows):
                if i % 3 == 0:
                    train.output("omany", step=i, loss=i / 2, note=f"n{i}")
                elif i % 3 == 1:
                    train.output("omany", note=f"n{i}", loss=i / 2, step=i)
                else:
                    train.output("omany", STEP=i, Loss=i / 2)  # another case: the slow path
        run.flush(timeout=120)
        assert run.recorder.rejected == 0
    store = Store(url)
    table = s.set_table(store.backend, store.load_spec("many"), "omany")
    with store.engine().connect() as conn:
        found = conn.execute(select(table.c.step, table.c.loss, table.c.note,
                                    table.c.train_task_id).order_by(table.c.id)).all()
    assert [row[0] for row in found] == list(range(rows))
    assert all(row[1] == i / 2 for i, row in enumerate(found))
    assert [row[2] for row in found[:4]] == ["n0", "n1", None, "n3"]
    assert {row[3] for row in found} == {found[0][3]} and found[0][3] is not None


@pytest.mark.parametrize("rows, fit", [(0, 100), (1, 100), (7, 100), (900, 4681),
                                       (5000, 4681), (4681, 4681), (10, 3), (5, 0), (3, 1)])
def test_statement_sizes_are_few_powers_of_two_that_add_up(rows: int, fit: int) -> None:
    sizes = statement_sizes(rows, fit)
    assert sum(sizes) == rows
    assert all(size & (size - 1) == 0 and 1 <= size <= max(fit, 1) for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    largest = max(sizes, default=1)
    assert len(sizes) <= rows // largest + largest.bit_length()


def test_batches_of_every_size_reuse_a_few_statements_and_keep_their_ids(
        tmp_path: Path) -> None:
    """A recorder's batches have a new row count each time; each count as one statement would
    be prepared anew (preparing a statement of 900 rows costs ~6x executing it). The rows go
    as statements of power-of-two row counts, in order, and the metric summary, which takes
    the rows' ids from the last statement's, counts them all."""
    url = str(tmp_path / "sizes.db")
    writer = Store(url).writer()
    with dlprov.run("sizes", store=url, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=-1, loss=0.0)
        run.flush()
    inserts: list[str] = []
    written = 0
    with statements.observe(lambda sql, params, many: inserts.append(sql)
                            if sql.startswith("INSERT INTO sizes__otrain ") else None):
        for count in (3, 900, 901, 1500, 37):
            batch = [(r.ELEMENT, train.key, "otrain", {"epoch": written + i, "loss": 0.5})
                     for i in range(count)]
            writer.write_batches([(uuid.uuid4().hex, batch)])
            written += count
    per_statement = {sql.count("(?") for sql in inserts}
    assert inserts and all(n & (n - 1) == 0 for n in per_statement), sorted(per_statement)
    assert len(set(inserts)) == len(per_statement) <= 11
    store = Store(url)
    table = s.set_table(store.backend, store.load_spec("sizes"), "otrain")
    with store.engine().connect() as conn:
        epochs = conn.execute(select(table.c.epoch).order_by(table.c.id)).scalars().all()
        last_id = conn.execute(select(func.max(table.c.id))).scalar_one()
        summary = conn.execute(select(s.metric_summary.c.n, s.metric_summary.c.latest_id)
                               .where(s.metric_summary.c.attribute == "loss")).all()
    assert epochs == [-1, *range(written)]
    assert [tuple(row) for row in summary] == [(written + 1, last_id)]


def test_elements_naming_a_task_column_are_refused_alone(tmp_path: Path) -> None:
    """An element that gives a value for a task column is set aside by the writer; the elements
    around it are written."""
    url = str(tmp_path / "taskcol.db")
    with dlprov.run("taskcol", store=url, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otc", step=0)
        key = train.key
    writer = Store(url).writer()
    applied = writer.apply_batches([(None, [
        (r.ELEMENT, key, "otc", {"step": 1}),
        (r.ELEMENT, key, "otc", {"step": 2, "train_task_id": 99}),
        (r.ELEMENT, key, "otc", {"step": 3})])])
    assert applied.written == 2 and len(applied.refused) == 1
    assert "train_task_id" in applied.refused[0][1]
    store = Store(url)
    table = s.set_table(store.backend, store.load_spec("taskcol"), "otc")
    with store.engine().connect() as conn:
        assert conn.execute(select(table.c.step).order_by(table.c.id)).scalars().all() == [0, 1, 3]
