"""Declaring a dataflow the DfAnalyzer way: Dataflow, Transformation, Set, Attribute, DataSet.

Plain classes that build a core :class:`~dlprov.model.spec.DataflowSpec`; :mod:`dlprov.capture.dfa`
runs tasks against them. ``Dataflow.save()`` writes nothing: it registers the declaration for
this process's Tasks, and the spec reaches the store with the first Task of an execution.
"""
from __future__ import annotations

import enum
import os
import threading
from typing import Any, Iterable, Sequence

from dlprov.capture.dfa_predefined import PREDEFINED
from dlprov.errors import SpecError, ValueRejected
from dlprov.model import limits
from dlprov.model import spec as m
from dlprov.model.names import check_name
from dlprov.store.store import Store


class SetType(str, enum.Enum):
    """Whether a transformation consumes (INPUT) or produces (OUTPUT) a set."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class TaskStatus(str, enum.Enum):
    """Status of a :class:`Task`. A task ends FAILED if set so (or given an error) before end()."""

    READY = "READY"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"



# The original's Attribute(name, type) and AttributeType are dlprov's own (the type also
# accepts the original's RDFILE and LONG_TEXT; the attribute also takes allow_nan).
Attribute = m.Attribute
AttributeType = m.AttributeType

class Set:
    """A set of a transformation: its attributes in order and whether it is INPUT or OUTPUT.

    An INPUT set passed on from another transformation names it as ``dependency`` (its tag or the
    :class:`Transformation`); its elements are the rows that transformation's tasks produced.
    """

    def __init__(self, tag: str, type: SetType | str = SetType.INPUT,
                 attributes: Iterable[Attribute] = (), extractors: Sequence = (),
                 dependency: "str | Transformation | None" = "") -> None:
        if extractors:
            raise SpecError(f"set {tag!r}: raw-data extractors are not supported by dlprov")
        self.tag = check_name("set", tag)
        self.type = type
        self.attributes = list(attributes)
        self.dependency = dependency

    @property
    def type(self) -> SetType:
        return self._type

    @type.setter
    def type(self, value: SetType | str) -> None:
        self._type = SetType(value.upper() if isinstance(value, str) else value)

    def set_type(self, value: SetType | str) -> None:
        self.type = value

    @property
    def dependency(self) -> str | None:
        """The tag of the transformation this input set comes from, or None."""
        return self._dependency

    @dependency.setter
    def dependency(self, value: "str | Transformation | None") -> None:
        if isinstance(value, Transformation):
            value = value.tag
        self._dependency = check_name("transformation", value) if value else None

    def add_attribute(self, attribute: Attribute) -> None:
        self.attributes.append(attribute)

    def copy(self) -> "Set":
        return Set(self.tag, self.type, self.attributes, dependency=self.dependency)

    def __repr__(self) -> str:
        return f"<dfa Set {self.tag!r} {self.type.value} {[a.name for a in self.attributes]}>"


class Transformation:
    """A transformation and its sets. Sets are copied when added, as the original did."""

    def __init__(self, tag: str, sets: Iterable[Set] = ()) -> None:
        self.tag = check_name("transformation", tag)
        self._sets: list[Set] = []
        self.set_sets(sets)

    @property
    def sets(self) -> list[Set]:
        return list(self._sets)

    @property
    def input(self) -> list[Set]:
        return [s for s in self._sets if s.type is SetType.INPUT]

    @property
    def output(self) -> list[Set]:
        return [s for s in self._sets if s.type is SetType.OUTPUT]

    def set_sets(self, sets: Iterable[Set]) -> None:
        for set_ in sets:
            self.add_set(set_)

    def add_set(self, set_: Set) -> None:
        if not isinstance(set_, Set):
            raise TypeError(f"add_set takes a Set, got {type(set_).__name__}")
        self._sets.append(set_.copy())


class Dataflow:
    """A dataflow: its transformations and their sets. ``predefined=True`` declares the DL
    dataflow loaddata → applyfilter → splitdata → train → test (see :mod:`dfa_predefined`).

    ``email`` is stored as the user of its executions; ``store`` (an addition) picks the store,
    else ``$DLPROV_STORE`` or ``./dlprov.db``.
    """

    def __init__(self, tag: str, predefined: bool = False, email: str = "",
                 transformations: Iterable[Transformation] = (), *,
                 store: str | os.PathLike | Store | None = None) -> None:
        self.tag = check_name("dataflow", tag)
        self.label = tag if tag != self.tag else None  # shown as written (KerasProv-example)
        self.predefined = predefined
        self.email = email or None
        self.store = store
        self._transformations: list[Transformation] = []
        for transformation in (_predefined() if predefined else []) + list(transformations):
            self.add_transformation(transformation)

    @property
    def transformations(self) -> list[Transformation]:
        return list(self._transformations)

    def add_transformation(self, transformation: Transformation) -> None:
        if not isinstance(transformation, Transformation):
            raise TypeError(f"add_transformation takes a Transformation, "
                            f"got {type(transformation).__name__}")
        self._transformations.append(Transformation(transformation.tag, transformation.sets))

    def spec(self) -> m.DataflowSpec:
        """The declaration as a core :class:`DataflowSpec`; raises SpecError if inconsistent
        or over what a store can hold (:mod:`dlprov.model.limits`)."""
        spec = m.DataflowSpec(self.tag, label=self.label)
        for t in self._transformations:
            spec.add_transformation(t.tag)
            for s in t.sets:
                names = [a.name for a in s.attributes]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise SpecError(f"set {s.tag!r} of {t.tag!r} declares {twice} more than "
                                    f"once (names are case-insensitive)")
                spec.add_set(s.tag, s.attributes)
        outputs = {(t.tag, s.tag) for t in self._transformations for s in t.output}
        for t in self._transformations:
            for s in t.sets:
                if s.type is SetType.OUTPUT and s.dependency:
                    raise SpecError(f"set {s.tag!r} is an output of {t.tag!r}: only an input set "
                                    f"has a dependency")
                if s.dependency and (s.dependency, s.tag) not in outputs:
                    raise SpecError(f"set {s.tag!r} of {t.tag!r} depends on {s.dependency!r}, but "
                                    f"dataflow {self.tag!r} has no transformation {s.dependency!r}"
                                    f" with output set {s.tag!r}")
                role = "output" if s.type is SetType.OUTPUT else "input"
                spec.add_role(t.tag, s.tag, role, s.dependency)
        limits.check_spec(spec)
        return spec

    def save(self) -> None:
        """Check the declaration and register it for this process's Tasks. Nothing is written
        yet: the spec reaches the store (a new version if it grew) with the first Task."""
        self.spec()
        with _saved_lock:
            saved_dataflows[self.tag] = self


def _predefined() -> list[Transformation]:
    declared: dict[str, Set] = {}
    transformations = []
    for tag, sets in PREDEFINED:
        transformation = Transformation(tag)
        for set_tag, kind, producer, attributes in sets:
            if producer is None:
                set_ = declared[set_tag] = Set(set_tag, kind, [Attribute(*a) for a in attributes])
            else:
                set_ = declared[set_tag].copy()
                set_.type, set_.dependency = SetType.INPUT, producer
            transformation.add_set(set_)
        transformations.append(transformation)
    return transformations


class Element:
    """One element (row) of a DataSet: values in the order of the set's attributes."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)


class DataSet:
    """Elements of one set, recorded by a Task's begin(), save() or end()."""

    def __init__(self, tag: str, elements: Iterable[Element | Sequence[Any]] = ()) -> None:
        self.tag = check_name("set", tag)
        self.elements = [e if isinstance(e, Element) else Element(e) for e in elements]

    def add_element(self, element: Element | Sequence[Any]) -> None:
        self.elements.append(element if isinstance(element, Element) else Element(element))


class Dependency:
    """Tasks of the same execution, by transformation tags and ids (``"1,2"`` names two)."""

    def __init__(self, tags: Sequence[str] | str, ids: Sequence[int | str] | int | str) -> None:
        tags = [tags] if isinstance(tags, str) else list(tags)
        ids = [ids] if isinstance(ids, (str, int)) else list(ids)
        self.tags = [check_name("transformation", t) for t in tags]
        self.ids = [_task_id(part) for i in ids for part in str(i).split(",") if part.strip()]


saved_dataflows: dict[str, Dataflow] = {}
_saved_lock = threading.Lock()


def _task_id(value: int | str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise ValueRejected(f"a task id must be a whole number, got {value!r}") from None
