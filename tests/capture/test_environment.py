"""Environment and agent, captured once per execution without being asked; each probe can be off."""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import textwrap

import dlprov


def test_environment_is_captured_once_per_execution(store_path, sql):
    with dlprov.run("envs", user="ada", email="ada@lab.org", organization="Lab") as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1)
    [(host, system, cpus, memory, python, packages, gpus)] = sql(
        "SELECT hostname, os, cpu_count, memory_bytes, python_version, packages, gpus "
        "FROM environment")
    assert (host, system, cpus) == (socket.gethostname(), platform.system(), os.cpu_count())
    assert python == platform.python_version() and memory > 0
    assert json.loads(packages)["numpy"]  # the ML packages in use, with versions
    assert isinstance(json.loads(gpus), list)  # [] here: no GPU on this machine
    assert sql("SELECT username, email, organization FROM dataflow_execution") == [
        ("ada", "ada@lab.org", "Lab")]


def test_agent_from_environment_variables(store_path, sql, monkeypatch):
    monkeypatch.setenv("DLPROV_EMAIL", "grace@navy.mil")
    monkeypatch.setenv("DLPROV_ORGANIZATION", "Navy")
    with dlprov.run("envs"):
        pass
    assert sql("SELECT email, organization FROM dataflow_execution") == [("grace@navy.mil", "Navy")]


def test_git_state_of_the_training_script(store_path, sql, tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    script = repo / "train.py"
    script.write_text(textwrap.dedent(f"""
        import dlprov
        with dlprov.run("envs", store={str(store_path)!r}):
            pass
    """))
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path)
    script.write_text(script.read_text() + "\n# edited\n")
    subprocess.run([sys.executable, str(script), "--lr", "0.1"], check=True, cwd=tmp_path)
    rows = sql("SELECT git_commit, git_dirty, command_line FROM environment ORDER BY exec_id")
    assert [(c, d) for c, d, _ in rows] == [(commit, 0), (commit, 1)]
    assert rows[1][2].endswith("train.py --lr 0.1")


def test_probes_can_be_turned_off(store_path, sql, monkeypatch):
    with dlprov.run("envs", capture_environment={"git": False, "packages": False,
                                                 "command_line": False}):
        pass
    assert sql("SELECT packages, git_commit, command_line FROM environment") == [
        (None, None, None)]
    with dlprov.run("envs", capture_environment=False):
        pass
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with dlprov.run("envs"):
        pass
    assert sql("SELECT count(*) FROM environment") == [(1,)]
    assert sql("SELECT count(*) FROM dataflow_execution") == [(3,)]
