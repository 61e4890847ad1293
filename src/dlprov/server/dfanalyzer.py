"""The original DfAnalyzer REST protocol (``POST /pde/dataflow/json``, ``POST /pde/task/json``),
translated onto the DfAnalyzer-compatible API of :mod:`dlprov.capture.dfa`.

Each payload is validated whole before anything is recorded, and each request waits until its
records are written, so a client learns of a failure (the original answered 200 and dropped it).
Mapping: ``email`` → the execution's user; ``hardware`` (a JSON string) → its environment and
hostname; ``performances`` → the task's start and end times; ``sub``/``subid`` → ``sub_id``;
``dependency.tags/ids`` → the tasks depended on; every element of every set is kept; ``null``,
``"None"`` and ``""`` in a numeric attribute are NULL; NaN is allowed in numeric attributes.
"""
from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dlprov.capture import dfa
from dlprov.capture.dfa_spec import (
    Attribute,
    Dataflow,
    DataSet,
    Dependency,
    Set,
    TaskStatus,
    Transformation,
)
from dlprov.errors import NotFound, SpecError, ValueRejected
from dlprov.model import records as r
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.model.values import converter
from dlprov.store.store import Store

Text = Field(max_length=200)
Value = Union[bool, int, float, str, None]
_NULLS = ("", "none", "null")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")
# Task ids fit the store's INTEGER column on every backend (32 bits on PostgreSQL).
_TASK_IDS = range(-2 ** 31, 2 ** 31)
_FLOAT_MAX = int(sys.float_info.max)
# The environment columns a client's hardware JSON may fill (see capture/environment.py).
_HARDWARE = {"hostname": str, "os": str, "os_version": str, "platform": str,
             "architecture": str, "processor": str, "cpu_count": int, "memory_bytes": int,
             "in_container": bool}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _unicode(value: Any, at: str = "body") -> Any:
    """``value``, refused if a string in it is not Unicode text: JSON's ``"\\ud800"`` escape
    decodes to a lone surrogate, which no store can encode (it would be answered 200, then
    set aside by the writer)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{at} holds a lone surrogate (\\u{ord(value[exc.start]):x}) at "
                             f"position {exc.start}: text must be valid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode(key, at)
            _unicode(item, f"{at}.{key}" if isinstance(key, str) and len(key) <= 40 else at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _unicode(item, f"{at}[{i}]")
    return value


class _Document(_Payload):
    """A whole request body: its text is checked once, before the fields."""

    _text = model_validator(mode="before")(classmethod(lambda cls, value: _unicode(value)))


class AttributeIn(_Payload):
    name: str = Text
    type: str = Field("TEXT", max_length=20)


class SetIn(_Payload):
    tag: str = Text
    type: str = Field("INPUT", max_length=20)
    attributes: list[AttributeIn] = Field(default_factory=list, max_length=1000)
    dependency: Optional[str] = Field(None, max_length=200)


class TransformationIn(_Payload):
    tag: str = Text
    sets: list[SetIn] = Field(default_factory=list, max_length=1000)


class DataflowIn(_Document):
    tag: str = Text
    transformations: list[TransformationIn] = Field(max_length=1000)


class TagIn(_Payload):
    tag: str = Text


def _short(value: Any, limit: int = 64) -> Any:
    if value is not None and len(str(value)) > limit:
        raise ValueError(f"at most {limit} characters")
    return value


class IdIn(_Payload):
    id: Union[int, str]

    _check = field_validator("id")(classmethod(lambda cls, v: _short(v, 200)))


class DependencyIn(_Payload):
    tags: list[TagIn] = Field(default_factory=list, max_length=1000)
    ids: list[IdIn] = Field(default_factory=list, max_length=1000)


class DataSetIn(_Payload):
    tag: str = Text
    elements: list[list[Value]] = Field(default_factory=list, max_length=100_000)

    @field_validator("elements")
    @classmethod
    def _short_values(cls, elements: list[list[Value]]) -> list[list[Value]]:
        for element in elements:
            for value in element:
                if isinstance(value, str) and len(value) > 100_000:
                    raise ValueError("a value longer than 100000 characters")
        return elements


class PerformanceIn(_Payload):
    startTime: datetime
    endTime: datetime

    @field_validator("startTime", "endTime", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if isinstance(value, str):
            for form in _TIME_FORMATS:
                try:
                    return datetime.strptime(value, form)
                except ValueError:
                    continue
        return value


class TaskIn(_Document):
    id: Union[int, str]
    subid: Optional[Union[int, str]] = None
    sub: Optional[Union[int, str]] = None
    first: Union[int, str] = "0"
    exec_tag: str = Field(alias="exec", min_length=1, max_length=200)
    dataflow: str = Text
    transformation: Optional[str] = Field(None, max_length=200)
    tag: Optional[str] = Field(None, max_length=200)
    email: Optional[str] = Field(None, max_length=255)
    hardware: Optional[Union[str, dict[str, Any]]] = None
    workspace: Optional[str] = Field(None, max_length=10_000)
    resource: Optional[str] = Field(None, max_length=255)
    output: Optional[str] = Field(None, max_length=100_000)
    error: Optional[str] = Field(None, max_length=100_000)
    status: str = Field("RUNNING", max_length=20)
    dependency: Optional[DependencyIn] = None
    sets: list[DataSetIn] = Field(default_factory=list, max_length=1000)
    performances: list[PerformanceIn] = Field(default_factory=list, max_length=1000)

    @field_validator("id", "subid", "sub", "first")
    @classmethod
    def _short_ids(cls, value: Any) -> Any:
        return _short(value)

    @field_validator("hardware")
    @classmethod
    def _short_hardware(cls, value: Any) -> Any:
        return _short(value if isinstance(value, str) else json.dumps(value), 100_000) and value


class DfAnalyzer:
    """The protocol's state in one server: the dataflows posted and the tasks begun."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dataflows: dict[str, tuple[Dataflow, DataflowSpec]] = {}
        self._tasks: dict[tuple[str, int, str | None], dfa.Task] = {}
        self._execs: set[str] = set()
        self._lock = threading.Lock()

    def dataflow(self, body: DataflowIn) -> None:
        """Check and keep a dataflow for the tasks that follow (stored with their first one)."""
        transformations = [
            Transformation(t.tag.lower(), [
                Set(s.tag.lower(), s.type, [_attribute(a) for a in s.attributes],
                    dependency=(s.dependency or "").lower())
                for s in t.sets])
            for t in body.transformations]
        declared = Dataflow(body.tag.lower(), transformations=transformations, store=self.store)
        spec = declared.spec()
        with self._lock:
            self._dataflows[declared.tag] = (declared, spec)

    def task(self, body: TaskIn) -> None:
        """Begin, save or end a task with its DataSets, and wait until they are written."""
        status = _status(body.status)
        hardware = _hardware(body.hardware)
        _check_task_ids(body)
        sub_id = body.subid if body.subid not in (None, "") else body.sub
        sub_id = str(sub_id) if sub_id not in (None, "") else None
        transformation = (body.transformation or body.tag or "").lower()
        with self._lock:
            found = self._dataflows.get(body.dataflow.lower())
            if found is None:
                raise NotFound(f"dataflow {body.dataflow!r} was not posted to this server: "
                               f"POST it to /pde/dataflow/json first (df.save())")
            declared, spec = found
            datasets = [DataSet(s.tag.lower(), [_values(spec, s.tag.lower(), e)
                                                for e in s.elements]) for s in body.sets]
            key = (body.exec_tag, dfa._task_id(body.id), sub_id)
            task = self._tasks.get(key)
            if task is None and body.exec_tag not in self._execs:
                # the first task of an execution records it: refuse first what its task would
                _check_first(body, spec, transformation, datasets)
            if task is None:
                task = self._begin(body, declared, transformation, sub_id, hardware)
                self._tasks[key] = task
            task.set_datasets(datasets)  # all of them, or none if one does not fit
            if status is TaskStatus.FAILED:
                task.set_status(TaskStatus.FAILED)
            if status in (TaskStatus.FINISHED, TaskStatus.FAILED):
                task.end()
                if body.performances:
                    task.run.put((r.TASK_END, task._core.key, {
                        "start_time": min(p.startTime for p in body.performances),
                        "end_time": max(p.endTime for p in body.performances)}))
            else:
                task.begin()
            task.run.flush()

    def _begin(self, body: TaskIn, declared: Dataflow, transformation: str,
               sub_id: str | None, hardware: dict[str, Any]) -> dfa.Task:
        dependency = None
        if body.dependency is not None and body.dependency.ids:
            dependency = Dependency([t.tag.lower() for t in body.dependency.tags],
                                    [i.id for i in body.dependency.ids])
        # The user of an execution is the email of its first task.
        declared = Dataflow(declared.tag, email=body.email or "",
                            transformations=declared.transformations, store=self.store)
        task = dfa.Task(body.id, declared, body.exec_tag, transformation, sub_id=sub_id or "",
                        dependency=dependency, workspace=body.workspace or "",
                        resource=body.resource or "", output=body.output or "",
                        error=body.error or "")
        if body.exec_tag not in self._execs:
            self._execs.add(body.exec_tag)
            run = task.run
            if hardware:
                run.put((r.ENVIRONMENT, run.key, hardware))
            if hardware.get("hostname"):
                # The host is the client's, not the server's (EXEC_END updates the given fields).
                run.put((r.EXEC_END, run.key, {"hostname": hardware["hostname"]}))
        return task

    def close(self) -> None:
        """End the executions this server opened (their tasks still running end failed)."""
        with self._lock:
            execs, self._execs = self._execs, set()
        for exec_tag in execs:
            try:
                dfa.end_execution(exec_tag)
            except NotFound:
                continue


def _attribute(body: AttributeIn) -> Attribute:
    kind = AttributeType.parse(body.type)
    # The original took any value; NaN in a numeric attribute is kept, not refused.
    return Attribute(body.name.lower(), kind, allow_nan=kind is AttributeType.NUMERIC)


def _check_task_ids(body: TaskIn) -> None:
    ids = [body.id, *(i.id for i in (body.dependency.ids if body.dependency else ()))]
    for given in ids:
        for part in str(given).split(","):
            if part.strip() and dfa._task_id(part) not in _TASK_IDS:
                raise ValueRejected(f"task id {part.strip()[:70]} is out of range: a task id is "
                                    f"a whole number from {_TASK_IDS.start} to "
                                    f"{_TASK_IDS.stop - 1}")


def _check_first(body: TaskIn, spec: DataflowSpec, transformation: str,
                 datasets: list[DataSet]) -> None:
    """Raise what the first task of a new execution would raise only after recording the
    execution: its transformation, DataSets and dependencies checked against ``spec``."""
    roles = dfa._roles(spec, transformation)
    if body.dependency is not None and body.dependency.ids:
        raise NotFound(f"task {body.id} depends on tasks {[i.id for i in body.dependency.ids]} "
                       f"of execution {body.exec_tag!r}, which has no task yet: post those first")
    for dataset in datasets:
        role = roles.get(dataset.tag)
        if role is None:
            raise SpecError(f"transformation {transformation!r} of dataflow {spec.tag!r} has no "
                            f"set {dataset.tag!r}; its sets are {sorted(roles)}")
        if role.producer is not None:
            continue  # its rows are the producer's
        attributes = list(spec.sets[dataset.tag].attributes.values())
        convert = [converter(dataset.tag, a) for a in attributes]
        for number, element in enumerate(dataset.elements, 1):
            if len(element.values) != len(attributes):
                raise SpecError(f"set {dataset.tag!r} has {len(attributes)} attributes "
                                f"{[a.name for a in attributes]}, but element {number} gives "
                                f"{len(element.values)} values; nothing was recorded")
            for attribute, check, value in zip(attributes, convert, element.values):
                check(dfa._as_original(attribute.type, value))


def _status(text: str) -> TaskStatus:
    try:
        return TaskStatus(text.upper())
    except ValueError:
        raise ValueRejected(f"unknown task status {text!r}: use one of "
                            f"{[s.value for s in TaskStatus]}") from None


def _values(spec: DataflowSpec, set_tag: str, element: list[Value]) -> list[Value]:
    found = spec.sets.get(set_tag)
    if found is None:
        return element  # the task names the set it lacks
    attributes = list(found.attributes.values())
    for attribute, value in zip(attributes, element):
        if attribute.type is AttributeType.NUMERIC and isinstance(value, int) \
                and not isinstance(value, bool) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            raise ValueRejected(f"set {set_tag!r}, attribute {attribute.name!r} is numeric; "
                                f"{str(value)[:30]}... ({len(str(value))} digits) is beyond "
                                f"the largest floating-point number")
    return [None if a.type is AttributeType.NUMERIC and isinstance(value, str)
            and value.strip().lower() in _NULLS else value
            for a, value in zip(attributes, element)] + element[len(attributes):]


def _hardware(value: str | dict[str, Any] | None) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueRejected(f"hardware must be a JSON object in a string: {exc}") from None
    if not isinstance(value, dict):
        raise ValueRejected(f"hardware must be a JSON object, got {type(value).__name__}")
    fields: dict[str, Any] = {}
    for name, kind in _HARDWARE.items():
        found = value.get(name)
        if found is None:
            continue
        if kind is str:
            fields[name] = str(found)[:255]
        elif kind is bool:
            fields[name] = found if isinstance(found, bool) else str(found).lower() == "true"
        else:
            try:
                fields[name] = int(found)
            except (TypeError, ValueError):
                continue
    gpus = value.get("gpus")
    if gpus not in (None, "", "Not available"):
        fields["gpus"] = gpus if isinstance(gpus, list) else [str(gpus)[:1000]]
    return fields


__all__ = ["DfAnalyzer", "DataflowIn", "TaskIn", "SpecError"]
