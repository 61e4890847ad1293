"""Packages read as an attacker would write them: zip bombs, unsafe members, an extract holding a
never-ending view, a manifest nested too deep, a package forged consistently; signatures, the
check against the store the package came from, and temporary files that never outlive a run.

Every hostile package is built here with ``zipfile`` and ``sqlite3`` from a real package of a
real store (see :mod:`tests.prov.test_package`)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.cli.main import cli
from dlprov.prov.archive import Limits
from dlprov.prov.extract import ExtractRefused, open_untrusted
from dlprov.prov.package import (
    EXTRACT,
    MANIFEST,
    PICTURE,
    SIGNATURE,
    PackageError,
    generate_key,
    inspect_package,
    package_model,
    verify_package,
)
from tests.prov.test_package import models  # noqa: F401  (a fixture)
from tests.prov.workflows import DF

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # rdflib 7, via prov

MODEL = "model/mlp-t.pt"
OTRAIN = f"{DF}__otrain"  # the set table in SQLite
RECURSIVE = ("WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
             "SELECT CAST(x AS TEXT) AS model_id, 'x' AS sha256 FROM r")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """dlprov's private folders for this test, to see what is left in them."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DLPROV_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    (tmp_path / "keys").mkdir()
    private, public = generate_key(tmp_path / "keys" / "release.pem")
    _, other_public = generate_key(tmp_path / "keys" / "other.pem")
    return {"private": private, "public": public, "other": other_public}


@pytest.fixture
def package(models, tmp_path) -> Path:  # noqa: F811
    return package_model("mlp-t", tmp_path / "out" / "mlp-t.zip")


@pytest.fixture
def signed(models, keys, tmp_path) -> Path:  # noqa: F811
    return package_model("mlp-t", tmp_path / "out" / "signed.zip", sign=keys["private"])


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write(path: Path, content: dict[str, bytes], *, manifest: bool = True) -> Path:
    """Write ``content`` as the zip ``path``; with ``manifest``, its digests made to match."""
    content = dict(content)
    if manifest:
        listed = json.loads(content[MANIFEST])
        listed["members"] = {name: {"sha256": hashlib.sha256(data).hexdigest(),
                                    "size_bytes": len(data)}
                             for name, data in content.items() if name not in (MANIFEST,
                                                                                SIGNATURE)}
        content[MANIFEST] = json.dumps(listed, indent=2).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    return path


def left_behind(cache: Path) -> list[str]:
    folder = cache / "tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def peak_rss_mb(code: str, *args: str) -> tuple[int, subprocess.CompletedProcess]:
    """Run ``code`` in a child of a child Python; the middle one reports its children's peak
    resident memory (RUSAGE_CHILDREN: only that child's, not the test runner's)."""
    wrapper = textwrap.dedent("""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]],
                              capture_output=True, text=True)
        print(done.returncode)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
        sys.stdout.write(done.stdout + done.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", wrapper, code, *args], capture_output=True,
                          text=True, timeout=600)
    rc, peak, *_ = done.stdout.splitlines()
    return int(peak), subprocess.CompletedProcess(done.args, int(rc), done.stdout)


# -- zip bombs and sizes ----------------------------------------------------------------------
def zeros_member(zf: zipfile.ZipFile, name: str, mib: int) -> None:
    """A member of ``mib`` MiB of zeros: about a thousandth of that compressed."""
    block = bytes(1024 * 1024)
    with zf.open(name, "w", force_zip64=True) as out:
        for _ in range(mib):
            out.write(block)


def with_big_member(package: Path, target: Path, name: str, mib: int) -> Path:
    content = members(package)
    content.pop(name, None)
    write(target, content)
    with zipfile.ZipFile(target, "a", zipfile.ZIP_DEFLATED) as zf:
        zeros_member(zf, name, mib)
    return target


def test_a_zip_bomb_other_than_the_model_is_refused_before_it_inflates(package, tmp_path):
    bomb = with_big_member(package, tmp_path / "bomb.zip", PICTURE, 64)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    for call in (lambda: verify_package(bomb), lambda: inspect_package(bomb, "q7")):
        with pytest.raises(PackageError, match=r"provenance.svg.*over the limit of 200:1 "
                                               r"\(a zip bomb\?\)"):
            call()
    result = CliRunner().invoke(cli, ["verify", str(bomb)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("FAILED: ") and "zip bomb" in result.output


def test_members_over_the_size_limits_are_refused(package, tmp_path):
    big = with_big_member(package, tmp_path / "big.zip", PICTURE, 3)
    with pytest.raises(PackageError, match="inflates to 3,145,728 bytes, over the limit of"):
        verify_package(big, limits=Limits(member_bytes=2 * 1024 * 1024))
    with pytest.raises(PackageError, match="the model's files inflate to .* over the limit"):
        verify_package(package, limits=Limits(model_bytes=100))
    with pytest.raises(PackageError, match="members inflate to .* over the limit"):
        verify_package(package, limits=Limits(total_bytes=1000))


def test_a_one_gib_model_is_hashed_in_chunks(package, tmp_path):
    """The probe: a 1 GiB member, 1 MB compressed, took 2.1 GB to verify. A model may be that
    large (it is not refused for its ratio), and is read a chunk at a time."""
    big = with_big_member(package, tmp_path / "big-model.zip", MODEL, 1024)
    assert big.stat().st_size < 4 * 1024 * 1024
    code = ("import sys; from dlprov.prov.package import verify_package; "
            "v = verify_package(sys.argv[1]); print(v); sys.exit(v.exit_code)")
    peak, done = peak_rss_mb(code, str(big))
    assert done.returncode == 1, done.stdout  # the bytes are not those the store recorded
    assert f"member {MODEL} does not match its sha256" not in done.stdout  # digest is right
    assert hashlib.sha256(bytes(1024 ** 3)).hexdigest() in done.stdout
    assert peak < 400, f"verify of a 1 GiB model took {peak} MB"


# -- odd members ----------------------------------------------------------------------------
def symlink_member(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so the mode bits count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


@pytest.mark.parametrize("odd", ["absolute", "dotdot", "symlink", "duplicate", "encrypted"])
def test_odd_members_are_refused(package, tmp_path, odd):
    target = tmp_path / f"{odd}.zip"
    shutil.copy(package, target)
    with zipfile.ZipFile(target, "a") as zf:
        if odd == "absolute":
            zf.writestr("/etc/cron.d/evil", "x")
        elif odd == "dotdot":
            zf.writestr("model/../../evil", "x")
        elif odd == "symlink":
            symlink_member(zf, "model/link", "/etc/passwd")
        elif odd == "duplicate":
            with pytest.warns(UserWarning, match="Duplicate name"):
                zf.writestr(MODEL, b"other weights")
        else:
            zf.writestr("model/secret", "x")
    if odd == "encrypted":  # zipfile writes no encrypted member: set the flag in the directory
        data = bytearray(target.read_bytes())
        entry = data.rfind(b"model/secret") - 46  # where its central directory record starts
        assert data[entry:entry + 4] == b"PK\x01\x02"
        data[entry + 8] |= 0x1
        target.write_bytes(bytes(data))
    expected = {"absolute": "unsafe names", "dotdot": "unsafe names",
                "symlink": "symbolic link", "duplicate": "more than once",
                "encrypted": "encrypted"}[odd]
    with pytest.raises(PackageError, match=expected):
        verify_package(target)
    with pytest.raises(PackageError, match=expected):
        inspect_package(target, "q7")


# -- the extract ----------------------------------------------------------------------------
def with_extract(package: Path, tmp_path: Path, change) -> Path:
    """The package with its extract changed by ``change(sqlite3 connection)``, digests
    matching."""
    content = members(package)
    db = tmp_path / "changed.db"
    db.write_bytes(content[EXTRACT])
    with sqlite3.connect(db) as conn:
        change(conn)
    conn.close()
    content[EXTRACT] = db.read_bytes()
    return write(tmp_path / "changed.zip", content)


def test_an_extract_with_a_never_ending_view_is_refused_at_once(package, tmp_path, cache):
    def replace(conn):
        conn.execute("DROP TABLE trained_model")
        conn.execute(f"CREATE VIEW trained_model AS {RECURSIVE}")
    hostile = with_extract(package, tmp_path, replace)
    start = time.monotonic()
    verdict = verify_package(hostile)
    assert not verdict.ok
    assert "view 'trained_model', which dlprov never writes" in str(verdict)
    with pytest.raises(PackageError, match="view 'trained_model'"):
        inspect_package(hostile, "q10")
    result = CliRunner().invoke(cli, ["inspect", str(hostile), "q7"])
    assert result.exit_code == 1 and "view 'trained_model'" in result.output
    assert time.monotonic() - start < 60
    assert left_behind(cache) == []


def test_an_extract_with_a_trigger_is_refused(package, tmp_path):
    hostile = with_extract(package, tmp_path, lambda conn: conn.execute(
        "CREATE TRIGGER t AFTER INSERT ON task BEGIN DELETE FROM task; END"))
    assert "trigger 't'" in str(verify_package(hostile))


def test_queries_on_the_extract_are_interrupted_after_the_time_limit(package, tmp_path):
    """The extract's own reads are interrupted (the questions' statements also run under the
    SQL guard's time limit, see dlprov.query.guard)."""
    db = tmp_path / "x.db"
    db.write_bytes(members(package)[EXTRACT])
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        open_untrusted(db, 0.5).execute(f"SELECT count(*) FROM ({RECURSIVE})").fetchall()
    assert time.monotonic() - start < 10
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
        open_untrusted(db, 5).execute("DELETE FROM task")


def test_a_file_that_is_no_database_is_refused(tmp_path):
    db = tmp_path / "x.db"
    db.write_bytes(b"not sqlite" * 100)
    with pytest.raises(ExtractRefused, match="not a readable SQLite database"):
        open_untrusted(db, 5)


# -- the manifest ---------------------------------------------------------------------------
@pytest.mark.parametrize("manifest, message", [
    (b"[" * 200_000, "manifest.json is not valid: nested too deep"),
    (b'{"a": ' * 150_000, "manifest.json is not valid: nested too deep"),
    (b"{not json", "manifest.json is not valid JSON"),
    (b"[]", "manifest.json is not valid: not a JSON object"),
    (b'{"format_version": 1, "members": [], "model": {}}', "no members or model"),
    (b'{"format_version": 9, "members": {}, "model": {}}', "format_version 9"),
    (b'{"format_version": 1, "members": {"a": 5}, "model": {"member": "model/x"}}',
     "member entry 'a' is not a name with a sha256"),
    (b'{"format_version": 1, "members": {}, "model": {"member": "/etc/passwd"}}',
     "not under model/"),
])
def test_a_malformed_manifest_is_one_line_error(package, tmp_path, manifest, message, cache):
    content = members(package)
    content[MANIFEST] = manifest
    bad = write(tmp_path / "bad.zip", content, manifest=False)
    with pytest.raises(PackageError, match=message):
        verify_package(bad)
    with pytest.raises(PackageError, match=message):
        inspect_package(bad, "q7")
    result = CliRunner().invoke(cli, ["verify", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith("FAILED: ") and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert left_behind(cache) == []


# -- temporary files ------------------------------------------------------------------------
def test_no_temporary_folder_outlives_verify_or_inspect(package, tmp_path, cache):
    assert verify_package(package).ok
    assert inspect_package(package, "q7").rows
    with pytest.raises(PackageError):
        inspect_package(with_extract(package, tmp_path, lambda conn: conn.execute(
            f"CREATE VIEW v AS {RECURSIVE}")), "q10")
    assert left_behind(cache) == []


def test_a_killed_inspect_leaves_nothing_in_tmp(package, tmp_path, cache):
    """inspect killed (SIGKILL, no clean-up possible) while the extract is on disk: the extract
    was in the user's private cache, never in the shared temporary folder."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    code = textwrap.dedent("""
        import os, signal, sys
        import dlprov.query.questions as questions
        from dlprov.prov.package import inspect_package
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        questions.ask = killed
        inspect_package(sys.argv[1], "q7")
    """)
    done = subprocess.run([sys.executable, "-c", code, str(package)], timeout=300,
                          env={**os.environ, "TMPDIR": str(shared)}, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert list(shared.iterdir()) == []
    [folder] = (cache / "tmp").iterdir()  # the killed run's, private to the user
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / EXTRACT).exists()


# -- signatures -----------------------------------------------------------------------------
def test_a_signed_package_verifies_with_its_key(signed, keys):
    assert SIGNATURE in members(signed)
    verdict = verify_package(signed, key=keys["public"])
    assert verdict.ok, str(verdict)
    assert "the manifest is signed by key" in str(verdict)
    assert "not checked" in str(verify_package(signed))  # signed, no key asked for
    assert verify_package(signed, key=keys["private"]).ok  # the private key's public half


def forge(package: Path, target: Path, weights: bytes) -> Path:
    """The package with the model swapped and everything that names its sha256 (document,
    picture, extract, manifest) changed to match: consistent, so digests alone cannot tell."""
    content = members(package)
    old = hashlib.sha256(content[MODEL]).hexdigest()
    new = hashlib.sha256(weights).hexdigest()
    content[MODEL] = weights
    for name in list(content):
        if name.startswith("provenance.") and name != EXTRACT or name == MANIFEST:
            content[name] = content[name].replace(old.encode(), new.encode())
    db = target.with_suffix(".db")
    db.write_bytes(content[EXTRACT])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE trained_model SET sha256 = ?", (new,))
    conn.close()
    content[EXTRACT] = db.read_bytes()
    return write(target, content)


def test_a_consistently_forged_package_is_caught_by_the_signature(signed, keys, tmp_path):
    forged = forge(signed, tmp_path / "forged.zip", b"backdoored weights")
    assert verify_package(forged).ok  # every digest matches: nothing else could tell
    verdict = verify_package(forged, key=keys["public"])
    assert not verdict.ok
    assert "the signature does not match: the manifest was changed after it was signed" \
        in str(verdict)
    result = CliRunner().invoke(cli, ["verify", str(forged), "--key", str(keys["public"])])
    assert result.exit_code == 1 and "FAILED: the signature does not match" in result.output
    # the forger drops the signature instead
    unsigned = {n: d for n, d in members(forged).items() if n != SIGNATURE}
    stripped = write(tmp_path / "stripped.zip", unsigned, manifest=False)
    assert "the package is not signed" in str(verify_package(stripped, key=keys["public"]))


def test_a_package_signed_by_another_key_fails(signed, keys):
    verdict = verify_package(signed, key=keys["other"])
    assert not verdict.ok and "not by the given key" in str(verdict)


def test_an_unsigned_package_fails_when_a_key_is_given(package, keys):
    verdict = verify_package(package, key=keys["public"])
    assert verdict.failures == [f"the package is not signed ({SIGNATURE} is missing), but a "
                                f"key was given"]


def test_keys_that_cannot_be_used(models, keys, tmp_path, package):  # noqa: F811
    (tmp_path / "junk.pem").write_text("-----BEGIN PUBLIC KEY-----\nxx\n")
    with pytest.raises(PackageError, match="not a PEM public key"):
        verify_package(package, key=tmp_path / "junk.pem")
    with pytest.raises(PackageError, match="not a PEM private key"):
        package_model("mlp-t", tmp_path / "x.zip", sign=keys["public"])
    with pytest.raises(PackageError, match="cannot read the key"):
        package_model("mlp-t", tmp_path / "x.zip", sign=tmp_path / "missing.pem")
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(PackageError, match="exists already"):
        generate_key(keys["private"])
    assert stat.S_IMODE(keys["private"].stat().st_mode) == 0o600
    result = CliRunner().invoke(cli, ["verify", str(package), "--key", str(tmp_path / "no")])
    assert result.exit_code == 2 and "cannot read the key" in result.output


def test_cli_keygen_sign_and_verify(models, tmp_path):  # noqa: F811
    runner = CliRunner()
    key = tmp_path / "release.pem"
    made = runner.invoke(cli, ["keygen", str(key)])
    assert made.exit_code == 0 and "key sha256" in made.output, made.output
    path = tmp_path / "p.zip"
    result = runner.invoke(cli, ["package", "-m", "mlp-t", "-o", str(path), "--sign", str(key)])
    assert result.exit_code == 0 and "(signed)" in result.output, result.output
    checked = runner.invoke(cli, ["verify", str(path), "--key", f"{key}.pub"])
    assert checked.exit_code == 0 and "signed by key" in checked.output, checked.output


# -- against the store ----------------------------------------------------------------------
def test_verify_against_the_store_it_came_from(package, store_path, tmp_path):
    verdict = verify_package(package, store=str(store_path))
    assert verdict.ok, str(verdict)
    assert "holds the model and its trace as packaged" in str(verdict)
    # records added since, to the trace (one more epoch of the training) or elsewhere (another
    # run), are no difference
    with dlprov.run(DF, exec_tag=f"{DF}-later", capture_environment=False) as run:
        with run.task("train") as train:
            train.output("otrain", epoch=1, loss=0.4, accuracy=0.8, elapsed_time=0.1)
    with sqlite3.connect(store_path) as conn:
        conn.execute(f'CREATE TEMP TABLE epoch AS SELECT * FROM "{OTRAIN}" WHERE train_task_id '
                     f"= (SELECT task_id FROM trained_model WHERE name = 'mlp-t') LIMIT 1")
        conn.execute(f'UPDATE epoch SET id = (SELECT max(id) + 1 FROM "{OTRAIN}"), epoch = 2')
        conn.execute(f'INSERT INTO "{OTRAIN}" SELECT * FROM epoch')
    conn.close()
    verdict = verify_package(package, store=str(store_path))
    assert verdict.ok and "(1 records more there, recorded since)" in str(verdict), str(verdict)
    result = CliRunner().invoke(cli, ["verify", str(package), "--store", str(store_path)])
    assert result.exit_code == 0 and "as packaged" in result.output, result.output


def test_a_forged_package_or_a_changed_store_fails_against_the_store(package, store_path,
                                                                      tmp_path):
    forged = forge(package, tmp_path / "forged.zip", b"backdoored weights")
    verdict = verify_package(forged, store=str(store_path))
    assert not verdict.ok
    assert "records sha256" in str(verdict) and "not the package's" in str(verdict)
    assert "table trained_model: 1 of the package's 1 records are not the store's" \
        in str(verdict)
    with sqlite3.connect(store_path) as conn:
        conn.execute(f'UPDATE "{OTRAIN}" SET loss = 0.001')
    conn.close()
    verdict = verify_package(package, store=str(store_path))
    assert not verdict.ok and f"table {OTRAIN}: 1 of the package's" in str(verdict)
    result = CliRunner().invoke(cli, ["verify", str(package), "--store",
                                      str(tmp_path / "empty.db")])
    assert result.exit_code == 1 and "FAILED: the store" in result.output, result.output
