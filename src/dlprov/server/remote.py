"""dlprov's own remote capture (``POST /v1/batch``) and the read endpoints (``GET /v1/...``).

A batch is a JSON list of records (the tuples of :mod:`dlprov.model.records`, datetimes tagged
as the recorder's spool tags them); it is applied in one transaction by the server's single
:class:`StoreWriter`, one batch at a time: all of it is stored, or none of it.
"""
from __future__ import annotations

import functools
import threading
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from dlprov.errors import (
    DlprovError,
    NotFound,
    QueryError,
    SpecError,
    StoreUnavailable,
    ValueRejected,
)
from dlprov.model import limits
from dlprov.model import records as r
from dlprov.model.names import check_name
from dlprov.model.spec import DataflowSpec
from dlprov.model.tags import check_notes, check_tags
from dlprov.recorder.spool import decode
from dlprov.store.store import Store
from dlprov.store.writer import StoreWriter

# Each kind's length and the positions that must be a str, a dict, a list.
_SHAPES: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    r.SPEC: (3, (1,), (2,), ()), r.EXEC_START: (3, (1,), (2,), ()),
    r.EXEC_END: (3, (1,), (2,), ()), r.TASK_START: (3, (1,), (2,), ()),
    r.TASK_END: (3, (1,), (2,), ()), r.ELEMENT: (4, (1, 2), (3,), ()),
    r.USE: (4, (1, 2), (), (3,)), r.ENVIRONMENT: (3, (1,), (2,), ()),
    r.MODEL: (3, (1,), (2,), ()), r.ANNOTATION: (3, (1,), (2,), ()),
}
MAX_RECORDS = 200_000


def decode_batches(body: Any) -> list[tuple[str | None, list[tuple]]]:
    """The ``(batch_id, records)`` pairs of a ``/v1/batch`` body: a JSON list of records (one
    batch without id) or ``{"batches": [[batch_id or null, [record, ...]], ...]}``."""
    if isinstance(body, list):
        return [(None, decode_batch(body))]
    batches = body.get("batches") if isinstance(body, dict) else None
    if not isinstance(batches, list) or not all(
            isinstance(b, list) and len(b) == 2 and (b[0] is None or isinstance(b[0], str))
            for b in batches):
        raise ValueRejected('a batch body is a JSON list of records, or {"batches": '
                            '[[batch_id or null, [record, ...]], ...]}')
    if sum(len(b[1]) if isinstance(b[1], list) else 0 for b in batches) > MAX_RECORDS:
        raise ValueRejected(f"a request holds at most {MAX_RECORDS} records")
    return [(b[0][:100] if b[0] else None, decode_batch(b[1])) for b in batches]


def decode_batch(body: Any) -> list[tuple]:
    """The records of one batch, checked for shape; raises ValueRejected."""
    if not isinstance(body, list):
        raise ValueRejected("a batch is a JSON list of records")
    if len(body) > MAX_RECORDS:
        raise ValueRejected(f"a batch holds at most {MAX_RECORDS} records, got {len(body)}")
    records = []
    for number, raw in enumerate(body, 1):
        try:
            record = decode(raw)
        except (TypeError, ValueError) as exc:  # a tagged value that is none: {"$datetime": 5}
            raise ValueRejected(f"record {number} holds a tagged value that does not decode: "
                                f"{type(exc).__name__}: {str(exc)[:200]}") from None
        shape = _SHAPES.get(record[0]) if isinstance(record, list) and record \
            and isinstance(record[0], str) else None
        if shape is None:
            raise ValueRejected(f"record {number} is not a record: a list whose first item is "
                                f"one of {sorted(r.KINDS)}")
        if len(record) != shape[0] or not _has_shape(record, *shape[1:]):
            raise ValueRejected(f"record {number} ({record[0]}) has the wrong shape")
        if record[0] == r.SPEC:
            record[2] = _check_spec(number, record[2])
        try:
            records.append(_checked(record))
        except DlprovError as exc:
            raise ValueRejected(f"record {number} ({record[0]}): {exc}") from None
    return records


def _checked(record: list) -> tuple:
    """The record as the writer takes it, refused (DlprovError) where a capture call would
    have refused it: names in any case as stored (lower case), values a store can hold
    (:mod:`dlprov.model.limits`, the same checks as at the call)."""
    kind = record[0]
    if kind == r.ELEMENT:
        set_tag, values = _name("set", record[2]), record[3]
        limits.check_attribute_count(set_tag, len(values))
        row = {}
        for name, value in values.items():
            attribute = _name("attribute", name)
            if attribute in row:
                raise SpecError(f"set {set_tag!r}: attribute {attribute!r} is given twice "
                                f"(names are case-insensitive)")
            row[attribute] = limits.check_row_value(
                f"set {set_tag!r}, attribute {attribute!r}", value)
        return kind, record[1], set_tag, row
    if kind == r.USE:
        return kind, record[1], record[2], [_name("set", tag) for tag in record[3]]
    if kind == r.SPEC:
        return kind, _name("dataflow", record[1]), record[2]
    fields = dict(record[2])
    if "tags" in fields:  # checked as at the call: dlprov.model.tags
        fields["tags"] = check_tags(fields["tags"], removable=kind == r.ANNOTATION)
    if "notes" in fields:
        fields["notes"] = check_notes(fields["notes"])
    for name, value in fields.items():
        limits.check_row_value(f"field {name!r}", value)
    for name, kind_of_name in (("df_tag", "dataflow"), ("transformation", "transformation")):
        if isinstance(fields.get(name), str):
            fields[name] = _name(kind_of_name, fields[name])
    return kind, record[1], fields


def _name(kind: str, name: Any) -> str:
    """``name`` as stored (check_name), remembered: a server sees the same few names again
    and again."""
    if not isinstance(name, str):
        raise ValueRejected(f"a {kind} name must be a string, got {type(name).__name__}")
    return _stored_name(kind, name)


@functools.lru_cache(maxsize=16384)
def _stored_name(kind: str, name: str) -> str:
    return check_name(kind, name)


def _has_shape(record: list, texts: tuple[int, ...], dicts: tuple[int, ...],
               lists: tuple[int, ...]) -> bool:
    # Plain loops, not all() over generators: this runs for every record a server takes.
    for i in texts:
        if not isinstance(record[i], str) or len(record[i]) > 200:
            return False
    for i in dicts:
        if not isinstance(record[i], dict):
            return False
    for i in lists:
        if not isinstance(record[i], list):
            return False
    return True


def _check_spec(number: int, snapshot: dict) -> dict:
    """The snapshot of a spec record, its names as stored; refuse one that is no dataflow spec
    (the writer would fail on it with whatever error its shape provokes) or that a store could
    not hold (:func:`dlprov.model.limits.check_spec`)."""
    try:
        spec = DataflowSpec.from_dict(snapshot)
        limits.check_spec(spec)
        return spec.to_dict()
    except DlprovError as exc:
        raise ValueRejected(f"record {number} (spec): {exc}") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueRejected(f"record {number} (spec) is not a dataflow spec "
                            f"(tag, transformations, sets, dependencies): "
                            f"{type(exc).__name__}: {str(exc)[:200]}") from None


class BatchWriter:
    """The server's one StoreWriter, serialized: its caches are not shared between threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writer: StoreWriter | None = None
        self._lock = threading.Lock()

    def applied(self, batch_ids: list[str]) -> set[str]:
        with self._lock:
            return self._writer_now().applied(batch_ids)

    def _writer_now(self) -> StoreWriter:
        if self._writer is None:
            # remote clients' model paths are not this machine's files: never read them
            self._writer = StoreWriter(self.store.engine(), read_model_files=False)
        return self._writer

    def write(self, batches: list[tuple[str | None, list[tuple]]]) -> int:
        with self._lock:
            try:
                return self._writer_now().write_batches(batches)
            except OperationalError as exc:
                raise StoreUnavailable(f"the store cannot take the batch now: {exc.orig}") \
                    from exc
            except (SQLAlchemyError, LookupError, TypeError, ValueError, ArithmeticError) as exc:
                # ArithmeticError: an int that the column cannot hold (sqlite3's OverflowError)
                raise ValueRejected(f"the store refused the batch, nothing of it was stored: "
                                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:500]}") \
                    from exc


def set_rows(store: Store, df_tag: str, set_tag: str, limit: int, offset: int) -> dict:
    """One page of a set's rows, in insertion order."""
    from dlprov.query.sql import sql
    df_tag, set_tag = check_name("dataflow", df_tag), check_name("set", set_tag)
    spec = store.load_spec(df_tag)
    if spec is None:
        raise NotFound(f"no dataflow {df_tag!r} in the store")
    if set_tag not in spec.sets:
        raise NotFound(f"dataflow {df_tag!r} has no set {set_tag!r}; its sets are "
                       f"{sorted(spec.sets)}")
    result = sql(f'SELECT * FROM "{set_tag}" ORDER BY id LIMIT :limit OFFSET :offset',
                 store=store, dataflow=df_tag, params={"limit": limit, "offset": offset})
    return {"dataflow": df_tag, "set": set_tag, "limit": limit, "offset": offset,
            "rows": result.records()}


class ParametersRejected(QueryError):
    """Query parameters that a question does not take, or that are not what it takes."""


_NUMBERS = ("learning_rate", "batch_size")
MAX_PARAMETER_CHARS = 500


def question_params(question: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """The keyword arguments of :func:`dlprov.query.questions.ask` for ``GET
    /v1/query/{question}?...``: only the question's documented parameters and ``dataflow``,
    each given once, numbers as numbers; anything else raises :class:`ParametersRejected`
    naming it (so no query parameter reaches ``store`` or any other internal argument)."""
    from dlprov.query.questions import QUESTIONS
    found = QUESTIONS.get(question.lower())
    if found is None:
        raise QueryError(f"no question {question!r}: ask one of {', '.join(QUESTIONS)}")
    allowed = ("dataflow", *found.parameters)
    names = [name for name, _ in items]
    unknown = sorted({name for name in names if name not in allowed})
    if unknown:
        raise ParametersRejected(f"{found.id.upper()} takes the parameters "
                                 f"{', '.join(allowed)}; not {', '.join(map(repr, unknown))}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParametersRejected(f"parameter {', '.join(repeated)} given more than once")
    params: dict[str, Any] = {}
    for name, value in items:
        if len(value) > MAX_PARAMETER_CHARS:
            raise ParametersRejected(f"parameter {name} is longer than {MAX_PARAMETER_CHARS} "
                                     f"characters")
        params[name] = value
        if name in _NUMBERS:
            try:
                params[name] = float(value)
            except ValueError:
                raise ParametersRejected(f"{name} must be a number, not {value[:40]!r}") \
                    from None
    return params
