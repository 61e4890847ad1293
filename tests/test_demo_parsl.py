"""``dlprov demo --parsl`` end to end: the candidates' Train and Test run as Parsl apps on a real
HighThroughputExecutor with two workers, recorded into one execution, then queried."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_output import assert_listing_4_printed_as_stored

pytest.importorskip("parsl")

DLPROV = [sys.executable, "-m", "dlprov"]


def test_demo_parsl_trains_candidates_on_two_workers_in_one_execution(store_path, sql,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        DLPROV + ["demo", "--parsl", "--workers", "2", "--candidates", "4", "--epochs", "2",
                  "--no-progress", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sql("SELECT status FROM dataflow_execution") == [("finished",)]
    tasks = {tag: rows for tag, rows in _by_transformation(sql).items()}
    assert len(tasks["train"]) == 4 and len(tasks["test"]) == 4
    assert len(tasks["splitdata"]) == 4
    assert all(status == "finished" for rows in tasks.values() for _, status, _ in rows)
    # Train and Test ran in Parsl's worker processes, at least two different ones
    workers = {sub for tag in ("train", "test") for _, _, sub in tasks[tag]}
    assert all(sub.startswith("worker ") for sub in workers)
    assert len(workers) >= 2
    # each Train depends on one SplitData and uses its training and validation sets; each Test
    # depends on that SplitData (test set) and on the Train (trained model)
    deps = sql("SELECT task_id, depends_on_id FROM task_dependency")
    usage = set(sql("SELECT u.task_id, u.producer_task_id, ds.tag FROM task_usage u "
                    "JOIN data_set ds ON ds.id = u.ds_id"))
    splits = {task_id for task_id, _, _ in tasks["splitdata"]}
    trained_by: dict[int, int] = {}
    for train_id, _, _ in tasks["train"]:
        [split] = [d for t, d in deps if t == train_id]
        assert split in splits
        assert {(train_id, split, "otrainset"), (train_id, split, "ovalset")} <= usage
        assert not any(u[0] == train_id and u[2] == "otestset" for u in usage)
        trained_by[train_id] = split
    for test_id, _, _ in tasks["test"]:
        found = sorted(d for t, d in deps if t == test_id)
        [train_id] = [d for d in found if d in trained_by]
        assert found == sorted([train_id, trained_by[train_id]])
        assert {(test_id, trained_by[train_id], "otestset"),
                (test_id, train_id, "otrainedmodel")} <= usage
    # the *_task_id stamps the paper's joins go through
    assert sql("SELECT count(*) FROM digits__otrainset WHERE train_task_id IS NULL") == [(0,)]
    assert sql("SELECT count(*) FROM digits__otrainedmodel "
               "WHERE test_task_id IS NULL OR train_task_id IS NULL") == [(0,)]
    assert sql("SELECT count(*) FROM digits__otrain") == [(8,)]
    assert sql("SELECT count(DISTINCT train_task_id) FROM digits__itrain") == [(4,)]
    # Listing 4 answers on this store and the printed answer is the stored one
    assert_listing_4_printed_as_stored(result.stdout, sql)
    for question in range(1, 13):
        assert f"\nQ{question} " in result.stdout
    # Parsl's run directory went to the output folder, not the working directory
    assert (out / "parsl-runinfo").is_dir()
    assert not (tmp_path / "runinfo").exists()


def _by_transformation(sql) -> dict[str, list[tuple[int, str, str | None]]]:
    found: dict[str, list[tuple[int, str, str | None]]] = {}
    for task_id, tag, status, sub_id in sql(
            "SELECT t.id, dt.tag, t.status, t.sub_id FROM task t "
            "JOIN data_transformation dt ON dt.id = t.dt_id ORDER BY t.id"):
        found.setdefault(tag, []).append((task_id, status, sub_id))
    return found


def test_demo_parsl_without_parsl_says_how_to_install_it(store_path, tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import parsl` fail as if it were not installed
    code = ("import sys; sys.modules['parsl'] = None; from dlprov.cli.main import main; "
            "sys.argv = ['dlprov', 'demo', '--parsl', '--no-progress']; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "Parsl is not installed" in result.stderr
    assert "pip install 'dlprov[parsl]'" in result.stderr
    assert not store_path.exists()  # nothing recorded


def test_demo_workers_without_parsl_is_a_usage_error(store_path) -> None:
    result = subprocess.run(DLPROV + ["demo", "--workers", "3"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "--workers is for --parsl" in result.stderr
