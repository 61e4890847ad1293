"""The graph cache and Cypher against another local user and a hostile query (issue 13): caches in
private folders, a planted link or a foreign folder refused with nothing deleted, Cypher that
writes or touches files refused before it runs, the graph opened read-only besides."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.errors import QueryError, ReadOnlyViolation
from dlprov.graph import ask, connect, cypher, refresh
from dlprov.graph.engine import _folder_name, cache_dir
from dlprov.graph.readonly import REFUSED, check
from dlprov.localfiles import UnsafeFolder
from dlprov.store.store import as_store
from tests.conftest import postgresql_home
from tests.prov.workflows import DF, capture, experiment

MAX_ACCURACY = ("MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' "
                "RETURN max(e.`dlprov:accuracy`) AS best")
COUNT = "MATCH (n) RETURN count(n) AS nodes"


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLPROV_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    return experiment(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def victim(root: Path) -> Path:
    """A folder of the user's that a planted link points to, laid out like a graph cache."""
    target = root / "victim"
    (target / DF).mkdir(parents=True)
    (target / "precious.txt").write_text("keep me")
    (target / DF / "watermark.json").write_text("not json: forces a rebuild")
    (target / DF / "db").write_text("not a graph")
    return target


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- where the cache lives -----------------------------------------------------------------


def test_sqlite_cache_is_private_beside_the_store(filled, store_path: Path) -> None:
    loose = Path(f"{store_path}.graph")
    loose.mkdir(mode=0o755)  # as dlprov before 0700 left it
    os.chmod(loose, 0o755)
    db = refresh()
    assert db == loose / DF / "db"
    assert mode(loose) == 0o700 and mode(loose / DF) == 0o700
    assert mode(db.parent / "watermark.json") == 0o600


@pytest.mark.parametrize("planted", ["graph", "dataflow"])
def test_a_link_planted_at_the_sqlite_cache_is_refused(filled, store_path: Path, tmp_path: Path,
                                                       planted: str) -> None:
    target = victim(tmp_path)
    before = snapshot(target)
    base = Path(f"{store_path}.graph")
    if planted == "graph":
        base.symlink_to(target)
    else:
        base.mkdir(mode=0o700)
        (base / DF).symlink_to(target / DF)
    with pytest.raises(UnsafeFolder, match="symbolic link"):
        cypher(COUNT)
    result = CliRunner().invoke(cli, ["graph", "cypher", COUNT])
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert snapshot(target) == before


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_folder_owned_by_someone_else_is_refused(filled, store_path: Path) -> None:
    planted = Path(f"{store_path}.graph")
    (planted / DF).mkdir(parents=True)
    (planted / DF / "watermark.json").write_text("{}")
    os.chown(planted, 65534, 65534)  # nobody
    with pytest.raises(UnsafeFolder, match="another user"):
        cypher(COUNT)
    assert (planted / DF / "watermark.json").read_text() == "{}"
    assert os.lstat(planted).st_uid == 65534


def test_files_in_the_cache_are_replaced_not_written_through(filled, tmp_path: Path) -> None:
    db = refresh()
    outside = tmp_path / "outside.json"
    outside.write_text('{"elsewhere": true}')
    marks = db.parent / "watermark.json"
    marks.unlink()
    marks.symlink_to(outside)
    refresh()  # the link is no watermark: the graph is rebuilt, the link replaced by a file
    assert not marks.is_symlink() and set(json.loads(marks.read_text())) == {"exp-mlp-a",
                                                                             "exp-mlp-b"}
    assert outside.read_text() == '{"elsewhere": true}'


def test_a_dataflow_tag_never_names_a_folder_outside_the_cache() -> None:
    assert _folder_name("mnist") == "mnist"
    for hostile in ("../../home", "..", ".", "a/b", "", "x" * 300):
        name = _folder_name(hostile)
        assert name.startswith("df-") and "/" not in name and len(name) == 19


def test_throwaway_graphs_are_built_in_the_private_cache(filled, cache_home: Path) -> None:
    with connect(run="exp-mlp-a") as conn:
        assert conn.execute(COUNT).get_all()[0][0] > 0
        made = list((cache_home / "tmp").iterdir())
        assert len(made) == 1 and mode(made[0]) == 0o700
    assert not list((cache_home / "tmp").iterdir())


def test_postgresql_cache_is_private_and_ignores_the_old_tmp_folder(tmp_path: Path,
                                                                    cache_home: Path) -> None:
    with postgresql_home("gsec") as (url, home):
        df_tag = f"{home}_df"
        capture(tmp_path, "mlp-a", (), 0.1, store=url, df_tag=df_tag)
        store = as_store(url)
        digest = hashlib.sha256(store.url.encode()).hexdigest()[:16]
        old = Path(tempfile.gettempdir()) / f"dlprov-graph-{digest}"
        target = victim(tmp_path)
        (target / df_tag).mkdir()
        (target / df_tag / "db").write_text("not a graph")
        before = snapshot(target)
        old.symlink_to(target)
        try:
            assert cypher(MAX_ACCURACY, store).rows == [(0.9,)]
            assert snapshot(target) == before
        finally:
            old.unlink()
        folder = cache_dir(store, df_tag)
        assert folder == cache_home / "graph" / digest / df_tag
        for part in (cache_home, cache_home / "graph", folder.parent, folder):
            assert mode(part) == 0o700 and os.lstat(part).st_uid == os.getuid()
        # a link planted where the cache now lives is refused; nothing behind it is touched
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()
        folder.symlink_to(target / df_tag)
        with pytest.raises(UnsafeFolder, match="symbolic link"):
            cypher(MAX_ACCURACY, store)
        assert snapshot(target) == before


# --- Cypher only reads -----------------------------------------------------------------------


@pytest.mark.parametrize("attack", [
    "MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' SET e.`dlprov:accuracy` = 0.999",
    "MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' DETACH DELETE e",
    "MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' DELETE e",
    "CREATE (:Entity {id: 'forged', `dlprov:ds_tag`: 'otest', `dlprov:accuracy`: 0.999})",
    "MERGE (e:Entity {id: 'forged'}) SET e.`dlprov:accuracy` = 0.999",
    "MATCH (e:Entity) REMOVE e.`dlprov:accuracy`",
    "DROP TABLE wasDerivedFrom",
    "ALTER TABLE Entity DROP `dlprov:accuracy`",
    "RETURN 1; MATCH (e:Entity) SET e.`dlprov:accuracy` = 0.999",
])
def test_writes_are_refused_and_later_answers_unchanged(filled, sql, attack: str) -> None:
    truth = max(row[0] for row in sql('SELECT accuracy FROM "exp__otest"'))
    assert cypher(MAX_ACCURACY).rows == [(truth,)]
    nodes = cypher(COUNT).rows
    word = next(w for w in attack.replace(";", " ").split() if w in REFUSED)
    with pytest.raises(ReadOnlyViolation, match=f"Cypher refused: {word}"):
        cypher(attack)
    assert cypher(MAX_ACCURACY).rows == [(truth,)]
    assert cypher(COUNT).rows == nodes
    assert ask("q11", "mlp-a").rows  # the questions still answer from the same graph


def test_the_cached_graph_is_opened_read_only(filled, sql) -> None:
    """Even past the guard (a caller of connect), ladybug itself refuses to write."""
    with connect() as conn:
        with pytest.raises(RuntimeError, match="read-only"):
            conn.execute("MATCH (e:Entity) WHERE e.`dlprov:ds_tag` = 'otest' "
                         "SET e.`dlprov:accuracy` = 0.999")
        with pytest.raises(RuntimeError, match="read-only"):
            conn.execute("MATCH (e:Entity) DETACH DELETE e")
    assert cypher(MAX_ACCURACY).rows == [(0.9,)]


@pytest.mark.parametrize("attack", [
    "LOAD FROM '/etc/passwd' RETURN *",
    "LOAD FROM '/etc/passwd' (file_format='csv', header=false, delim=':') RETURN *",
    "LOAD WITH HEADERS (name STRING) FROM '/etc/passwd' RETURN *",
    "CALL file_info('/etc/passwd') RETURN *",
])
def test_reading_a_file_is_refused(filled, attack: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="Cypher refused: (LOAD|CALL)"):
        cypher(attack)
    result = CliRunner().invoke(cli, ["graph", "cypher", attack])
    assert result.exit_code == 1 and "Cypher refused" in result.output
    assert "root:" not in result.output


@pytest.mark.parametrize("scope", [{}, {"run": "exp-mlp-a"}])
@pytest.mark.parametrize("attack", [
    "COPY (MATCH (e:Entity) RETURN e.id) TO '{out}'",
    "MATCH (e:Entity) RETURN e.id; COPY (MATCH (e:Entity) RETURN e.id) TO '{out}'",
    "EXPORT DATABASE '{out}'",
])
def test_writing_a_file_is_refused(filled, tmp_path: Path, scope: dict, attack: str) -> None:
    out = tmp_path / "stolen.csv"
    with pytest.raises(ReadOnlyViolation, match="Cypher refused: (COPY|EXPORT)"):
        cypher(attack.format(out=out), **scope)
    assert not out.exists()


@pytest.mark.parametrize("attack", ["INSTALL json", "LOAD EXTENSION json",
                                    "ATTACH '/tmp/other.lbug' AS other (dbtype lbug)",
                                    "CALL threads = 1", "CALL clear_warnings()",
                                    "BEGIN TRANSACTION", "CHECKPOINT"])
def test_engine_control_is_refused(attack: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="Cypher refused"):
        check(attack)


def test_the_cli_names_what_it_refused(filled) -> None:
    result = CliRunner().invoke(cli, ["graph", "cypher", "MATCH (e:Entity) DETACH DELETE e"])
    assert result.exit_code == 1
    assert "Cypher refused: DETACH" in result.output and "only reads" in result.output
    assert cypher(COUNT).rows[0][0] > 0


def test_reads_that_spell_those_words_still_run(filled) -> None:
    """In strings, backquotes, comments, as properties, labels, map keys, variables before
    ``:``, parameters and aliases, the refused words are names, not clauses."""
    reads = {
        "MATCH (e:Entity) WHERE e.`dlprov:ds_tag` <> 'DELETE; COPY x TO \\'/tmp/y\\'' "
        "AND e.`dlprov:ds_tag` = \"otest\" RETURN count(e) AS set": [(2,)],
        "MATCH (load:Entity) WHERE load.`dlprov:ds_tag` = $tag RETURN count(*) AS copy": [(2,)],
        "RETURN {set: 1, delete: 2}.set AS `create` // then DETACH DELETE everything": [(1,)],
        "/* LOAD FROM '/etc/passwd' */ MATCH (e:Entity)-[:wasGeneratedBy]->(a:Activity) "
        "WHERE e.`dlprov:ds_tag` = 'otest' RETURN count(a) AS merge": [(2,)],
        "CALL table_info('Entity') WHERE name = 'id' RETURN type": [("STRING",)],
    }
    for query, rows in reads.items():
        assert cypher(query, params={"tag": "otest"}).rows == rows, query



@pytest.mark.parametrize("query", ["RETURN 'open LOAD FROM x", "RETURN 1 /* COPY", "RETURN `x"])
def test_a_literal_left_open_is_an_error_not_a_pass(query: str) -> None:
    with pytest.raises(QueryError, match="never closed"):
        check(query)


@pytest.mark.parametrize("query", ["RETURN 1 AS COPY (RETURN 1) TO '{out}'",
                                   "MATCH (e:Entity) RETURN e.COPY (RETURN 1) TO '{out}'",
                                   "RETURN {{a: COPY (RETURN 1) TO '{out}'}}"])
def test_a_word_where_only_a_name_goes_is_no_clause(filled, tmp_path: Path, query: str) -> None:
    """The guard lets these pass as names; ladybug's parser agrees, so nothing runs."""
    out = tmp_path / "stolen.csv"
    with pytest.raises(QueryError, match="Parser exception"):
        cypher(query.format(out=out))
    assert not out.exists()
