"""The read-only SQL guard: which statements a user may run, and the limits they run under.

Every front door that runs SQL written by a user (``dlprov sql``, the server, the UI) runs it with
:func:`run_read_only`, which stacks these defences:

1. The statement is parsed by sqlglot in the backend's dialect (:func:`check_read_only`): exactly
   one statement, a query (SELECT, WITH … SELECT, VALUES, EXPLAIN of a query), holding no write
   (a data-modifying CTE, SELECT … INTO, FOR UPDATE) and calling no function that reaches outside
   the database (server files, large objects, other sessions, settings, remote connections).
   On PostgreSQL the SQL that runs is the one sqlglot writes back from the checked tree, so what
   was checked is what runs (PostgreSQL and sqlglot could read exotic text differently).
2. The database refuses writes: PostgreSQL runs it in a READ ONLY transaction with a statement
   timeout; SQLite behind an authorizer that allows reads only, with ``query_only``, a
   progress-handler timeout and a cap on the length of any value.
3. The rows fetched into memory are bounded in number and bytes.
4. Defence in depth, the deployer's part: a database role that can only read (``read_url``).
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from dlprov.errors import DlprovError, QueryError, QueryLimitExceeded, ReadOnlyViolation
from dlprov.store.failures import one_line

if TYPE_CHECKING:
    from sqlglot import exp

TIMEOUT_ENV = "DLPROV_SQL_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 100_000
MAX_VALUE_BYTES = 100 * 2**20  # any one string, blob or row (SQLite's SQLITE_LIMIT_LENGTH)
MAX_RESULT_BYTES = 512 * 2**20  # the text and bytes of all fetched rows together

_DIALECTS = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite"}

# Statement kinds that write or act outside the query, wherever they appear in the tree.
_WRITE_LABELS = {
    "Insert": "INSERT", "Update": "UPDATE", "Delete": "DELETE", "Merge": "MERGE",
    "Create": "CREATE", "Drop": "DROP", "Alter": "ALTER", "TruncateTable": "TRUNCATE",
    "Copy": "COPY", "Into": "SELECT … INTO (it creates a table)",
    "Lock": "FOR UPDATE/SHARE (it locks rows)", "Set": "SET", "Pragma": "PRAGMA",
    "Attach": "ATTACH", "Detach": "DETACH", "Transaction": "BEGIN", "Commit": "COMMIT",
    "Rollback": "ROLLBACK", "Grant": "GRANT", "Revoke": "REVOKE", "Analyze": "ANALYZE",
    "Use": "USE", "LoadData": "LOAD DATA", "Kill": "KILL", "Declare": "DECLARE",
    "Execute": "EXECUTE", "Export": "EXPORT", "Cache": "CACHE", "Uncache": "UNCACHE",
    "Refresh": "REFRESH", "Command": "",
}

# Functions that reach outside the database: server files, large objects (files in the
# database), other sessions, configuration, replication and WAL, notifications, sequences,
# remote connections, functions that run SQL text given as a string, extensions.
_DENIED_FUNCTIONS = frozenset({
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_reload_conf",
    "pg_rotate_logfile", "pg_logfile_rotate", "set_config", "pg_promote", "pg_notify",
    "pg_import_system_collations", "nextval", "setval", "ts_stat", "ts_rewrite", "loread",
    "lowrite", "pg_start_backup", "pg_stop_backup", "load_extension", "fts3_tokenizer",
    "readfile", "writefile", "edit",
})
_DENIED_PREFIXES = (
    "pg_ls_", "pg_read_", "pg_file_", "lo_", "dblink", "pg_terminate_", "pg_cancel_",
    "pg_advisory_", "pg_try_advisory_", "pg_reload_", "pg_rotate_", "pg_create_", "pg_drop_",
    "pg_copy_", "pg_replication_", "pg_logical_", "pg_switch_", "pg_backup_", "pg_wal_replay_",
    "pg_stat_reset", "pg_log_", "query_to_", "table_to_", "cursor_to_", "schema_to_",
    "database_to_",
)

# EXPLAIN [ (options) | ANALYZE VERBOSE … | QUERY PLAN ] <query>: sqlglot keeps EXPLAIN as text.
_EXPLAIN = re.compile(
    r"\s*(?P<options>\([\w\s,]*\)|(?:(?:ANALY[SZ]E|VERBOSE|QUERY\s+PLAN)\s+)*)(?P<query>.*)\Z",
    re.IGNORECASE | re.DOTALL)

# What a read may do in SQLite; anything else (writes, DDL, ATTACH, PRAGMA) is denied at prepare.
_SQLITE_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ,
                                  sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE,
                                  sqlite3.SQLITE_TRANSACTION})
_SQLITE_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list",
                                  "index_info", "database_list", "foreign_key_list"})
_WRITE_SIGNS = ("readonly database", "read-only transaction", "not authorized",
                "cannot modify", "must not contain data-modifying")


@dataclass(frozen=True)
class ReadLimits:
    """How long a statement may run and how much of its result is fetched into memory.
    ``timeout_s`` 0 and ``max_rows`` 0 mean no limit."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS
    max_value_bytes: int = MAX_VALUE_BYTES
    max_result_bytes: int = MAX_RESULT_BYTES

    @classmethod
    def resolve(cls, timeout_s: float | None = None, max_rows: int | None = None) -> "ReadLimits":
        """The limits with ``None`` replaced by the defaults (the timeout: ``$DLPROV_SQL_TIMEOUT``
        seconds, else 30). A negative or unreadable value raises QueryError naming it."""
        if timeout_s is None:
            timeout_s = _env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
        if max_rows is None:
            max_rows = DEFAULT_MAX_ROWS
        if not 0 <= timeout_s < 10**7:
            raise QueryError(f"timeout {timeout_s!r} is not a number of seconds (0: none)")
        if max_rows < 0:
            raise QueryError(f"max_rows {max_rows!r} is negative (0: no limit)")
        return cls(float(timeout_s), int(max_rows))


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise QueryError(f"{name}={value!r} is not a number of seconds") from None


# dlprov's own statements are not parsed: an EXPLAIN of one is told by its first word (a cursor
# cannot be declared for it on PostgreSQL).
_EXPLAIN_WORD = re.compile(r"\s*EXPLAIN\b", re.IGNORECASE)


@dataclass(frozen=True)
class CheckedStatement:
    """A statement that passed :func:`check_read_only`: its sqlglot tree and the SQL to run."""

    tree: exp.Expression | None  # None for dlprov's own statements, which are not parsed
    text: str
    explain: bool = False


def check_read_only(statement: str, dialect: str) -> CheckedStatement:
    """Parse ``statement`` in ``dialect`` (``"sqlite"`` or ``"postgresql"``) and allow it only if
    it is one query that neither writes nor reaches outside the database. Raises
    ReadOnlyViolation naming what was found, or QueryError when it cannot be parsed."""
    try:
        read = _DIALECTS[dialect]
    except KeyError:
        raise QueryError(f"read-only SQL is not available on {dialect!r}") from None
    return _check(statement, read, allow_explain=True)


@cache
def _writes() -> tuple[type, ...]:
    # sqlglot is imported on first use: `import dlprov` in a training script must stay quick.
    from sqlglot import exp
    return tuple(getattr(exp, name) for name in _WRITE_LABELS if hasattr(exp, name))


def _check(statement: str, dialect: str, *, allow_explain: bool) -> CheckedStatement:
    from sqlglot import exp
    trees = _parse(statement, dialect)
    if len(trees) != 1:
        found = ", ".join(_label(tree) for tree in trees) or "nothing"
        raise ReadOnlyViolation(f"dlprov sql runs exactly one statement, read-only; found "
                                f"{len(trees)}: {found}")
    [tree] = trees
    if allow_explain and isinstance(tree, exp.Command) and tree.name.upper() == "EXPLAIN":
        return _check_explain(tree, dialect)
    if not isinstance(tree, (exp.Query, exp.Values)):
        raise ReadOnlyViolation(f"dlprov sql is read-only: it runs queries (SELECT, WITH … "
                                f"SELECT, VALUES, EXPLAIN of a query); found {_label(tree)}")
    for node in tree.walk():
        if isinstance(node, _writes()):
            raise ReadOnlyViolation(f"dlprov sql is read-only; the statement holds "
                                    f"{_label(node)}")
        if isinstance(node, exp.Func):
            _check_function(node)
    if dialect == "sqlite":
        # SQLite's authorizer judges what actually runs (see run_read_only): keep the text.
        return CheckedStatement(tree, statement)
    return CheckedStatement(tree, _write_back(tree, dialect))


@cache
def _quiet_command_fallback() -> None:
    # sqlglot warns when it keeps a statement as a Command (EXPLAIN, DO, …); this module judges
    # those itself, so the warning would only be noise on the user's terminal.
    logging.getLogger("sqlglot").addFilter(
        lambda record: "Falling back to parsing as a 'Command'" not in record.getMessage())


def _parse(statement: str, dialect: str) -> list[exp.Expression]:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError
    _quiet_command_fallback()
    try:
        return [tree for tree in sqlglot.parse(statement, read=dialect) if tree is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first['line']}, column {first['col']})" if "line" in first else ""
        reason = re.sub(r"<Token token_type: \S+ text: (.*?), line.*?>", r"'\1'",
                        str(first.get("description", exc)))
        raise QueryError(f"SQL error: cannot parse the statement{where}: "
                         f"{one_line(reason)}") from None
    except TokenError as exc:
        raise QueryError(f"SQL error: cannot read the statement: {one_line(exc)}") from None


def _check_explain(tree: exp.Command, dialect: str) -> CheckedStatement:
    match = _EXPLAIN.match(tree.expression.name if tree.expression else "")
    if match is None or not match["query"].strip():
        raise ReadOnlyViolation("dlprov sql is read-only: EXPLAIN must be followed by a query")
    inner = _check(match["query"], dialect, allow_explain=False)
    words = ["EXPLAIN", *match["options"].split(), inner.text]
    return CheckedStatement(inner.tree, " ".join(words), explain=True)


def _check_function(node: exp.Func) -> None:
    from sqlglot import exp
    names = {node.name.lower()} if isinstance(node, exp.Anonymous) else {
        name.lower() for name in type(node).sql_names()}
    for name in names:
        if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
            raise ReadOnlyViolation(
                f"dlprov sql only reads the store; the function {name}() reaches outside it "
                f"(server files, sessions, settings or connections) and is refused")


def _label(node: exp.Expression) -> str:
    from sqlglot import exp
    if isinstance(node, exp.Command):
        return str(node.name).upper()
    return _WRITE_LABELS.get(type(node).__name__) or node.key.upper()


def _write_back(tree: exp.Expression, dialect: str) -> str:
    """The SQL of ``tree``; named placeholders stay ``:name`` (SQLAlchemy's ``text()`` form)."""
    from sqlglot import exp

    def named(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            return exp.var(f":{node.name}")
        return node
    return tree.transform(named).sql(dialect=dialect, comments=False, normalize_functions=False)


def _allow_reads_only(action: int, name: str | None, value: str | None, *_: Any) -> int:
    if action in _SQLITE_READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (
            name in _SQLITE_READ_PRAGMAS
            or (name == "query_only" and str(value).lower() in ("on", "1", "true"))):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def run_read_only(conn: Connection, statement: str, params: dict[str, Any] | None = None,
                  limits: ReadLimits | None = None, *,
                  parse: bool = True) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check ``statement`` (see :func:`check_read_only`) and run it on ``conn`` under ``limits``
    (default: :meth:`ReadLimits.resolve`): the column names and the rows. ``conn`` should be a
    reading connection (see ``Store.read``); on PostgreSQL its transaction is made READ ONLY.

    ``parse=False`` is for SQL dlprov wrote itself (the questions: identifiers from the stored
    spec, every value bound): it skips the parse, which costs more than a small store's query,
    and keeps the database's own guards (read-only transaction, SQLite's authorizer, limits)."""
    limits = limits or ReadLimits.resolve()
    checked = (check_read_only(statement, conn.dialect.name) if parse
               else CheckedStatement(None, statement, bool(_EXPLAIN_WORD.match(statement))))
    deadline = time.monotonic() + limits.timeout_s if limits.timeout_s else float("inf")
    expired: list[bool] = []
    try:
        with _bounded(conn, limits, deadline, expired, own=not parse):
            # A user's SQL on PostgreSQL reads through a server-side cursor: rows come as they
            # are fetched, so a huge result is refused before it is held. dlprov's own SQL
            # (its results are one row per training at most) does not: PostgreSQL never plans
            # a cursor's query in parallel, which doubled Q2 at 10,000 executions.
            streamed = parse and not checked.explain and conn.dialect.name == "postgresql"
            options = {"stream_results": True} if streamed else {}
            result = conn.execution_options(**options).execute(text(checked.text), params or {})
            if not result.returns_rows:
                raise ReadOnlyViolation("the statement returns no rows; dlprov sql only reads")
            columns = list(result.keys())
            # SQLite's rows straight from the driver's cursor: plain tuples, and text() has no
            # result processors to apply (PostgreSQL's server-side cursor stays SQLAlchemy's)
            source = result.cursor if conn.dialect.name == "sqlite" else result
            return columns, _fetch(source, limits, deadline)
    except DBAPIError as exc:
        raise _explain_failure(exc, limits, bool(expired)) from None


@contextmanager
def _bounded(conn: Connection, limits: ReadLimits, deadline: float,
             expired: list[bool], own: bool = False) -> Iterator[None]:
    """The database's own guards for one statement, lifted afterwards. ``own``: a statement
    dlprov wrote (a question's)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        # Rows come through a server-side cursor, which PostgreSQL plans for its first tenth
        # of rows by default: nested loops that took Q2 at 10,000 runs from 0.15 to 5.5 s.
        # The caller reads every row, so plan for all of them.
        conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
        if own:
            # A question's recursive walk is estimated at millions of rows and reads a few
            # hundred: its cost passes jit_above_cost, and compiling took Q10 at 10,000 runs
            # 1.9 of its 2 s. A user's own analytical SQL keeps the server's setting.
            conn.exec_driver_sql("SET LOCAL jit = off")
        if limits.timeout_s:
            milliseconds = max(1, round(limits.timeout_s * 1000))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
        yield  # SET LOCAL ends with the transaction
        return
    raw = conn.connection.dbapi_connection

    def past_deadline() -> int:
        if time.monotonic() > deadline:
            expired.append(True)
            return 1  # SQLite interrupts the statement
        return 0

    previous = raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
    raw.set_authorizer(_allow_reads_only)
    if limits.timeout_s:
        raw.set_progress_handler(past_deadline, 10_000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)
        raw.set_authorizer(None)
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, previous)


_SIZED = (str, bytes, bytearray, memoryview)
_UNSIZED = {int, float, type(None), bool}


def _text_bytes(chunk: list) -> int:
    """The length of the text and bytes values of ``chunk``'s rows, a column at a time: a
    column of numbers costs one pass in C, not a Python test per value."""
    size = 0
    for at in range(len(chunk[0])):
        column = list(map(itemgetter(at), chunk))
        kinds = set(map(type, column))
        if kinds <= _UNSIZED:
            continue
        if len(kinds) == 1 and kinds <= {str, bytes}:
            size += sum(map(len, column))
        else:
            size += sum(len(value) for value in column if isinstance(value, _SIZED))
    return size


def _fetch(result, limits: ReadLimits, deadline: float) -> list[tuple[Any, ...]]:
    """The rows of ``result`` (SQLAlchemy's, or a DB-API cursor), as tuples, within ``limits``."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while chunk := result.fetchmany(1000):
        size += _text_bytes(chunk)
        rows.extend(chunk if type(chunk[0]) is tuple else map(tuple, chunk))
        if limits.max_rows and len(rows) > limits.max_rows:
            result.close()
            raise QueryLimitExceeded(
                f"the statement returns more than {limits.max_rows:,} rows, the limit of "
                f"read-only SQL: add a LIMIT, or raise it (--max-rows N; 0 for none)")
        if size > limits.max_result_bytes:
            result.close()
            raise QueryLimitExceeded(
                f"the result holds more than {limits.max_result_bytes // 2**20} MB of text "
                f"and bytes, the memory bound of read-only SQL: select fewer rows or columns")
        if time.monotonic() > deadline:  # PostgreSQL's timeout counts each fetch apart
            result.close()
            raise _timeout(limits)
    return rows


def _timeout(limits: ReadLimits) -> QueryLimitExceeded:
    return QueryLimitExceeded(
        f"the statement ran past its {limits.timeout_s:g} s limit (--timeout SECONDS or "
        f"${TIMEOUT_ENV} to change it); a recursive query needs a LIMIT or a stop condition")


def _explain_failure(exc: DBAPIError, limits: ReadLimits, expired: bool) -> DlprovError:
    message = one_line(exc.orig)
    lowered = message.lower()
    if expired or "statement timeout" in lowered:
        return _timeout(limits)
    if "string or blob too big" in lowered:
        return QueryLimitExceeded(
            f"a value or row would exceed {limits.max_value_bytes // 2**20} MB, the size "
            f"limit of read-only SQL ({message})")
    if any(sign in lowered for sign in _WRITE_SIGNS):
        return ReadOnlyViolation(f"dlprov sql is read-only; the statement would write "
                                 f"({message})")
    return DlprovError(f"SQL error: {message}")
