"""A record the store refuses is set aside with its reason; nothing else is held back, on SQLite
and PostgreSQL. Names are matched as stored, whatever their case. `dlprov replay` makes progress
on a file of refused records and says what it did."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.model import records as r
from dlprov.recorder.spool import Spool
from tests.recorder.stores import open_target


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path: Path):
    with open_target(request.param, tmp_path, "refuse") as found:
        yield found


def _kept(path: Path) -> list[tuple[tuple, str]]:
    return [item for _, items in Spool(path).refusals() for item in items]


def _wide_spec(run, set_tag: str, width: int) -> dict:
    """The run's spec with a set of ``width`` attributes produced by ``train``: more columns
    than either backend's table may have (a client that skips the capture API's checks)."""
    spec = run.book.snapshot()
    spec["sets"][set_tag] = [{"name": f"a{i}", "type": "numeric", "allow_nan": False}
                             for i in range(width)]
    spec["dependencies"].append(["train", None, set_tag])
    return spec


def test_a_set_the_store_cannot_make_refuses_its_elements_only(
        target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dlprov.recorder")
    with dlprov.run(target.df_tag, store=target.url, capture_environment=False) as run:
        with run.task("train") as train:
            for epoch in range(6):
                train.output("otrain", epoch=epoch, loss=1.0)
            run.put((r.SPEC, target.df_tag, _wide_spec(run, "wide", 3000)))
            for n in range(3):
                run.put((r.ELEMENT, train.key, "wide", {f"a{i}": float(n) for i in range(3000)}))
            assert run.flush()  # (a later snapshot of the capture API's own would supersede it)
            for epoch in range(6, 12):
                train.output("otrain", epoch=epoch, loss=1.0)
            train.output("later", x=1.0)  # a set made after the refused one still gets a table
    recorder = run.recorder
    assert run.flush()
    assert not recorder.spool, "a refusal is no outage: nothing may wait in the spool"
    assert target.scalar(f"SELECT count(*) FROM {target.table('otrain')}") == 12
    assert target.scalar(f"SELECT count(*) FROM {target.table('later')}") == 1
    assert target.scalar("SELECT status FROM dataflow_execution") == "finished"
    kept = _kept(recorder.rejected_path)
    assert [rec[0] for rec, _ in kept] == ["spec", "element", "element", "element"]
    assert all("wide" in why and "column" in why.lower() for _, why in kept), kept
    assert recorder.rejected == 4

    # Replaying the file while the cause stands: nothing written, said so, the file kept whole.
    result = CliRunner().invoke(cli, ["replay", "--store", target.url,
                                      str(recorder.rejected_path)])
    assert result.exit_code == 1
    assert "nothing written: the store refused all 4 records again" in result.output
    assert "replayed" not in result.output
    assert len(_kept(recorder.rejected_path)) == 4
    assert target.scalar(f"SELECT count(*) FROM {target.table('otrain')}") == 12


def test_names_in_any_case_land_in_the_lower_case_set(target) -> None:
    with dlprov.run(target.df_tag, store=target.url, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1)
            train.output("otrain", epoch=0, loss=1.0)
            assert run.flush()
            # As a DfAnalyzer client or an older dlprov may spell them (the paper's spelling)
            run.put((r.ELEMENT, train.key, "iTrain", {"Learning_Rate": 0.2}))
            run.put((r.ELEMENT, train.key, "OTRAIN", {"Epoch": 1.0, "LOSS": 0.5}))
    assert run.flush()
    assert run.recorder.rejected == 0
    assert target.rows(f"SELECT learning_rate FROM {target.table('itrain')} ORDER BY id") == [
        (0.1,), (0.2,)]
    assert target.rows(f"SELECT epoch, loss FROM {target.table('otrain')} ORDER BY id") == [
        (0.0, 1.0), (1.0, 0.5)]


def _refuse_big_losses(target) -> None:
    """The store answers but refuses elements with loss > 10 for their content."""
    from sqlalchemy import create_engine, text
    engine = create_engine(target.url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        if target.backend == "sqlite":
            conn.execute(text(f"CREATE TRIGGER picky BEFORE INSERT ON {target.table('otrain')} "
                              "WHEN NEW.loss > 10 BEGIN SELECT RAISE(ABORT, 'loss too big'); END"))
        else:
            conn.execute(text(f"ALTER TABLE {target.table('otrain')} ADD CONSTRAINT picky "
                              "CHECK (loss <= 10) NOT VALID"))
    engine.dispose()


def _accept_big_losses(target) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(target.url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER picky" if target.backend == "sqlite" else
                          f"ALTER TABLE {target.table('otrain')} DROP CONSTRAINT picky"))
    engine.dispose()


def test_refused_elements_are_replayed_once_the_cause_is_fixed(target) -> None:
    with dlprov.run(target.df_tag, store=target.url, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=1.0)
            assert run.flush()
            _refuse_big_losses(target)
            for epoch in range(1, 200):  # one batch, two refused records in it
                train.output("otrain", epoch=epoch, loss=50.0 if epoch in (40, 170) else 1.0)
    recorder = run.recorder
    assert run.flush() and not recorder.spool
    assert target.scalar(f"SELECT count(*) FROM {target.table('otrain')}") == 198
    kept = _kept(recorder.rejected_path)
    assert [rec[3]["epoch"] for rec, _ in kept] == [40.0, 170.0]
    assert all(why for _, why in kept)

    _accept_big_losses(target)
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", "--store", target.url, str(recorder.rejected_path)])
    assert result.exit_code == 0, result.output
    assert "(2 records written, 0 set aside)" in result.output
    assert not recorder.rejected_path.exists()
    assert target.scalar(f"SELECT count(*) FROM {target.table('otrain')}") == 200
    assert target.scalar(f"SELECT count(DISTINCT epoch) FROM {target.table('otrain')}") == 200


def test_replay_writes_what_the_store_takes_and_sets_aside_the_rest(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    with dlprov.run("mnist", store=store, capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=0, loss=1.0)
    key = train.key
    spooled = tmp_path / "spool" / "999999.jsonl"  # a dead process's spool
    Spool(spooled).append([(r.ELEMENT, key, "otrain", {"epoch": 1.0, "loss": 1.0}),
                           (r.ELEMENT, key, "otrain", {"epoch": 2.0, "nope": 1.0}),
                           (r.ELEMENT, "no-such-task", "otrain", {"epoch": 3.0}),
                           (r.ELEMENT, key, "otrain", {"epoch": 4.0, "loss": 1.0})], "b1")
    result = CliRunner().invoke(cli, ["replay", "--store", str(store), str(spooled.parent)])
    assert result.exit_code == 1  # not everything was written: said, with where the rest is
    assert "replayed 1 spool files (2 records written, 2 set aside)" in result.output
    rejected = spooled.with_name("999999.rejected.jsonl")
    assert f"in {rejected}" in result.output
    reasons = [why for _, why in _kept(rejected)]
    assert "no attribute 'nope'" in reasons[0] and "no-such-task" in reasons[1]
    assert not spooled.exists()
    again = CliRunner().invoke(cli, ["replay", "--store", str(store), str(spooled.parent)])
    assert again.exit_code == 0 and "replayed 0 spool files" in again.output
    assert f"{rejected} holds records the store refused before" in again.output


def test_through_the_server_names_in_any_case_and_one_refusal_hold_back_nothing(
        store_path: Path, sql, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlprov.server.background import serve_in_thread
    monkeypatch.setenv("DLPROV_CACHE_DIR", str(tmp_path / "cache"))
    with serve_in_thread(str(store_path)) as server:
        with dlprov.run("mnist", store=server, capture_environment=False) as run:
            with run.task("train") as train:
                train.output("otrain", epoch=0, loss=1.0)
                assert run.flush()
                run.put((r.ELEMENT, train.key, "oTrain", {"Epoch": 1.0, "Loss": 0.5}))
                run.put((r.ELEMENT, train.key, "otrain", {"epoch": 2.0, "nope": 1.0}))
                run.put((r.ELEMENT, train.key, "otrain", {"epoch": 3.0, "loss": 0.25}))
        assert run.flush()
        recorder = run.recorder
        assert not recorder.spool and recorder.rejected == 1
        [(record, why)] = _kept(recorder.rejected_path)
        assert record[3] == {"epoch": 2.0, "nope": 1.0} and "nope" in why
    assert sql("SELECT epoch, loss FROM mnist__otrain ORDER BY id") == [
        (0.0, 1.0), (1.0, 0.5), (3.0, 0.25)]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
