"""The read-only SQL guard: the parser's verdicts, then every probed attack on the real SQLite and
PostgreSQL stores, with the outcome it must have (refused, nothing changed, nothing created)."""
from __future__ import annotations

import resource
import time
import uuid

import pytest
from click.testing import CliRunner

import dlprov
from dlprov.store.store import Store
from dlprov.cli.main import cli
from dlprov.demo.workflow import LISTING_4
from dlprov.errors import QueryError, QueryLimitExceeded
from dlprov.query.guard import check_read_only
from tests.conftest import PG_URL, postgresql_home

DIALECTS = ["sqlite", "postgresql"]

# ---------------------------------------------------------------- the parser's verdicts


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("statement", [
    LISTING_4,
    "SELECT 1",
    "SELECT 1;",
    "VALUES (1), (2)",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5) "
    "SELECT i FROM r",
    "SELECT learning_rate FROM itrain WHERE learning_rate > :lr",
    "EXPLAIN SELECT * FROM otrain",
    "SELECT count(*) FROM otrain o JOIN task t ON t.id = o.train_task_id -- a comment",
])
def test_queries_are_allowed(dialect, statement):
    checked = check_read_only(statement, dialect)
    assert checked.text.strip()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("statement, found", [
    ("SELECT 1; COMMIT; DELETE FROM otrain; UPDATE itrain SET learning_rate = 42; SELECT 2",
     "found 5: SELECT, COMMIT, DELETE, UPDATE, SELECT"),
    ("SELECT 1; COMMIT; CREATE TABLE public.x(a INT)", "found 3"),
    ("DELETE FROM otrain", "found DELETE"),
    ("UPDATE itrain SET learning_rate = 42", "found UPDATE"),
    ("INSERT INTO dataflow(tag) VALUES ('x')", "found INSERT"),
    ("DROP TABLE task", "found DROP"),
    ("CREATE TABLE evil(a INT)", "found CREATE"),
    ("ALTER TABLE task ADD COLUMN x INT", "found ALTER"),
    ("WITH d AS (DELETE FROM otrain RETURNING *) SELECT * FROM d", "holds DELETE"),
    ("WITH u AS (UPDATE itrain SET learning_rate = 1 RETURNING *) SELECT 1", "holds UPDATE"),
    ("SELECT * INTO copied FROM otrain", "SELECT … INTO"),
    ("SELECT * FROM otrain FOR UPDATE", "FOR UPDATE"),
    ("EXPLAIN ANALYZE DELETE FROM otrain", "found DELETE"),
    ("EXPLAIN (ANALYZE, BUFFERS) UPDATE itrain SET learning_rate = 1", "found UPDATE"),
    ("EXPLAIN EXPLAIN SELECT 1", "found EXPLAIN"),
    ("", "found 0: nothing"),
])
def test_writes_and_several_statements_are_refused_naming_what_was_found(dialect, statement,
                                                                         found):
    with pytest.raises(dlprov.ReadOnlyViolation, match=found.replace("(", r"\(")):
        check_read_only(statement, dialect)


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO PROGRAM 'id'", "COPY otrain FROM '/etc/passwd'",
    "SET statement_timeout = 0",
    "SET TRANSACTION READ WRITE", "BEGIN", "COMMIT", "DO $$ BEGIN DELETE FROM otrain; END $$",
    "CALL f()", "LOAD 'plpgsql'", "LISTEN x", "NOTIFY x", "PREPARE p AS SELECT 1", "EXECUTE p",
    "DECLARE c CURSOR FOR SELECT 1", "VACUUM", "CHECKPOINT", "DISCARD ALL", "RESET ALL",
    "GRANT SELECT ON otrain TO public", "TRUNCATE otrain", "SHOW data_directory",
])
def test_postgresql_commands_are_refused(statement):
    with pytest.raises(dlprov.ReadOnlyViolation, match="read-only|one statement"):
        check_read_only(statement, "postgresql")


@pytest.mark.parametrize("statement", [
    "PRAGMA journal_mode = DELETE", "ATTACH DATABASE 'other.db' AS other", "DETACH other",
    "VACUUM INTO '/tmp/copy.db'", "REINDEX", "ANALYZE", "SELECT load_extension('x')",
])
def test_sqlite_commands_are_refused(statement):
    with pytest.raises(dlprov.ReadOnlyViolation):
        check_read_only(statement, "sqlite")


DENIED_CALLS = [
    "pg_read_file('/etc/passwd')", "pg_read_binary_file('/etc/passwd')", "pg_ls_dir('.')",
    "pg_ls_logdir()", "pg_ls_waldir()", "pg_stat_file('/etc/passwd')",
    "lo_import('/etc/passwd')", "lo_export(1, '/tmp/x')", "lo_get(1)", "loread(0, 10)",
    "pg_terminate_backend(1)", "pg_cancel_backend(1)", "pg_reload_conf()",
    "pg_rotate_logfile()", "set_config('statement_timeout', '0', false)",
    "dblink('host=x', 'SELECT 1')", "dblink_connect('host=x')", "pg_advisory_lock(1)",
    "pg_try_advisory_xact_lock(1)", "query_to_xml('DELETE FROM otrain', true, true, '')",
    "table_to_xml('otrain', true, true, '')", "cursor_to_xml('c', 1, true, true, '')",
    "query_to_xml_and_xmlschema('SELECT 1', true, true, '')", "ts_stat('SELECT 1')",
    "nextval('s')", "setval('s', 1)", "pg_notify('c', 'x')", "pg_file_write('x', 'y', false)",
    "pg_switch_wal()", "pg_create_restore_point('x')", "pg_stat_reset()",
]


@pytest.mark.parametrize("call", DENIED_CALLS)
@pytest.mark.parametrize("form", [
    "SELECT {call}",
    "SELECT pg_catalog.{call}",
    "SELECT * FROM {call}",
    "SELECT * FROM ROWS FROM ({call})",
    "SELECT (SELECT {call}) AS x",
    "WITH c AS (SELECT {call} AS v) SELECT v FROM c",
    "SELECT 1 FROM otrain WHERE {call} IS NOT NULL",
    "SELECT upper({call_quoted})",
])
def test_functions_that_reach_outside_are_refused_in_every_form(call, form):
    name, rest = call.split("(", 1)
    statement = form.format(call=call, call_quoted=f'"{name}"({rest}')
    with pytest.raises(dlprov.ReadOnlyViolation, match=rf"function {name}\(\)"):
        check_read_only(statement, "postgresql")


def test_function_names_are_matched_without_case():
    with pytest.raises(dlprov.ReadOnlyViolation, match="pg_read_file"):
        check_read_only("SELECT PG_READ_FILE('/etc/passwd')", "postgresql")


def test_parse_errors_are_one_clear_line():
    with pytest.raises(QueryError, match=r"cannot parse the statement \(line 1, column \d+\)"):
        check_read_only("SELEC 1 FROM", "sqlite")
    with pytest.raises(QueryError, match="cannot"):
        check_read_only("SELECT 'unterminated", "postgresql")


def test_postgresql_runs_what_was_checked():
    # PostgreSQL reads U&"\0070g_read_file" as pg_read_file; sqlglot does not: what runs is
    # sqlglot's rendering of the checked tree, which PostgreSQL cannot read as that call.
    checked = check_read_only(r"""SELECT U&"\0070g_read_file"('/etc/passwd')""", "postgresql")
    assert "U&" not in checked.text
    # named parameters stay in SQLAlchemy's form
    assert ":lr" in check_read_only("SELECT 1 WHERE 0.1 > :lr", "postgresql").text


# ---------------------------------------------------------------- SQLite, for real


def capture(df_tag: str, store=None, learning_rates=(0.1, 0.01)) -> None:
    for learning_rate in learning_rates:
        with dlprov.run(df_tag, store=store) as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=learning_rate)
                for epoch, accuracy in enumerate((0.5, 0.7), 1):
                    train.output("otrain", epoch=epoch, accuracy=accuracy * learning_rate * 10)


@pytest.fixture
def filled(store_path):
    capture("mnist")
    return store_path


@pytest.mark.parametrize("statement", [
    "DROP TABLE task", "ATTACH DATABASE 'other.db' AS other", "PRAGMA journal_mode = DELETE",
    "SELECT load_extension('/tmp/x')", "VACUUM INTO 'copy.db'",
    "WITH d AS (DELETE FROM otrain RETURNING *) SELECT 1",
    "SELECT 1; DELETE FROM otrain",
])
def test_sqlite_attacks_change_nothing(filled, sql, statement):
    before = sql("SELECT count(*) FROM mnist__otrain")
    with pytest.raises(dlprov.ReadOnlyViolation):
        dlprov.sql(statement)
    assert sql("SELECT count(*) FROM mnist__otrain") == before == [(4,)]
    assert not (filled.parent / "other.db").exists() and not (filled.parent / "copy.db").exists()


def test_recursive_query_without_limit_ends_with_a_clear_timeout(filled):
    started = time.monotonic()
    with pytest.raises(QueryLimitExceeded, match=r"ran past its 1 s limit.*LIMIT"):
        dlprov.sql("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                   "SELECT count(*) FROM r", timeout=1)
    assert time.monotonic() - started < 10


def test_timeout_comes_from_the_environment(filled, monkeypatch):
    monkeypatch.setenv("DLPROV_SQL_TIMEOUT", "0.5")
    with pytest.raises(QueryLimitExceeded, match="0.5 s limit"):
        dlprov.sql("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                   "SELECT max(i) FROM r")
    monkeypatch.setenv("DLPROV_SQL_TIMEOUT", "soon")
    with pytest.raises(QueryError, match="DLPROV_SQL_TIMEOUT='soon'"):
        dlprov.sql("SELECT 1")


def test_a_huge_value_is_refused_without_taking_the_memory(filled):
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(QueryLimitExceeded, match="exceed 100 MB"):
        dlprov.sql("SELECT length(randomblob(900000000))")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 150


def test_rows_beyond_the_limit_are_refused_not_dropped(filled):
    endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT i FROM r"
    with pytest.raises(QueryLimitExceeded, match="more than 100,000 rows"):
        dlprov.sql(endless)
    bounded = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 50) " \
              "SELECT i FROM r"
    assert len(dlprov.sql(bounded, max_rows=50).rows) == 50
    with pytest.raises(QueryLimitExceeded, match="more than 49 rows"):
        dlprov.sql(bounded, max_rows=49)
    assert len(dlprov.sql(bounded.replace("50", "150000"), max_rows=0).rows) == 150_000


def test_explain_and_parameters_run_on_sqlite(filled):
    plan = dlprov.sql("EXPLAIN QUERY PLAN SELECT * FROM otrain")
    assert any("mnist__otrain" in str(row) for row in plan.rows)
    assert dlprov.sql("SELECT count(*) FROM itrain WHERE learning_rate > :lr",
                      params={"lr": 0.05}).rows == [(1,)]


def test_the_connection_is_left_as_it_was(filled):
    # The guard lifts its authorizer, progress handler and length limit after the statement,
    # so a front door that reuses its connection is not left with them.
    import sqlite3

    from dlprov.query.guard import run_read_only
    from dlprov.store.store import Store
    store = Store(str(filled))
    with store.engine().connect() as conn:
        raw = conn.connection.dbapi_connection
        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        assert run_read_only(conn, "SELECT count(*) FROM task")[1] == [(2,)]
        assert raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) == limit
        conn.exec_driver_sql("CREATE TEMP TABLE allowed_again(a)")


def test_cli_options_and_read_url(filled, tmp_path):
    runner = CliRunner()
    slow = ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
            "SELECT count(*) FROM r")
    result = runner.invoke(cli, ["sql", "--timeout", "0.5", slow])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the statement ran past its 0.5 s limit (--timeout SECONDS or "
        "$DLPROV_SQL_TIMEOUT to change it); a recursive query needs a LIMIT or a stop condition"]
    result = runner.invoke(cli, ["sql", "--max-rows", "1", "SELECT * FROM otrain"])
    assert result.exit_code == 1 and "more than 1 rows" in result.output
    # --read-url: the statement goes through the other URL (here a copy that holds 3 runs)
    other = tmp_path / "other" / "dlprov.db"
    capture("mnist", store=other, learning_rates=(0.1, 0.2, 0.3))
    result = runner.invoke(cli, ["sql", "--read-url", str(other), "--format", "csv",
                                 "SELECT count(*) AS n FROM itrain"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["n", "3"]
    assert dlprov.sql("SELECT count(*) FROM itrain", read_url=str(other)).rows == [(3,)]


# ---------------------------------------------------------------- PostgreSQL, for real


@pytest.fixture
def pg():
    """(URL, dataflow, admin connection) of a filled PostgreSQL store in fresh schemas."""
    psycopg = pytest.importorskip("psycopg")
    with postgresql_home("guard") as (url, home):
        df_tag = f"{home}_df"
        capture(df_tag, store=url)
        admin = psycopg.connect(PG_URL, autocommit=True)
        try:
            yield url, df_tag, admin
        finally:
            admin.close()


def _pg_state(admin, df_tag: str) -> tuple:
    rows = admin.execute(f'SELECT count(*) FROM "{df_tag}".otrain').fetchone()[0]
    rates = admin.execute(f'SELECT learning_rate FROM "{df_tag}".itrain '
                          "ORDER BY learning_rate").fetchall()
    objects = admin.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]
    return rows, rates, objects


def test_postgresql_listing_4_runs_as_printed(pg):
    url, df_tag, _ = pg
    [best] = dlprov.sql(LISTING_4, store=url, dataflow=df_tag).records()
    assert best["learning_rate"] == 0.1
    plan = dlprov.sql("EXPLAIN ANALYZE SELECT * FROM otrain", store=url, dataflow=df_tag)
    assert "otrain" in str(plan.rows)
    assert dlprov.sql("SELECT count(*) FROM itrain WHERE learning_rate > :lr", store=url,
                      dataflow=df_tag, params={"lr": 0.05}).rows == [(1,)]
    assert dlprov.sql("SELECT '100%' AS p, '\\' AS b", store=url,
                      dataflow=df_tag).rows == [("100%", "\\")]


def test_postgresql_plans_for_every_row_of_the_cursor(pg):
    """Rows stream through a server-side cursor, which PostgreSQL would plan for its first
    tenth of rows (a fast-start plan that cost Q2 at 10,000 runs 5 s instead of 0.2 s): the
    read transaction plans for all of them, and only for its own duration."""
    from dlprov.query.sql import builtin_sql
    url, df_tag, _ = pg
    for run in (builtin_sql, dlprov.sql):
        found = run("SELECT current_setting('cursor_tuple_fraction')", store=url,
                    dataflow=df_tag)
        assert found.rows == [("1",)]
    with Store(url).read() as conn:
        assert conn.exec_driver_sql("SHOW cursor_tuple_fraction").scalar() == "0.1"
        server_jit = conn.exec_driver_sql("SHOW jit").scalar()
    # dlprov's own questions are not JIT-compiled (their estimates are far above what they
    # read); a user's SQL keeps the server's setting
    jit = "SELECT current_setting('jit')"
    assert builtin_sql(jit, store=url, dataflow=df_tag).rows == [("off",)]
    assert dlprov.sql(jit, store=url, dataflow=df_tag).rows == [(server_jit,)]


def test_postgresql_streams_a_users_rows_and_reads_its_own_at_once(pg):
    """A user's SQL reads through a server-side cursor (a huge result is refused before it is
    held); dlprov's own questions read at once, so that PostgreSQL may plan them in parallel
    (it never does for a cursor)."""
    from sqlalchemy import event

    from dlprov.query.sql import builtin_sql
    url, df_tag, _ = pg
    streamed: list[bool] = []
    engine = Store(url).engine(read_only=True)

    def note(_conn, _cursor, statement, _params, context, _many):
        if "FROM itrain" in statement:
            streamed.append(bool(context.execution_options.get("stream_results")))

    event.listen(engine, "before_cursor_execute", note)
    try:
        dlprov.sql("SELECT count(*) FROM itrain", store=url, dataflow=df_tag)
        builtin_sql("SELECT count(*) FROM itrain", store=url, dataflow=df_tag)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert streamed == [True, False]


def test_postgresql_commit_then_write_is_refused_and_changes_nothing(pg, tmp_path):
    url, df_tag, admin = pg
    before = _pg_state(admin, df_tag)
    table = f"x_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "ran"
    for statement in [
        "SELECT 1; COMMIT; DELETE FROM otrain; UPDATE itrain SET learning_rate = 42; SELECT 2",
        f"SELECT 1; COMMIT; CREATE TABLE public.{table}(a int)",
        f"COPY (SELECT 1) TO PROGRAM 'id > {marker}'",
        "WITH d AS (DELETE FROM otrain RETURNING *) SELECT count(*) FROM d",
        "EXPLAIN ANALYZE DELETE FROM otrain",
        "SELECT lo_import('/etc/passwd')",
        "SELECT * FROM otrain FOR UPDATE",
    ]:
        with pytest.raises(dlprov.ReadOnlyViolation):
            dlprov.sql(statement, store=url, dataflow=df_tag)
    assert _pg_state(admin, df_tag) == before
    assert admin.execute("SELECT to_regclass(%s)", [f"public.{table}"]).fetchone() == (None,)
    assert not marker.exists()


@pytest.mark.parametrize("call", [
    "pg_read_file('/etc/passwd')", "pg_catalog.pg_read_file('/etc/passwd')",
    "pg_ls_dir('.')", "pg_reload_conf()", "set_config('statement_timeout', '0', false)",
    "query_to_xml('DELETE FROM otrain', true, true, '')", "pg_advisory_lock(42)",
])
def test_postgresql_outside_functions_are_refused(pg, call):
    url, df_tag, _ = pg
    with pytest.raises(dlprov.ReadOnlyViolation, match="function"):
        dlprov.sql(f"SELECT {call}", store=url, dataflow=df_tag)


def test_postgresql_other_backends_are_left_alone(pg):
    url, df_tag, admin = pg
    pid = admin.execute("SELECT pg_backend_pid()").fetchone()[0]
    for call in (f"pg_terminate_backend({pid})", f"pg_cancel_backend({pid})"):
        with pytest.raises(dlprov.ReadOnlyViolation, match="function"):
            dlprov.sql(f"SELECT {call}", store=url, dataflow=df_tag)
    assert admin.execute("SELECT 1").fetchone() == (1,)


def test_postgresql_lexical_tricks_do_not_reach_files(pg):
    url, df_tag, _ = pg
    # PostgreSQL: a string '\' then a call; a parser that took \' for an escaped quote would
    # see one harmless string.
    with pytest.raises(dlprov.ReadOnlyViolation, match="pg_ls_dir"):
        dlprov.sql("SELECT '\\', pg_ls_dir('.') --'", store=url, dataflow=df_tag)
    # a Unicode-escaped name of pg_read_file: what runs is the checked rendering, which fails
    with pytest.raises(dlprov.DlprovError) as refused:
        dlprov.sql(r"""SELECT U&"\0070g_read_file"('/etc/passwd')""", store=url,
                   dataflow=df_tag)
    assert "root:" not in str(refused.value)


def test_postgresql_the_transaction_is_read_only_whatever_the_parser_allows(pg):
    # A function the parser cannot know writes: the READ ONLY transaction still refuses it.
    url, df_tag, admin = pg
    admin.execute(f'CREATE FUNCTION "{df_tag}".sneaky() RETURNS int LANGUAGE sql AS '
                  f"'DELETE FROM \"{df_tag}\".otrain; SELECT 1'")
    before = _pg_state(admin, df_tag)
    with pytest.raises(dlprov.ReadOnlyViolation, match="read-only transaction"):
        dlprov.sql("SELECT sneaky()", store=url, dataflow=df_tag)
    assert _pg_state(admin, df_tag) == before


def test_postgresql_statement_timeout(pg):
    url, df_tag, _ = pg
    started = time.monotonic()
    with pytest.raises(QueryLimitExceeded, match="1 s limit"):
        dlprov.sql("SELECT pg_sleep(25)", store=url, dataflow=df_tag, timeout=1)
    assert time.monotonic() - started < 10
    # the pooled connection is usable afterwards, without the limit
    assert dlprov.sql("SELECT 1", store=url, dataflow=df_tag).rows == [(1,)]


def test_postgresql_rows_are_bounded(pg):
    url, df_tag, _ = pg
    with pytest.raises(QueryLimitExceeded, match="more than 1,000 rows"):
        dlprov.sql("SELECT generate_series(1, 10000000)", store=url, dataflow=df_tag,
                   max_rows=1000)


def test_postgresql_read_only_role_through_read_url(pg):
    """The recipe of docs/security.md ("Read-only SQL"): a role that may only read."""
    url, df_tag, admin = pg
    home = df_tag.removesuffix("_df")
    role = f"{home}_reader"
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        for schema in (home, df_tag):
            admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        admin.execute(f'CREATE FUNCTION "{df_tag}".sneaky() RETURNS int LANGUAGE sql AS '
                      f"'DELETE FROM \"{df_tag}\".otrain; SELECT 1'")
        read_url = url.replace("postgres@", f"{role}@")
        [best] = dlprov.sql(LISTING_4, store=url, read_url=read_url, dataflow=df_tag).records()
        assert best["learning_rate"] == 0.1
        before = _pg_state(admin, df_tag)
        with pytest.raises(dlprov.DlprovError, match="read-only|permission denied"):
            dlprov.sql("SELECT sneaky()", read_url=read_url, dataflow=df_tag)
        assert _pg_state(admin, df_tag) == before
    finally:
        from dlprov.store.store import _shared
        for key in [k for k in _shared if role in k[0]]:
            _shared.pop(key).dispose()  # close the role's pooled connections before dropping
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')



def test_the_result_bound_counts_text_and_bytes_whatever_the_column_mixes(filled):
    from dlprov.query.guard import ReadLimits, run_read_only

    # 3,000 rows: a number column, a text column, a column mixing text, bytes, NULL and numbers
    rows = ("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 3000) "
            "SELECT i * 1.5, printf('%010d', i), CASE i % 4 WHEN 0 THEN zeroblob(5) "
            "WHEN 1 THEN 'abc' WHEN 2 THEN NULL ELSE i END FROM r")
    text_and_bytes = 3000 * 10 + 750 * 5 + 750 * 3
    with Store(filled).read() as conn:
        fits = ReadLimits(max_rows=0, max_result_bytes=text_and_bytes)
        assert len(run_read_only(conn, rows, limits=fits)[1]) == 3000
        tight = ReadLimits(max_rows=0, max_result_bytes=text_and_bytes - 1)
        with pytest.raises(QueryLimitExceeded, match="MB of text and bytes"):
            run_read_only(conn, rows, limits=tight)
