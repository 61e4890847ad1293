"""What the questions of Table 2 are built from: the paper's naming conventions, the statement a
question becomes, and the context (spec, quoting) a question's SQL is written in.

The SQL is text over the bare set names (``itrain``, ``otrain``, ...) that :func:`dlprov.sql`
resolves, so that what ``dlprov query … --sql`` prints runs as printed (given its parameters).
Identifiers come only from the stored spec, which admits plain names only, and are quoted by the
store's dialect; every value a user gives is a bind parameter (``:name``), never SQL text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.compiler import IdentifierPreparer

from dlprov.errors import QueryError
from dlprov.model.names import (
    task_column,
)
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.catalogue import choose_dataflow
from dlprov.query.sql import QueryResult, builtin_sql
from dlprov.store.store import Store, as_store
from dlprov.store.summary import FINITE_MAX, SUMMARIZED_SETS, trusted

# The paper's conventions: the transformations and sets every question relies on.

_PLAIN = re.compile(r"[a-z][a-z0-9_]*\Z")
_BIND = re.compile(r"(?<![:\w\\]):(?=\w)")  # where SQLAlchemy's text() sees a bind parameter


@dataclass
class Statement:
    """A question's SQL and its bind parameters, for one dataflow of one store."""

    question: str
    title: str
    dataflow: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    store: Store | None = field(default=None, repr=False, compare=False)
    #: the dataflow's spec as the statement was built from it (its set names: not read again)
    spec: DataflowSpec | None = field(default=None, repr=False, compare=False)

    def run(self) -> QueryResult:
        """Run the statement, read-only, with the dataflow's set names resolved."""
        return builtin_sql(self.sql, store=self.store, dataflow=self.dataflow, params=self.params,
                           spec=self.spec)

    def __str__(self) -> str:
        """The SQL under comments naming the question and the parameters' values. The whole
        text runs through :func:`dlprov.sql` with :attr:`params`."""
        lines = [f"{self.question.upper()}: {self.title}", f"dataflow: {self.dataflow}",
                 *self.notes]
        lines += [f"parameter {name} = {value!r}" for name, value in self.params.items()]
        # one line each, and no ":name" that a reader of the text would take for a parameter
        lines = [_BIND.sub(r"\\:", " ".join(line.splitlines())) for line in lines]
        return "".join(f"-- {line}\n" for line in lines) + self.sql.strip() + ";"


@dataclass
class Built:
    """What a question's builder returns: SQL text, its parameters, notes for ``--sql``."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """The dataflow a question is asked of, and how to name its tables and columns in SQL."""

    spec: DataflowSpec
    dialect: str
    preparer: IdentifierPreparer
    store: Store
    _summarized: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, store: Store | str | None, dataflow: str | None) -> "Context":
        store = as_store(store)
        with store.read() as conn:
            spec = choose_dataflow(conn, dataflow)
            return cls(spec, conn.dialect.name, conn.dialect.identifier_preparer, store)

    # -- names ------------------------------------------------------------------------------
    def q(self, name: str) -> str:
        """``name`` (a set, attribute or column from the spec) as an SQL identifier."""
        return self.preparer.quote(name)

    def task_col(self, transformation: str) -> str:
        return self.q(task_column(transformation))

    @staticmethod
    def literal(tag: str) -> str:
        """A spec tag as an SQL string literal; tags are plain names, so nothing to escape."""
        if not _PLAIN.match(tag):
            raise QueryError(f"{tag!r} is not a plain name")
        return f"'{tag}'"

    # -- what the spec has ------------------------------------------------------------------
    def has(self, set_tag: str, *attributes: str) -> bool:
        found = self.spec.sets.get(set_tag)
        return found is not None and all(a in found.attributes for a in attributes)

    def attributes(self, set_tag: str, *types: AttributeType) -> list[str]:
        """Attribute names of ``set_tag`` in declaration order (only of ``types``, if given)."""
        found = self.spec.sets[set_tag].attributes.values()
        return [a.name for a in found if not types or a.type in types]

    def require(self, question: str, set_tag: str, *attributes: str,
                transformation: str | None = None) -> None:
        """Raise :class:`QueryError` unless the dataflow has ``set_tag`` with ``attributes``,
        touched by ``transformation`` (it then has that transformation's task column)."""
        tag = self.spec.tag
        if set_tag not in self.spec.sets:
            raise QueryError(
                f"{question.upper()} needs set {set_tag!r}, which dataflow {tag!r} lacks (it has: "
                f"{', '.join(self.spec.sets) or 'none'}); the questions follow the paper's "
                f"names: itrain, otrain, otrainedmodel, otest of transformations train and test")
        missing = [a for a in attributes if a not in self.spec.sets[set_tag].attributes]
        if missing:
            raise QueryError(
                f"{question.upper()} needs attribute(s) {', '.join(missing)} of set {set_tag!r} "
                f"in dataflow {tag!r}; it has: {', '.join(self.attributes(set_tag)) or 'none'}")
        if transformation and transformation not in self.spec.transformations_of(set_tag):
            raise QueryError(
                f"{question.upper()} needs set {set_tag!r} to be used or produced by "
                f"transformation {transformation!r} in dataflow {tag!r}")

    def summarized(self, set_tag: str) -> bool:
        """Whether ``metric_summary`` holds every element of ``set_tag`` (see
        :func:`dlprov.store.summary.trusted`), so that an aggregate over its elements can read
        one summary row per task instead; asked once per context."""
        if set_tag not in SUMMARIZED_SETS or set_tag not in self.spec.sets:
            return False
        found = self._summarized.get(set_tag)
        if found is None:
            try:
                with self.store.read() as conn:
                    found = trusted(conn, self.spec, set_tag)
            except SQLAlchemyError:  # a store made before the summary, opened read-only
                found = False
            self._summarized[set_tag] = found
        return found

    def finite_number(self, expression: str) -> str:
        """A condition true where a numeric ``expression`` is a finite number (not NULL, NaN
        or infinite): what the metric summary aggregates, so both give the same averages."""
        return f"{expression} BETWEEN {-FINITE_MAX!r} AND {FINITE_MAX!r}"

    def finite(self, expression: str) -> str:
        """A condition true where a numeric ``expression`` is a number: SQLite stores NaN as
        NULL; PostgreSQL keeps NaN, which sorts above every number and would win a MAX."""
        if self.dialect == "postgresql":
            return f"{expression} <> 'NaN'"
        return f"{expression} IS NOT NULL"

    def select_attributes(self, alias: str, set_tag: str, prefix: str = "") -> list[str]:
        """``alias.attribute [AS prefix_attribute]`` for every attribute of ``set_tag``."""
        return [f"{alias}.{self.q(a)}" + (f" AS {self.q(prefix + a)}" if prefix else "")
                for a in self.attributes(set_tag)]


def need(question: str, name: str, value: Any, example: str) -> Any:
    """``value``, or a :class:`QueryError` saying that the question needs it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        option = "--" + name.replace("_", "-")
        raise QueryError(f"{question.upper()} needs {name}: give {name}={example} "
                         f"(or {option} {example} on the command line)")
    return value


def ctes(*parts: str) -> str:
    """``WITH RECURSIVE`` and the common table expressions given (empty ones skipped). RECURSIVE
    is harmless where no part recurses, and PostgreSQL needs it on the list when one does."""
    body = ",\n".join(p.strip() for p in parts if p and p.strip())
    return f"WITH RECURSIVE {body}" if body else ""
