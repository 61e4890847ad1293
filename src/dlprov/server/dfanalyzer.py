"""The original DfAnalyzer REST protocol (``POST /pde/dataflow/json``, ``POST /pde/task/json``),
translated onto the DfAnalyzer-compatible API of :mod:`dlprov.capture.dfa`.

It takes what the original server took, and each request waits until its records are written.
What the posted dataflow lacks is added and stored, with a warning in the answer's ``warnings``
(also logged, and kept in the task's ``output_msg``): see :mod:`dlprov.capture.dfa` (unknown
transformations and sets, arity mismatches, unresolved dependencies). A value its attribute cannot
hold (text in a numeric attribute) is refused with 400 and nothing of the request is stored.

Mapping: ``email`` → the execution's user; ``hardware`` (a JSON string) → its environment and
hostname; ``workspace`` → the execution's and task's workspace; pid: unknown (the server's is not
the client's); ``resource`` → the task's computing resource, as sent; ``performances`` → the
task's start and end times (an end without a start: start = end, with a warning);
``sub``/``subid`` → ``sub_id``; ``dependency.tags/ids`` → the tasks depended on; elements as
lists or as ``"v1;v2;..."`` strings; ``exec`` absent → the execution the server opened for the
dataflow (named in the answer's ``exec``); ``programs`` of a transformation → elements
``(name, path)`` of its input set ``program`` (the original's program and use_program), recorded
by the first task of the transformation in each execution. A dataflow not posted to this server
(e.g. before a restart) is read from the store; an execution begun before a restart is joined.
Executions opened here stay open when the server stops: the protocol has no end of execution.
"""
from __future__ import annotations

import json
import logging
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
from dlprov.errors import SpecError, ValueRejected
from dlprov.model import records as r
from dlprov.model.names import check_name
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


class ProgramIn(_Payload):
    name: str = Field("", max_length=200)
    path: str = Field("", max_length=10_000)


class SetIn(_Payload):
    tag: str = Text
    type: str = Field("INPUT", max_length=20)
    attributes: list[AttributeIn] = Field(default_factory=list, max_length=1000)
    dependency: Optional[str] = Field(None, max_length=200)


class TransformationIn(_Payload):
    tag: str = Text
    sets: list[SetIn] = Field(default_factory=list, max_length=1000)
    programs: list[ProgramIn] = Field(default_factory=list, max_length=1000)


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
    # An element is a list of values, or the older DfAnalyzer form "v1;v2;..."; null (an elided
    # element, "[,"...) is skipped.
    elements: list[Union[list[Value], str, None]] = Field(default_factory=list,
                                                          max_length=100_000)

    @field_validator("elements")
    @classmethod
    def _short_values(cls, elements: list) -> list[list[Value]]:
        elements = [e.split(";") if isinstance(e, str) else e for e in elements if e is not None]
        for element in elements:
            for value in element:
                if isinstance(value, str) and len(value) > 100_000:
                    raise ValueError("a value longer than 100000 characters")
        return elements


class PerformanceIn(_Payload):
    startTime: Optional[datetime] = None  # absent when the client's end() had no begin()
    endTime: Optional[datetime] = None

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
    exec_tag: Optional[str] = Field(None, alias="exec", max_length=200)
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
        self._dataflows: dict[str, Dataflow] = {}
        self._programs: dict[tuple[str, str], list[ProgramIn]] = {}
        self._tasks: dict[tuple[str, int, str | None], dfa.Task] = {}
        self._execs: set[str] = set()
        self._programs_recorded: set[tuple[str, str]] = set()
        self._default_execs: dict[str, str] = {}
        # Executions of the store this server did not start: exec tag -> key (None: not stored)
        self._joined: dict[str, str | None] = {}
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
        declared.spec()
        with self._lock:
            self._dataflows[declared.tag] = declared
            for t in body.transformations:
                if t.programs:
                    self._programs[(declared.tag, t.tag.lower())] = list(t.programs)

    def task(self, body: TaskIn) -> dict[str, Any]:
        """Begin, save or end a task with its DataSets, and wait until they are written.
        Returns the execution's tag and the warnings of this request."""
        status = _status(body.status)
        hardware = _hardware(body.hardware)
        _check_task_ids(body)
        sub_id = body.subid if body.subid not in (None, "") else body.sub
        sub_id = str(sub_id) if sub_id not in (None, "") else None
        transformation = check_name("transformation", (body.transformation or body.tag or ""))
        df_tag = body.dataflow.lower()
        warnings: list[str] = []
        with self._lock:
            exec_tag = body.exec_tag or self._default_exec(df_tag, warnings)
            declared = self._dataflows.get(df_tag)
            if declared is None:
                declared = Dataflow(df_tag, store=self.store)  # its spec is the stored one
                if self.store.load_spec(df_tag) is None:
                    warnings.append(f"dataflow {df_tag!r} was not posted (POST "
                                    f"/pde/dataflow/json): it is made of what its tasks record")
                self._dataflows[df_tag] = declared
            key = (exec_tag, dfa._task_id(body.id), sub_id)
            task = self._tasks.get(key)
            spec = task.run.book.spec if task is not None else self._spec(declared, exec_tag)
            datasets = [DataSet(s.tag.lower(), [_values(spec, s.tag.lower(), e)
                                                for e in s.elements]) for s in body.sets]
            _check_values(spec, transformation, datasets)  # refused: nothing stored
            new = task is None
            if new:
                task = self._begin(body, declared, exec_tag, transformation, sub_id, hardware)
                self._tasks[key] = task
                task.warnings.extend(warnings)  # the server's own, kept with the task too
            seen = len(task.warnings) if not new else 0
            task.set_datasets(datasets)  # before begin(): an unknown set then is an input
            if status is TaskStatus.FAILED:
                task.set_status(TaskStatus.FAILED)
            task.begin()
            if new and task._core is not None and not task.resumed:
                self._client_task(task, body, hardware, declared.tag, exec_tag)
            if status in (TaskStatus.FINISHED, TaskStatus.FAILED):
                self._end(task, body, warnings)
            warnings += [w for w in task.warnings[seen:] if w not in warnings]
            task.run.flush()
        for warning in warnings:
            log.warning("dlprov serve: %s", warning)
        return {"exec": exec_tag, "warnings": warnings}

    def _default_exec(self, df_tag: str, warnings: list[str]) -> str:
        """The execution this server opened for tasks of ``df_tag`` that name none."""
        found = self._default_execs.get(df_tag)
        if found is None:
            found = self._default_execs[df_tag] = f"{df_tag}-{datetime.now():%Y-%m-%d %H:%M:%S.%f}"
        warnings.append(f"the task names no execution (exec): it is recorded in {found!r}, "
                        f"which this server opened for dataflow {df_tag!r}")
        return found

    def _spec(self, declared: Dataflow, exec_tag: str) -> DataflowSpec:
        """What the task's values are checked against: the execution's spec, else the posted
        one, else the stored one."""
        with dfa._lock:
            execution = dfa._executions.get(exec_tag)
        if execution is not None:
            return execution.run.book.spec
        if declared.transformations:
            return declared.spec()
        return self.store.load_spec(declared.tag) or DataflowSpec(declared.tag)

    def _begin(self, body: TaskIn, declared: Dataflow, exec_tag: str, transformation: str,
               sub_id: str | None, hardware: dict[str, Any]) -> dfa.Task:
        # The user of an execution is the email of its first task.
        declared = Dataflow(declared.tag, email=body.email or "",
                            transformations=declared.transformations, store=self.store)
        fresh = exec_tag not in self._execs
        resumed = self._resume(exec_tag, declared, transformation, body, sub_id)
        if resumed is not None:
            return resumed
        dependency = None
        if body.dependency is not None and body.dependency.ids:
            dependency = Dependency([t.tag.lower() for t in body.dependency.tags],
                                    [i.id for i in body.dependency.ids])
        if dependency is not None:
            self._resume_dependencies(exec_tag, dependency)
        task = dfa.Task(body.id, declared, exec_tag, transformation, sub_id=sub_id or "",
                        dependency=dependency, workspace=body.workspace or "",
                        resource=body.resource or "", output=body.output or "",
                        error=body.error or "")
        if task._broken is not None:
            raise SpecError(task.warnings[-1])
        run = task.run
        if fresh and not run.attached:
            self._execs.add(exec_tag)
            if hardware:
                run.put((r.ENVIRONMENT, run.key, hardware))
            # The execution is the client's: its host, user, workspace, not the server's.
            run.put((r.EXEC_END, run.key, {
                "hostname": hardware.get("hostname"), "pid": None,
                "username": body.email or None, "workspace": body.workspace or None}))
        return task

    def _client_task(self, task: dfa.Task, body: TaskIn, hardware: dict[str, Any],
                     df_tag: str, exec_tag: str) -> None:
        """A task just begun is the client's: its pid unknown, its workspace and resource
        as sent (else the client's host), not the server's."""
        task.run.put((r.TASK_END, task._core.key, {
            "pid": None, "workspace": body.workspace or None,
            "computing_resource": body.resource or hardware.get("hostname")}))
        self._record_programs(task, df_tag, exec_tag)

    def _resume(self, exec_tag: str, declared: Dataflow, transformation: str, body: TaskIn,
                sub_id: str | None) -> dfa.Task | None:
        """Open the execution, joining it if it was stored before this server (re)started; in
        one so joined, the stored task the request goes on with, if any."""
        if exec_tag not in self._execs and exec_tag not in self._joined:
            self._joined[exec_tag] = _stored_execution(self.store, exec_tag, declared.tag)
        try:
            run = dfa._execution_for(declared, exec_tag, transformation, lambda _: None,
                                     resume=True, stored_key=self._joined.get(exec_tag)).run
        except ValueError as exc:  # of another dataflow, or ended
            raise ValueRejected(str(exc)) from None
        return self._stored_task(run, dfa._task_id(body.id), sub_id)

    def _stored_task(self, run: Any, identifier: int, sub_id: str | None) -> dfa.Task | None:
        if not run.attached:
            return None
        found = _stored_task(run, identifier, sub_id)
        if found is None:
            return None
        task = dfa.resumed_task(run.exec_tag, identifier, sub_id, found)
        self._tasks[(run.exec_tag, identifier, sub_id)] = task
        return task

    def _resume_dependencies(self, exec_tag: str, dependency: Dependency) -> None:
        run = dfa._executions[exec_tag].run
        for task_id in dependency.ids:
            if not any(k[0] == exec_tag and k[1] == task_id for k in self._tasks):
                self._stored_task(run, task_id, None)

    def _record_programs(self, task: dfa.Task, df_tag: str, exec_tag: str) -> None:
        """The transformation's programs, once per execution, as elements of its input set
        ``program`` (the original's program and use_program tables)."""
        programs = self._programs.get((df_tag, task.transformation))
        if not programs or (exec_tag, task.transformation) in self._programs_recorded:
            return
        self._programs_recorded.add((exec_tag, task.transformation))
        run = task.run
        if PROGRAM not in run.book.spec.sets:
            run.book.declare_set(PROGRAM, [Attribute("name", AttributeType.TEXT),
                                           Attribute("path", AttributeType.TEXT)])
        if run.book.add_role(task.transformation, PROGRAM, "input"):
            run.send_spec()
        for program in programs:
            task._core.input(PROGRAM, name=program.name or None, path=program.path or None)

    def _end(self, task: dfa.Task, body: TaskIn, warnings: list[str]) -> None:
        starts = [p.startTime for p in body.performances if p.startTime is not None]
        ends = [p.endTime for p in body.performances if p.endTime is not None]
        if task._core and ends and not starts:
            note = (f"task {body.id} ended without a start time (end() without begin()): its "
                    f"start time is its end time")
            warnings.append(note)
            task.warnings.append(note)  # before end(): stored with the task
        task.end()
        if not task._core or not (starts or ends):
            return
        task.run.put((r.TASK_END, task._core.key, {
            "start_time": min(starts) if starts else min(ends),
            "end_time": max(ends) if ends else max(starts)}))

    def close(self) -> None:
        """Write what was captured. Executions opened here stay open (the protocol has no end
        of execution): their clients go on after a restart."""
        with self._lock:
            self._tasks.clear()
            self._execs.clear()
            self._joined.clear()
        dfa.release(self.store.url)


PROGRAM = "program"


def _stored_execution(store: Store, exec_tag: str, df_tag: str) -> str | None:
    """The key of the stored execution ``exec_tag`` of ``df_tag``, if there is one."""
    from sqlalchemy import select

    from dlprov.store import schema
    if not store.has_execution(exec_tag):
        return None
    execution, dataflow = schema.dataflow_execution, schema.dataflow
    with store.read() as conn:
        found = conn.execute(
            select(execution.c.uuid, dataflow.c.tag).join(
                dataflow, dataflow.c.id == execution.c.df_id).where(
                execution.c.tag == exec_tag)).first()
    if found is None:
        return None
    if found[1].lower() != df_tag.lower():
        raise ValueRejected(f"execution {exec_tag!r} is of dataflow {found[1]!r}, not "
                            f"{df_tag!r}; use another exec tag")
    return found[0]


def _stored_task(run: Any, identifier: int, sub_id: str | None) -> tuple[str, str] | None:
    """(key, transformation) of task ``identifier`` (``sub_id``) stored in ``run``'s execution,
    if any: a task begun before this server (re)started."""
    from sqlalchemy import select

    from dlprov.store import schema
    task, execution, dt = schema.task, schema.dataflow_execution, schema.data_transformation
    query = (select(task.c.uuid, dt.c.tag).join(execution, execution.c.id == task.c.exec_id)
             .join(dt, dt.c.id == task.c.dt_id)
             .where(execution.c.uuid == run.key, task.c.identifier == identifier,
                    task.c.sub_id.is_(None) if sub_id is None else task.c.sub_id == sub_id)
             .order_by(task.c.id.desc()))
    run.flush()
    with run.store.read() as conn:
        found = conn.execute(query).first()
    return None if found is None else (found[0], found[1])
log = logging.getLogger("dlprov.server")


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


def _check_values(spec: DataflowSpec, transformation: str, datasets: list[DataSet]) -> None:
    """Refuse, before anything is recorded, a value its attribute cannot hold (the lenient
    client API would store it NULL): a server's client learns of it from the answer."""
    roles = dfa._roles(spec, transformation) if transformation in spec.transformations else {}
    for dataset in datasets:
        role = roles.get(dataset.tag)
        if dataset.tag not in spec.sets or (role is not None and role.producer is not None):
            continue
        attributes = [a for a in spec.sets[dataset.tag].attributes.values()
                      if a.name != dfa.EXTRA]
        convert = [converter(dataset.tag, a) for a in attributes]
        for element in dataset.elements:
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




async def original_json(request: Any, model: type[_Document]) -> Any:
    """The request's body as ``model``: JSON, or the original REST test's JSON with elided
    array values (``[,"1;8;1"]``, which the original server's parser read as null)."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = json.loads(_elided_nulls(text))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": f"the body is not JSON: {exc}",
                                       "type": "json_invalid"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _elided_nulls(text: str) -> str:
    """``text`` with ``null`` where an array elides a value (``[,`` and ``,,`` and ``,]``
    outside strings); anything else is left for the JSON parser to refuse."""
    out, in_string, escaped, previous = [], False, False, ""
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in ",]" and previous in ("[", ",") and not (char == "]" and previous == "["):
            out.append("null")
        if not char.isspace() and not in_string:
            previous = char
        out.append(char)
    return "".join(out)


__all__ = ["DfAnalyzer", "DataflowIn", "TaskIn", "SpecError", "original_json"]
