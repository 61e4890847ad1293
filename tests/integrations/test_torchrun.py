"""torchrun: two ranks (gloo on CPU) train a tiny model with ``track_training`` and no guard for
rank 0; the store holds ONE execution with both ranks' tasks and elements. Two launches only:
with a process group (rank 0 broadcasts the key) and without one (the key is derived)."""
from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this PyTorch has no torch.distributed", allow_module_level=True)

EPOCHS, BATCHES = 2, 4

SCRIPT = textwrap.dedent(f"""
    import os, sys
    import torch
    import torch.distributed as dist
    from dlprov.integrations.torch import track_training

    store, with_group = sys.argv[1], sys.argv[2] == "group"
    if with_group:
        dist.init_process_group("gloo")
    rank = int(os.environ["RANK"])
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    if with_group:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(rank)  # each rank its own shard
    x = torch.randn({BATCHES} * 8, 4, generator=generator)
    y = torch.randint(0, 2, ({BATCHES} * 8,), generator=generator)
    with track_training("ddp", model=model, optimizer=optimizer, epochs={EPOCHS}, batch_size=8,
                        store=store) as log:
        for epoch in range({EPOCHS}):
            for start in range(0, len(x), 8):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[start:start + 8]),
                                                         y[start:start + 8])
                loss.backward()
                optimizer.step()
                log.batch_end(loss=loss)
            log.epoch_end(epoch, loss=loss)
        log.test(accuracy=0.5 + rank / 10)
    print("RUN", log.run.key, log.run.exec_tag, log.run.rank)
    if with_group:
        dist.destroy_process_group()
""")


def torchrun(tmp_path: Path, mode: str) -> list[list[str]]:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m",
                                                         "torch.distributed.run"]
    result = subprocess.run([*command, "--nproc-per-node", "2", "--standalone", str(script),
                             str(tmp_path / "dlprov.db"), mode],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(line.split()[1:] for line in result.stdout.splitlines()
                  if line.startswith("RUN "))


@pytest.mark.parametrize("mode", ["group", "environment"])
def test_every_rank_records_into_one_execution(tmp_path, mode) -> None:
    said = torchrun(tmp_path, mode)
    assert [rank for *_, rank in said] == ["0", "1"]
    assert said[0][:2] == said[1][:2]  # one key and one exec tag on every rank
    key, exec_tag = said[0][:2]
    with sqlite3.connect(tmp_path / "dlprov.db") as conn:
        query = conn.execute
        assert query("SELECT uuid, tag, status FROM dataflow_execution").fetchall() \
            == [(key, exec_tag, "finished")]
        assert query("SELECT count(*) FROM environment").fetchall() == [(1,)]  # rank 0's
        tasks = query("SELECT t.rank, dt.tag, t.computing_resource, t.status, t.identifier "
                      "FROM task t JOIN data_transformation dt ON dt.id = t.dt_id "
                      "ORDER BY t.rank, dt.tag").fetchall()
        host = socket.gethostname()
        assert [row[:4] for row in tasks] == [(0, "test", host, "finished"),
                                             (0, "train", host, "finished"),
                                             (1, "test", host, "finished"),
                                             (1, "train", host, "finished")]
        assert len({row[4] for row in tasks}) == 4  # no two tasks share an identifier
        for set_tag, per_rank in (("otrain", EPOCHS), ("otrainbatch", EPOCHS * BATCHES)):
            assert query(f"SELECT t.rank, count(*) FROM ddp__{set_tag} o "
                         f"JOIN task t ON t.id = o.train_task_id GROUP BY t.rank "
                         f"ORDER BY t.rank").fetchall() == [(0, per_rank), (1, per_rank)]
        assert query("SELECT t.rank, o.accuracy FROM ddp__otest o "
                     "JOIN task t ON t.id = o.test_task_id ORDER BY t.rank").fetchall() \
            == [(0, 0.5), (1, 0.6)]
        assert query("SELECT t.rank, i.learning_rate FROM ddp__itrain i "
                     "JOIN task t ON t.id = i.train_task_id ORDER BY t.rank").fetchall() \
            == [(0, 0.1), (1, 0.1)]
