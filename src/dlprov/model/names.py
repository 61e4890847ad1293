"""Rules for names that become SQL identifiers (dataflow, transformation, set, attribute tags).

Names are validated, then lower-cased as in the original DfAnalyzer. They are always quoted by
SQLAlchemy and never interpolated into SQL text.
"""
from __future__ import annotations

import re

from dlprov.errors import NameRejected

_PLAIN = re.compile(r"[a-z][a-z0-9_]*\Z")
MAX_NAME_LENGTH = 48

# Names of the store's own tables: a set named like one would shadow it in `dlprov sql`.
RESERVED = frozenset({
    "dataflow", "dataflow_version", "data_transformation", "data_set", "data_dependency",
    "attribute", "dataflow_execution", "task", "task_dependency", "task_usage", "environment",
    "trained_model",
    "sqlite_master", "sqlite_schema", "information_schema", "pg_catalog", "public",
})


def check_name(kind: str, name: object) -> str:
    """Return ``name`` lower-cased if it is a plain identifier, else raise :class:`NameRejected`.

    ``kind`` says what the name is for ("dataflow", "set", "attribute", ...), for the message.
    """
    if not isinstance(name, str):
        raise NameRejected(f"{kind} name must be a string, got {type(name).__name__}: {name!r}")
    lowered = name.lower()
    if not _PLAIN.match(lowered) or len(lowered) > MAX_NAME_LENGTH:
        raise NameRejected(
            f"{kind} name {name!r} is not a plain identifier: use a letter followed by letters, "
            f"digits or underscores, at most {MAX_NAME_LENGTH} characters")
    if "__" in lowered:
        raise NameRejected(f"{kind} name {name!r} must not contain a double underscore")
    if lowered in RESERVED:
        raise NameRejected(f"{kind} name {name!r} is reserved by the store; choose another")
    if kind == "attribute" and (lowered == "id" or lowered.endswith("_task_id")):
        raise NameRejected(f"attribute name {name!r} would collide with a set table's own "
                           f"columns (id, <transformation>_task_id); choose another")
    return lowered


# The DL dataflow's names in the DLProv paper: queries and integrations rely on them.
ITRAIN, OTRAIN, OTRAINEDMODEL, OTEST = "itrain", "otrain", "otrainedmodel", "otest"
TRAIN, TEST = "train", "test"


def task_column(transformation: str) -> str:
    """The set-table column that holds the id of a task of ``transformation``."""
    return f"{transformation}_task_id"
