"""Every command, on a store that is damaged, locked, read-only, missing or named by a bad URL:
one line ``error: …`` naming the store and what to do, exit code 1, no traceback."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.store.engine import resolve_store_url
from dlprov.store.store import shared_engine

READERS = [
    ["runs"],
    ["tasks", "mnist-1"],
    ["sql", "SELECT count(*) FROM otrain"],
    ["schema"],
    ["query", "q3"],
    ["export", "--format", "json", "-o", "out.json"],
    ["graph", "show", "-o", "graph.svg"],
    ["package", "--model", "m", "-o", "m.zip"],
]
PROV_DOCUMENT = {"prefix": {"ex": "http://example.org/"}, "entity": {"ex:a": {}}}


def one_error_line(runner: CliRunner, store: str | Path, args: list[str],
                   env: dict[str, str] | None = None) -> str:
    """Run ``dlprov --store STORE ARGS``: it must fail with one line; that line."""
    result = runner.invoke(cli, ["--store", str(store), *args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), result.exception  # nothing escaped as a traceback
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def capture(store: Path) -> None:
    """One run into ``store``; then the process's pooled connections to it are closed (they
    would hold it open when a test changes its journal or remounts its folder)."""
    with dlprov.run("mnist", exec_tag="mnist-1", store=store) as run:
        with run.task("train") as train:
            train.input("itrain", optimizer_name="adam", learning_rate=0.1)
            train.output("otrain", epoch=1, accuracy=0.5)
    for read_only in (False, True):
        shared_engine(resolve_store_url(store), read_only).dispose()


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DLPROV_STORE", raising=False)
    return CliRunner()


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0] + (a[1] if a[0] == "graph" else ""))
def test_damaged_store(runner, tmp_path, args):
    store = tmp_path / "dlprov.db"
    store.write_bytes(b"this is no database, only garbage bytes \x00\xff" * 500)
    line = one_error_line(runner, store, args)
    assert line == (f"error: store {store} is damaged or is not an SQLite database (file is not "
                    f"a database): check the path (--store or $DLPROV_STORE), or restore the "
                    f"file from a backup")


@pytest.mark.parametrize("args", READERS[:5], ids=lambda a: a[0])
def test_store_without_dlprov_tables(runner, tmp_path, args):
    store = tmp_path / "other.db"
    sqlite3.connect(store).execute("CREATE TABLE unrelated(a)").connection.close()
    line = one_error_line(runner, store, args)
    assert line.startswith(f"error: store {store} holds no dlprov tables (no such table")


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0] + (a[1] if a[0] == "graph" else ""))
def test_locked_store_waits_a_bounded_time(runner, tmp_path, args):
    store = tmp_path / "dlprov.db"
    capture(store)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")  # readers of a WAL store are never blocked
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_error_line(runner, store, args, env={"DLPROV_BUSY_TIMEOUT": "0.2"})
    finally:
        holder.close()
    assert line == (f"error: store {store} is locked by another process (database is locked): "
                    f"retry when that process is done, or wait longer with "
                    f"$DLPROV_BUSY_TIMEOUT (seconds)")


def test_locked_store_for_a_writer(runner, tmp_path):
    store = tmp_path / "dlprov.db"
    capture(store)
    (tmp_path / "doc.json").write_text(json.dumps(PROV_DOCUMENT))
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = one_error_line(runner, store, ["import", "doc.json"],
                              env={"DLPROV_BUSY_TIMEOUT": "0.2"})
    finally:
        holder.close()
    assert "is locked by another process" in line


def test_bad_busy_timeout_is_named(runner, tmp_path):
    capture(tmp_path / "dlprov.db")
    copy = tmp_path / "copy.db"  # engines are made once per store and process
    copy.write_bytes((tmp_path / "dlprov.db").read_bytes())
    line = one_error_line(runner, copy, ["runs"], env={"DLPROV_BUSY_TIMEOUT": "soon"})
    assert line == "error: DLPROV_BUSY_TIMEOUT='soon' is not a number of seconds"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a tmpfs mounted read-only (root ignores file modes), holding a store."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        capture(folder / "dlprov.db")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_store_can_be_read(runner, read_only_folder):
    store = read_only_folder / "dlprov.db"
    result = runner.invoke(cli, ["--store", str(store), "sql", "--format", "csv",
                                 "SELECT count(*) AS n FROM otrain"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["n", "1"]
    result = runner.invoke(cli, ["--store", str(store), "runs", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["exec_tag"] == "mnist-1"


def test_read_only_store_refuses_writers_in_one_line(runner, read_only_folder, tmp_path):
    store = read_only_folder / "dlprov.db"
    (tmp_path / "doc.json").write_text(json.dumps(PROV_DOCUMENT))
    line = one_error_line(runner, store, ["import", str(tmp_path / "doc.json")])
    assert line.startswith(f"error: store {store} cannot be written here (read-only file, "
                           f"folder or mount)")
    assert line.endswith("give a writable store with --store or $DLPROV_STORE")
    result = runner.invoke(cli, ["migrate", "--from", str(store),
                                 "--to", str(read_only_folder / "copy.db")])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert f"store {read_only_folder / 'copy.db'} cannot be written here" in result.stderr


@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0] + (a[1] if a[0] == "graph" else ""))
def test_missing_store_is_never_created_by_reading(runner, tmp_path, args):
    store = tmp_path / "absent" / "dlprov.db"
    line = one_error_line(runner, store, args)
    assert line == (f"error: no store at {store}: run something with dlprov first, or give "
                    f"the store with --store or $DLPROV_STORE")
    assert not store.parent.exists()


@pytest.mark.parametrize("url, expected", [
    ("postgresql://::::/", "error: malformed store URL 'postgresql://::::/' (bad port): use a "
                           "path to an SQLite file, sqlite:///PATH or "
                           "postgresql://USER:PASSWORD@HOST:PORT/DB"),
    ("postgresql://u:secret@[::1/db", "error: malformed store URL 'postgresql://u:***@[::1/db'"),
    ("mysql://u@host/db", "error: unsupported store URL 'mysql://u@host/db': use a path"),
    ("ftp://example.org/x", "error: unsupported store URL 'ftp://example.org/x'"),
    ("postgresql://u:secret@127.0.0.1:1/test",
     "error: store postgresql://u:***@127.0.0.1:1/test cannot be reached (connection failed"),
    (f"postgresql://nobody_{uuid.uuid4().hex[:6]}:secret@127.0.0.1:5432/test",
     "refused the connection"),
])
@pytest.mark.parametrize("args", [["runs"], ["sql", "SELECT 1"], ["query", "q3"],
                                  ["export", "-o", "out.json"]], ids=lambda a: a[0])
def test_bad_or_unreachable_urls(runner, url, expected, args):
    line = one_error_line(runner, url, args)
    assert line.startswith(expected) or expected in line, line
    assert "secret" not in line


@pytest.mark.parametrize("url", ["postgresql://::::/", "mysql://u@host/db"])
def test_replay_into_a_bad_url(runner, url):
    # replay (with nothing spooled) contacts no store; a URL it cannot even parse still fails
    line = one_error_line(runner, url, ["replay"])
    assert line.startswith("error: malformed store URL") or "unsupported store URL" in line


def test_the_console_script_prints_no_traceback(tmp_path):
    store = tmp_path / "dlprov.db"
    store.write_bytes(b"\x01" * 4096)
    found = subprocess.run([sys.executable, "-m", "dlprov", "--store", str(store), "runs"],
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 1
    assert found.stdout == ""
    assert found.stderr.splitlines() == [
        f"error: store {store} is damaged or is not an SQLite database (file is not a "
        f"database): check the path (--store or $DLPROV_STORE), or restore the file from a "
        f"backup"]
