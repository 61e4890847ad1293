"""Rules for names that become SQL identifiers (dataflow, transformation, set, attribute tags).

Names are validated, then lower-cased as in the original DfAnalyzer. They are always quoted by
SQLAlchemy and never interpolated into SQL text. A dataflow tag is written as users of the
original wrote it (``KerasProv-example``, ``dnnp-1``, ``exp.v2``): it only ever becomes a quoted
schema name or part of a quoted table name, so ``-`` and ``.`` are allowed there.
"""
from __future__ import annotations

import functools
import re

from dlprov.errors import NameRejected

_PLAIN = re.compile(r"[a-z][a-z0-9_]*\Z")
MAX_NAME_LENGTH = 48
# The original's dataflow.tag is VARCHAR(50); its client lower-cased the tag, the server quoted it.
# Not ending in '.': a PROV-N local name (``dlprov:dataflow/<tag>``) cannot end with one.
_TAG = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9_-])?\Z")
MAX_TAG_LENGTH = 50

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
    if kind == "dataflow":
        return check_dataflow_tag(name)
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


def check_dataflow_tag(tag: object) -> str:
    """Return the dataflow ``tag`` lower-cased, as stored and matched (case-insensitively, as in
    the original), or raise :class:`NameRejected`: letters, digits, ``-``, ``.`` and ``_``,
    beginning with a letter or digit, not ending with ``.``, at most :data:`MAX_TAG_LENGTH`
    characters."""
    if not isinstance(tag, str):
        raise NameRejected(f"dataflow name must be a string, got {type(tag).__name__}: {tag!r}")
    lowered = tag.lower()
    # ASCII only: str.lower() maps some non-ASCII letters onto ASCII ones ("K" Kelvin sign -> k).
    if not tag.isascii() or not _TAG.match(lowered) or len(lowered) > MAX_TAG_LENGTH:
        raise NameRejected(
            f"dataflow name {tag!r} is not a dataflow tag: use letters, digits, '-', '.' or '_', "
            f"beginning with a letter or digit, not ending with '.', at most "
            f"{MAX_TAG_LENGTH} characters (e.g. 'KerasProv-example')")
    if "__" in lowered:  # SQLite names a set's table <df_tag>__<set_tag>
        raise NameRejected(f"dataflow name {tag!r} must not contain a double underscore")
    if lowered in RESERVED or lowered.startswith("pg_"):  # PostgreSQL refuses pg_* schemas
        raise NameRejected(f"dataflow name {tag!r} is reserved by the store; choose another")
    return lowered


# The DL dataflow's names in the DLProv paper: queries and integrations rely on them.
ITRAIN, OTRAIN, OTRAINEDMODEL, OTEST = "itrain", "otrain", "otrainedmodel", "otest"
TRAIN, TEST = "train", "test"


def task_column(transformation: str) -> str:
    """The set-table column that holds the id of a task of ``transformation``."""
    return f"{transformation}_task_id"


_UNSAFE = re.compile(r"[^a-z0-9_]+")
_TASK_COLUMN = task_column("")  # "_task_id"


@functools.lru_cache(maxsize=4096)  # the same few metric names, every epoch or batch
def attribute_name(name: str) -> str:
    """A framework's metric name as an attribute name: ``train/loss`` -> ``train_loss``,
    ``val_acc@1`` -> ``val_acc_1``; never one the store refuses or a set table's own column:
    ``id`` -> ``m_id``, ``task`` -> ``m_task``, ``train_task_id`` -> ``train_taskid``. A name
    with nothing storable is spelled by its code points: ``🔥`` -> ``m_1f525``, ``""`` -> ``m``.

    Only the cleaning rule: different names may clean alike (``val/loss``, ``val-loss``); the
    integrations give those distinct columns (:mod:`dlprov.integrations.columns`)."""
    cleaned = re.sub("_+", "_", _UNSAFE.sub("_", str(name).lower())).strip("_")
    if not cleaned and name:
        cleaned = "_".join(f"{ord(c):x}" for c in str(name))
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m_{cleaned}"
    cleaned = cleaned[:MAX_NAME_LENGTH].rstrip("_")
    if cleaned.endswith(_TASK_COLUMN):
        cleaned = cleaned[:-len(_TASK_COLUMN)] + "_taskid"
    try:
        return check_name("attribute", cleaned)
    except NameRejected:  # id, and the store's reserved names: task, environment, ...
        return f"m_{cleaned}"[:MAX_NAME_LENGTH].rstrip("_")
