"""Telling a store's refusal of one record from an outage of the whole store.

A refusal is permanent for the record that caused it (a schema limit, a constraint, a value the
backend cannot hold): retrying the same record fails again, so it is set aside and the records
after it are written. An outage passes (the store is down, locked, full, read-only, replaced):
the records are kept and retried. When in doubt, an error is taken for an outage: keeping a
record costs a retry, refusing it costs the record.
"""
from __future__ import annotations

from sqlalchemy.exc import DBAPIError, NoResultFound, MultipleResultsFound, StatementError

from dlprov.errors import DlprovError, StoreUnavailable


class RecordRefused(DlprovError, ValueError):
    """The store cannot take one record, whatever is retried: ``reason`` says why."""


# PostgreSQL SQLSTATE classes (the first two characters) that refuse the statement's content:
# data exception, integrity constraint, syntax or access rule, program limit (e.g. 54011 too many
# columns), feature not supported, cardinality, PL/pgSQL raise (a trigger), check option.
_PG_REFUSING = frozenset({"22", "23", "42", "54", "0A", "21", "P0", "44", "2F", "39"})
# Within the classes above, the states that say the store changed under the writer (a table or
# schema dropped or renamed, a privilege revoked): an outage, the writer re-reads the store.
_PG_PASSING = frozenset({"42P01", "42703", "3F000", "42501", "42P07"})

# SQLite primary result codes that refuse the content; every other code (BUSY, LOCKED, IOERR,
# FULL, READONLY, CANTOPEN, CORRUPT, NOTADB, PERM, ...) passes.
_SQLITE_REFUSING = frozenset({"SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG",
                              "SQLITE_RANGE"})
# SQLITE_ERROR is generic: these messages refuse the content ("no such table" does not: a table
# renamed or a file replaced under the writer is an outage).
_SQLITE_REFUSING_MESSAGES = ("too many columns", "datatype mismatch", "string or blob too big",
                             "constraint failed", "integer overflow", "too many arguments")

# Plain DB-API exception classes, for a driver error that carries no SQLSTATE or result code
# (psycopg's own checks, e.g. a NUL character in text).
_DBAPI_REFUSING = ("DataError", "IntegrityError", "NotSupportedError", "ProgrammingError")

# Python exceptions that say the record itself is wrong (a writer lookup that found nothing,
# a value of the wrong type): never a passing condition.
_CONTENT_ERRORS = (NoResultFound, MultipleResultsFound, KeyError, TypeError, ValueError,
                   ArithmeticError, UnicodeError)


def is_refusal(exc: BaseException) -> bool:
    """Whether the store answered and refused the content that raised ``exc`` (True), or may
    take it later (False: a store down, locked, full, read-only, replaced)."""
    if isinstance(exc, StoreUnavailable):
        return False
    if isinstance(exc, DlprovError):
        return True
    if isinstance(exc, DBAPIError):
        return _driver_refuses(exc.orig)
    if isinstance(exc, StatementError):  # a bind processor's error, before the driver
        return exc.orig is not None and is_refusal(exc.orig)
    return isinstance(exc, _CONTENT_ERRORS)


def _driver_refuses(orig: BaseException | None) -> bool:
    if orig is None:
        return False
    state = getattr(orig, "sqlstate", None)
    if state:
        return state not in _PG_PASSING and state[:2] in _PG_REFUSING
    code = getattr(orig, "sqlite_errorname", None)
    if code:
        primary = "_".join(code.split("_")[:2])  # SQLITE_CONSTRAINT_UNIQUE -> SQLITE_CONSTRAINT
        if primary in _SQLITE_REFUSING:
            return True
        if primary == "SQLITE_ERROR":
            message = str(orig).lower()
            return any(text in message for text in _SQLITE_REFUSING_MESSAGES)
        return False
    names = {cls.__name__ for cls in type(orig).__mro__}
    if "OperationalError" in names or "InterfaceError" in names:
        return False
    return any(name in names for name in _DBAPI_REFUSING) or isinstance(orig, _CONTENT_ERRORS)


def reason_of(exc: BaseException) -> str:
    """A one-line reason for a refusal, naming the driver's message rather than SQLAlchemy's
    wrapping (the statement and its parameters)."""
    inner = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text[:500]}" if text else type(inner).__name__
