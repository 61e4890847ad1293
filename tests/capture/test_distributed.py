"""One execution for every rank of a torchrun world, without torch: the world is read from the
launcher's variables, the key derived from them (a process group is tested in
tests/integrations/test_torchrun.py). Ranks are real processes writing one SQLite file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.capture import distributed
from dlprov.capture.distributed import World, derived_key, detect
from dlprov.cli.main import cli
from dlprov.prov.mapping import document

LAUNCH = {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
          "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "job-42",
          "TORCHELASTIC_RESTART_COUNT": "0"}

# What every rank runs: the same code, no guard for rank 0.
RANK_SCRIPT = textwrap.dedent("""
    import sys
    import dlprov
    store, rank = sys.argv[1], int(sys.argv[2])
    with dlprov.run("ddp", store=store, capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1, world_size=2)
            for epoch in range(2):
                train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1 + rank))
        with run.task("test", depends_on=train) as test:
            test.output("otest", accuracy=0.5 + rank / 10)
    print(run.key, run.exec_tag)
""")


def world(**overrides) -> World:
    fields = {"rank": 0, "world_size": 2, "run_id": "job-42", "master": "127.0.0.1:29500",
              "launcher_pid": 100, **overrides}
    return World(**fields)


# -- detecting the world and agreeing on a key ---------------------------------------------------
def test_no_world_outside_a_launcher() -> None:
    assert detect({}) is None


def test_world_read_from_the_launchers_variables() -> None:
    found = detect({**LAUNCH, "RANK": "1", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "2"})
    assert (found.rank, found.world_size, found.local_rank) == (1, 2, 1)
    assert (found.run_id, found.master, found.restart_count) == ("job-42", "127.0.0.1:29500", 2)
    assert found.launcher_pid == os.getppid() and not found.leader
    assert detect({**LAUNCH, "RANK": "0", "TORCHELASTIC_RUN_ID": "none"}).run_id is None


@pytest.mark.parametrize("env, named", [
    ({"RANK": "one", "WORLD_SIZE": "2"}, "RANK='one'"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"}, "LOCAL_RANK='x'"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 and WORLD_SIZE=2"),
])
def test_nonsense_variables_are_named(env, named) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        detect(env)


def test_every_rank_derives_the_same_key_and_each_launch_another() -> None:
    key = derived_key("ddp", world(rank=0))
    assert derived_key("ddp", world(rank=1, local_rank=1)) == key
    assert len(key) == 32 and int(key, 16) >= 0
    others = {derived_key("ddp", world(run_id="job-43")),
              derived_key("ddp", world(restart_count=1)),
              derived_key("ddp", world(), sequence=2), derived_key("other", world())}
    assert key not in others and len(others) == 4


def test_without_rendezvous_id_the_launcher_tells_launches_apart() -> None:
    static = world(run_id=None)
    assert derived_key("ddp", static) == derived_key("ddp", world(run_id=None, rank=1))
    assert derived_key("ddp", static) != derived_key("ddp", world(run_id=None, launcher_pid=101))
    assert derived_key("ddp", static) != derived_key("ddp", world(run_id=None, master="h:1"))


# -- runs in a world -----------------------------------------------------------------------------
def launch_rank(rank: int, store: Path, **extra: str) -> subprocess.Popen:
    env = {**os.environ, **LAUNCH, "RANK": str(rank), "LOCAL_RANK": str(rank), **extra}
    return subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(store), str(rank)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> list[str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out.split()


@pytest.mark.parametrize("order", ["follower first", "together"])
def test_two_ranks_record_into_one_execution(order, tmp_path, sql, store_path) -> None:
    if order == "follower first":  # rank 1 has ended before rank 0 starts: rank 0 still ends it
        said = [finish(launch_rank(1, store_path))]
        said.append(finish(launch_rank(0, store_path)))
    else:
        processes = [launch_rank(rank, store_path) for rank in (0, 1)]
        said = [finish(p) for p in processes]
    assert said[0] == said[1]  # same key, same exec tag on both ranks
    key, exec_tag = said[0]
    executions = sql("SELECT uuid, tag, status, end_time IS NOT NULL FROM dataflow_execution")
    assert executions == [(key, exec_tag, "finished", 1)]
    tasks = sql("SELECT t.rank, dt.tag, t.identifier, t.computing_resource, t.status, t.df_exec "
                "FROM task t JOIN data_transformation dt ON dt.id = t.dt_id "
                "ORDER BY t.identifier")
    host = os.uname().nodename
    assert tasks == [(0, "train", 1, host, "finished", exec_tag),
                     (1, "train", 2, host, "finished", exec_tag),
                     (0, "test", 3, host, "finished", exec_tag),
                     (1, "test", 4, host, "finished", exec_tag)]
    assert sql("SELECT t.rank, o.loss FROM ddp__otrain o JOIN task t ON t.id = o.train_task_id "
               "ORDER BY t.rank, o.epoch") == [(0, 1.0), (0, 0.5), (1, 0.5), (1, 1 / 3)]
    assert sql("SELECT t.rank, o.accuracy FROM ddp__otest o "
               "JOIN task t ON t.id = o.test_task_id ORDER BY t.rank") == [(0, 0.5), (1, 0.6)]
    # each rank's test depends on its own train
    assert sql("SELECT a.rank, b.rank FROM task_dependency d JOIN task a ON a.id = d.task_id "
               "JOIN task b ON b.id = d.depends_on_id ORDER BY a.rank") == [(0, 0), (1, 1)]
    # The spec grows as a rank's tasks start (a version per batch that grew it, so how many
    # depends on timing); the second rank, with the same spec, never adds a version of its own.
    specs = [json.loads(spec) for (spec,) in
             sql("SELECT spec FROM dataflow_version ORDER BY version")]
    assert all(a != b for a, b in zip(specs, specs[1:]))
    assert sorted(specs[-1]["sets"]) == ["itrain", "otest", "otrain"]

    listed = CliRunner().invoke(cli, ["tasks", exec_tag, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert [row["rank"] for row in json.loads(listed.output)] == [0, 1, 0, 1]
    activities = [r for r in document(store_path, run=exec_tag).flattened().get_records()
                  if r.get_type().localpart == "Activity"
                  and r.get_attribute("dlprov:dt_tag")]
    assert sorted((next(iter(a.get_attribute("dlprov:rank"))),
                   next(iter(a.get_attribute("dlprov:hostname")))) for a in activities) \
        == [(0, host), (0, host), (1, host), (1, host)]


def test_rank_zeros_start_wins_and_it_alone_ends(tmp_path, sql, store_path) -> None:
    finish(launch_rank(1, store_path))
    assert sql("SELECT status, end_time FROM dataflow_execution") == [("running", None)]
    rank0 = launch_rank(0, store_path)
    finish(rank0)
    assert sql("SELECT pid, status FROM dataflow_execution") == [(rank0.pid, "finished")]


def test_distributed_false_keeps_one_execution_per_process(monkeypatch, store_path, sql) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with dlprov.run("ddp", distributed=False, capture_environment=False) as run:
        with run.task("train"):
            pass
    assert run.world is None and run.rank is None
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
    assert sql("SELECT identifier, rank FROM task") == [(1, None)]


def test_distributed_true_outside_a_world_is_refused(monkeypatch, store_path) -> None:
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="no rank of a torch.distributed world"):
        dlprov.run("ddp", distributed=True)


def test_a_taken_exec_tag_is_refused_by_rank_zero_only(monkeypatch, store_path, sql) -> None:
    with dlprov.run("ddp", exec_tag="shared", capture_environment=False):
        pass
    monkeypatch.setattr(distributed, "_runs_started", distributed.Counter())
    for name, value in {**LAUNCH, "RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="'shared' already exists"):
        dlprov.run("ddp", exec_tag="shared")
    # a tag that this very execution holds (another rank wrote it first) is no conflict
    monkeypatch.setattr(distributed, "_runs_started", distributed.Counter())
    with dlprov.run("ddp", exec_tag="joint", capture_environment=False) as first:
        pass
    monkeypatch.setattr(distributed, "_runs_started", distributed.Counter())
    with dlprov.run("ddp", exec_tag="joint", capture_environment=False) as again:
        pass
    assert again.key == first.key
    assert sql("SELECT tag FROM dataflow_execution ORDER BY id") == [("shared",), ("joint",)]


def test_outside_a_world_nothing_changes(monkeypatch, store_path, sql) -> None:
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with dlprov.run("plain", capture_environment=False) as one:
        for _ in range(2):
            with one.task("train"):
                pass
    with dlprov.run("plain", capture_environment=False) as two:
        pass
    assert one.world is None and one.key != two.key
    assert one.exec_tag.startswith("plain-") and len(one.exec_tag.split("-")) >= 4
    assert sql("SELECT identifier, rank FROM task ORDER BY id") == [(1, None), (2, None)]
    assert sql("SELECT count(*) FROM dataflow_execution") == [(2,)]


def test_with_a_process_group_rank_zero_decides_and_its_error_reaches_all(
        monkeypatch, tmp_path, store_path, sql) -> None:
    torch_distributed = pytest.importorskip("torch.distributed")
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    torch_distributed.init_process_group("gloo", rank=0, world_size=1,
                                         init_method=f"file://{tmp_path / 'rendezvous'}")
    try:
        assert detect() == World(rank=0, world_size=1, launcher_pid=os.getppid(),
                                 hostname=os.uname().nodename)
        with dlprov.run("ddp", capture_environment=False) as first:
            pass
        with dlprov.run("ddp", capture_environment=False) as second:
            pass
        assert first.key != second.key  # broadcast keys are fresh, not derived
        assert first.exec_tag.startswith("ddp-20")  # rank 0's clock in the tag
        with pytest.raises(ValueError, match="already exists"):  # broadcast, then raised
            dlprov.run("ddp", exec_tag=first.exec_tag)
    finally:
        torch_distributed.destroy_process_group()
    assert sql("SELECT count(*), min(status) FROM dataflow_execution") == [(2, "finished")]
