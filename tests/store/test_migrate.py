"""`dlprov migrate`: a store filled by the capture API, copied SQLite → PostgreSQL → SQLite."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, select

import dlprov
from dlprov.cli.main import cli
from dlprov.demo.workflow import LISTING_4
from dlprov.store import schema as s
from dlprov.store.migrate import MigrationRefused, migrate
from dlprov.store.specs import read_spec
from dlprov.store.store import Store
from tests.conftest import postgresql_home


def fill(store: str, df_tag: str, tmp_path: Path) -> None:
    """Two runs with a model each; the second run's test task fails."""
    for number, (rate, accuracies) in enumerate({0.1: [0.5, 0.7], 0.01: [0.8, 0.9]}.items()):
        with dlprov.run(df_tag, store=store, capture_environment=False) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=rate)
                for epoch, accuracy in enumerate(accuracies, 1):
                    train.output("otrain", epoch=epoch, accuracy=accuracy, note="it's; DROP")
                model = tmp_path / f"model{number}.pt"
                model.write_bytes(b"weights %d" % number)
                train.model(model, name=f"mlp{number}")
            try:
                with run.task("test", depends_on=train) as test:
                    test.output("otest", accuracy=accuracies[-1])
                    if number:
                        raise RuntimeError("evaluation crashed")
            except RuntimeError:
                pass


def dump(store: str) -> dict[str, list[tuple]]:
    """Every row of every table, fixed and per set, as the store's own types read them."""
    found = Store(store)
    tables: dict[str, list[tuple]] = {}
    with found.read() as conn:
        for table in s.metadata.sorted_tables:
            tables[table.name] = [tuple(r) for r in conn.execute(
                select(table).order_by(*table.primary_key.columns))]
        for df_tag in conn.execute(select(s.dataflow.c.tag)).scalars().all():
            spec = read_spec(conn, df_tag)[2]
            for set_tag in spec.sets:
                table = s.set_table(conn.dialect.name, spec, set_tag, MetaData())
                tables[f"{df_tag}.{set_tag}"] = [tuple(r) for r in conn.execute(
                    select(table).order_by(table.c.id))]
    found.dispose()
    return tables


def answers(store: str, df_tag: str):
    best = dlprov.sql(LISTING_4, store=store, dataflow=df_tag).records()
    runs = [{k: v for k, v in r.items() if k != "hostname"} for r in dlprov.list_runs(store)]
    return best, runs


def test_sqlite_to_postgresql_and_back(tmp_path: Path) -> None:
    with postgresql_home("mig") as (pg_url, home):
        df_tag = f"{home}_df"
        first = str(tmp_path / "first.db")
        fill(first, df_tag, tmp_path)
        report = migrate(first, pg_url)
        assert report.rows["task"] == 4 and report.rows[f"{df_tag}.otrain"] == 4
        assert answers(pg_url, df_tag) == answers(first, df_tag)
        [best], runs = answers(pg_url, df_tag)
        assert best["learning_rate"] == 0.01
        assert [r["failed_tasks"] for r in runs] == [1, 0]
        # the sequences moved past the copied ids: a new run writes beside the old ones
        with dlprov.run(df_tag, store=pg_url, capture_environment=False) as run:
            with run.task("train") as train:
                train.output("otrain", epoch=1, accuracy=0.1)
        assert len(dlprov.list_runs(pg_url)) == 3

        back = tmp_path / "back.db"
        result = CliRunner().invoke(cli, ["migrate", "--from", pg_url, "--to", str(back)])
        assert result.exit_code == 0, result.output
        assert "migrated" in result.output
        copied, original = dump(str(back)), dump(first)
        assert len(copied["dataflow_execution"]) == 3
        for name, rows in original.items():
            assert [r for r in copied[name] if r in rows] == rows, name
            assert len(copied[name]) - len(rows) <= 3, name  # the third run's rows only


def test_non_empty_target_is_refused_and_left_alone(tmp_path: Path) -> None:
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(first, "mnist", tmp_path)
    fill(second, "mnist", tmp_path)
    before = dump(second)
    with pytest.raises(MigrationRefused, match="not empty"):
        migrate(first, second)
    result = CliRunner().invoke(cli, ["migrate", "--from", first, "--to", second])
    assert result.exit_code == 1 and "not empty" in result.output
    assert dump(second) == before


def test_sqlite_to_sqlite_is_an_exact_copy(tmp_path: Path) -> None:
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(first, "mnist", tmp_path)
    migrate(first, second)
    assert dump(second) == dump(first)
