"""Prospective provenance (PROV-Df): a dataflow, its transformations, their sets and attributes.

Plain data classes, no I/O. A spec only grows: :meth:`DataflowSpec.merge` adds transformations,
sets, attributes and set roles, and refuses a change of an attribute's type. Each growth that
reaches the store becomes a new version of the dataflow (the original froze a tag at first save).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

from dlprov.errors import SpecError
from dlprov.model.names import check_name


class AttributeType(str, enum.Enum):
    """Type of an attribute, and so of its set-table column. The original DfAnalyzer's RDFILE
    and LONG_TEXT are aliases of FILE and TEXT."""

    TEXT = "text"
    NUMERIC = "numeric"
    FILE = "file"
    TIMESTAMP = "timestamp"
    JSON = "json"
    RDFILE = "file"
    LONG_TEXT = "text"

    @classmethod
    def parse(cls, value: "AttributeType | str") -> "AttributeType":
        """Accept an :class:`AttributeType` or its name or value in any case (``"NUMERIC"``,
        ``"numeric"``, ``"rdfile"``)."""
        if isinstance(value, cls):
            return value
        found = cls.__members__.get(str(value).upper())
        if found is None:
            choices = ", ".join(cls.__members__)
            raise SpecError(f"unknown attribute type {value!r}: use one of {choices}")
        return found


MAX_LABEL_LENGTH = 200


@dataclass(frozen=True)
class Attribute:
    """One attribute of a set. ``allow_nan`` lets a numeric attribute take NaN and inf: inf is
    stored as given; NaN as NULL in SQLite (which has no NaN), as NaN in PostgreSQL.

    ``label``: the name the attribute was made for where it differs from ``name`` beyond case,
    e.g. a framework's metric ``val/loss`` stored as ``val_loss_2`` (None otherwise). A set's
    labels are what integrations map framework names by, in every process and run."""

    name: str
    type: AttributeType = AttributeType.TEXT
    allow_nan: bool = False
    label: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_name("attribute", self.name))
        object.__setattr__(self, "type", AttributeType.parse(self.type))
        label = self.label
        if label is not None:
            if not isinstance(label, str):
                raise SpecError(f"attribute {self.name!r}: label must be a string, got "
                                f"{type(label).__name__} {label!r}")
            if len(label) > MAX_LABEL_LENGTH or "\x00" in label \
                    or any("\ud800" <= c <= "\udfff" for c in label):
                raise SpecError(f"attribute {self.name!r}: label {label[:50]!r} cannot be "
                                f"stored: at most {MAX_LABEL_LENGTH} characters, no NUL and no "
                                f"lone surrogates")
            object.__setattr__(self, "label", None if label.lower() == self.name else label)

    def to_dict(self) -> dict:
        found = {"name": self.name, "type": self.type.value, "allow_nan": self.allow_nan}
        if self.label is not None:  # specs without labels read as before
            found["label"] = self.label
        return found


@dataclass
class DataSetSpec:
    """A set (a relation of elements) with its ordered attributes."""

    tag: str
    attributes: dict[str, Attribute] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tag = check_name("set", self.tag)

    def add(self, attribute: Attribute) -> bool:
        """Add ``attribute``; return True if it is new. A different type for a known name raises."""
        known = self.attributes.get(attribute.name)
        if known is None:
            self.attributes[attribute.name] = attribute
            return True
        if known.type is not attribute.type:
            raise SpecError(
                f"set {self.tag!r}: attribute {attribute.name!r} is {known.type.value}, "
                f"cannot redeclare it as {attribute.type.value}")
        if attribute.allow_nan and not known.allow_nan:
            self.attributes[attribute.name] = attribute
            return True
        return False


@dataclass(frozen=True)
class Dependency:
    """A set passed between transformations, as in the original ``data_dependency`` table.

    ``previous`` produced the set (None: an input given from outside), ``following`` consumes it
    (None: an output nobody consumed yet).
    """

    previous: str | None
    following: str | None
    set_tag: str


def _dependency(previous: str | None, following: str | None, set_tag: str) -> Dependency:
    """A dependency read from a spec's dict, its names as stored (lower case)."""
    return Dependency(None if previous is None else check_name("transformation", previous),
                      None if following is None else check_name("transformation", following),
                      check_name("set", set_tag))


@dataclass
class DataflowSpec:
    """A dataflow (``df_tag``): transformations, the sets they use and produce, the dependencies."""

    tag: str
    sets: dict[str, DataSetSpec] = field(default_factory=dict)
    transformations: list[str] = field(default_factory=list)
    dependencies: set[Dependency] = field(default_factory=set)
    # The tag as the user first wrote it (KerasProv-example), where it differs from ``tag``.
    label: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        written, self.tag = self.tag, check_name("dataflow", self.tag)
        if self.label is None and written != self.tag:
            self.label = written
        elif self.label is not None and check_name("dataflow", self.label) != self.tag:
            raise SpecError(f"dataflow {self.tag!r}: label {self.label!r} is not the same tag")

    # -- growing the spec ------------------------------------------------------------------
    def add_transformation(self, tag: str) -> bool:
        tag = check_name("transformation", tag)
        if tag in self.transformations:
            return False
        self.transformations.append(tag)
        return True

    def add_set(self, tag: str, attributes: Iterable[Attribute] = ()) -> bool:
        """Add a set or the attributes it lacks; return True if anything changed."""
        tag = check_name("set", tag)
        changed = False
        spec = self.sets.get(tag)
        if spec is None:
            spec = self.sets[tag] = DataSetSpec(tag)
            changed = True
        for attribute in attributes:
            changed |= spec.add(attribute)
        return changed

    def add_role(self, transformation: str, set_tag: str, role: str,
                 producer: str | None = None) -> bool:
        """Record that ``transformation`` has ``set_tag`` as ``"input"`` or ``"output"``.

        An input with a ``producer`` is a set passed on from that transformation.
        """
        transformation, set_tag = check_name("transformation", transformation), check_name(
            "set", set_tag)
        producer = None if producer is None else check_name("transformation", producer)
        changed = self.add_transformation(transformation)
        if set_tag not in self.sets:
            raise SpecError(f"set {set_tag!r} is not declared in dataflow {self.tag!r}")
        if role == "output":
            dep = Dependency(transformation, None, set_tag)
        elif role == "input":
            if producer is not None:
                changed |= self.add_transformation(producer)
            dep = Dependency(producer, transformation, set_tag)
        else:
            raise SpecError(f"role must be 'input' or 'output', got {role!r}")
        if dep not in self.dependencies:
            self.dependencies.add(dep)
            changed = True
        return changed

    def merge(self, other: "DataflowSpec") -> bool:
        """Add everything of ``other`` to this spec; return True if anything changed."""
        if other.tag != self.tag:
            raise SpecError(f"cannot merge spec of {other.tag!r} into {self.tag!r}")
        changed = False
        for tag in other.transformations:
            changed |= self.add_transformation(tag)
        for tag, set_spec in other.sets.items():
            changed |= self.add_set(tag, set_spec.attributes.values())
        new = other.dependencies - self.dependencies
        self.dependencies |= new
        return changed or bool(new)

    def copy(self) -> "DataflowSpec":
        return DataflowSpec.from_dict(self.to_dict())

    # -- reading the spec ------------------------------------------------------------------
    def producers(self, set_tag: str) -> list[str]:
        """Transformations that output ``set_tag``."""
        return sorted({d.previous for d in self.dependencies
                       if d.set_tag == set_tag and d.previous is not None})

    def transformations_of(self, set_tag: str) -> list[str]:
        """Every transformation that touches ``set_tag``, in declaration order: its task columns."""
        touching = {t for d in self.dependencies if d.set_tag == set_tag
                    for t in (d.previous, d.following) if t is not None}
        return [t for t in self.transformations if t in touching]

    def sets_of(self, transformation: str, role: str) -> list[str]:
        """Sets that ``transformation`` has as ``"input"`` or ``"output"``."""
        if role == "output":
            found = {d.set_tag for d in self.dependencies if d.previous == transformation}
        else:
            found = {d.set_tag for d in self.dependencies if d.following == transformation}
        return sorted(found)

    def dependency_rows(self) -> list[Dependency]:
        """The dependencies as the original stored them: an output row disappears once consumed."""
        consumed = {(d.previous, d.set_tag) for d in self.dependencies
                    if d.previous is not None and d.following is not None}
        rows = [d for d in self.dependencies
                if not (d.following is None and (d.previous, d.set_tag) in consumed)]
        return sorted(rows, key=lambda d: (d.set_tag, d.previous or "", d.following or ""))

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "tag": self.tag,
            "transformations": list(self.transformations),
            "sets": {tag: [a.to_dict() for a in s.attributes.values()]
                     for tag, s in self.sets.items()},
            "dependencies": sorted(([d.previous, d.following, d.set_tag] for d in self.dependencies),
                   key=lambda r: (r[2], r[0] or "", r[1] or "")),
            **({} if self.label is None else {"label": self.label}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DataflowSpec":
        spec = cls(data["tag"], label=data.get("label"))
        for tag in data.get("transformations", []):
            spec.add_transformation(tag)
        for tag, attributes in data.get("sets", {}).items():
            spec.add_set(tag, (Attribute(**a) for a in attributes))
        spec.dependencies = {_dependency(p, f, s) for p, f, s in data.get("dependencies", [])}
        return spec
