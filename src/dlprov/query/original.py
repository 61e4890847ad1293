"""The original DLProv's query forms, read as ``dlprov sql`` reads its own.

The original stored each dataflow in a MonetDB schema named after its tag, so its users (and its
``generate-prov`` scripts) wrote ``SET SCHEMA "alexnet"; SELECT ... FROM itrain`` or
``SELECT ... FROM "alexnet".itrain``. Here the leading ``SET SCHEMA "tag";`` only chooses the
dataflow (it is never run: the statement after it is the one the read-only guard judges), and
``"tag".set`` is written as the set's table on the store's backend: ``"<tag>__<set>"`` in SQLite,
``"<tag>".<set>`` with the stored (lower-case) tag in PostgreSQL.
"""
from __future__ import annotations

import re
from typing import Callable

from dlprov.errors import NameRejected, QueryError
from dlprov.model.names import check_dataflow_tag

# SET SCHEMA "tag"; (or an unquoted tag) before the statement; comments are not looked through.
_SET_SCHEMA = re.compile(r'\A\s*SET\s+SCHEMA\s+(?:"(?P<quoted>(?:[^"]|"")*)"|(?P<bare>[\w.-]+))'
                         r'\s*;', re.IGNORECASE)


def split_set_schema(statement: str) -> tuple[str | None, str]:
    """(the dataflow a leading ``SET SCHEMA "tag";`` chooses, or None; the statement after it).
    A tag that is no dataflow tag raises QueryError."""
    found = _SET_SCHEMA.match(statement)
    if found is None:
        return None, statement
    tag = found.group("bare") or (found.group("quoted") or "").replace('""', '"')
    try:
        check_dataflow_tag(tag)
    except NameRejected as exc:
        raise QueryError(f"SET SCHEMA {tag!r}: {exc}") from None
    return tag, statement[found.end():]


def qualify_sets(statement: str, dialect: str,
                 locate: Callable[[str, str], tuple[str | None, str] | None]) -> str:
    """``statement`` with every ``"tag".set`` table written as ``locate(tag, set)`` gives it:
    (schema or None, table) for a set of a stored dataflow, None for anything else, which is
    left as written. The statement is returned unchanged when nothing was rewritten, so the
    usual queries run as typed; sqlglot writes a rewritten one back in ``dialect``."""
    if '.' not in statement:
        return statement
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    read = "postgres" if dialect == "postgresql" else dialect
    try:
        trees = sqlglot.parse(statement, read=read)
    except (ParseError, TokenError):
        return statement  # the guard reports the parse error in its own words
    if len(trees) != 1 or not isinstance(trees[0], (exp.Query, exp.Values)):
        return statement  # the guard refuses it; let it name what it found, as typed
    changed = False
    for tree in trees:
        for table in list(tree.find_all(exp.Table)):
            if not table.db or table.catalog:
                continue
            where = locate(table.db, table.name)
            if where is None:
                continue
            schema, name = where
            if table.alias == "" and schema is None:
                # Columns may still say itrain.loss: the set's name stays the table's alias.
                table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
            table.set("db", None if schema is None else exp.to_identifier(schema, quoted=True))
            table.set("this", exp.to_identifier(name, quoted=True))
            changed = True
    return trees[0].sql(dialect=read) if changed else statement


def choose_schema(set_schema: str | None, dataflow: str | None) -> str | None:
    """The dataflow ``SET SCHEMA`` and ``--dataflow`` choose together; QueryError if they differ."""
    if set_schema is None:
        return dataflow
    if dataflow is not None and dataflow.lower() != set_schema.lower():
        raise QueryError(f"the statement sets schema {set_schema!r} but dataflow {dataflow!r} "
                         f"was asked for: give one of them")
    return set_schema
