"""The process's view of each dataflow's spec, shared by every run and task that captures into it.

Loaded once from the store, grown by declarations and by inference from first elements. Each
growth is sent to the recorder as a snapshot; the writer merges it into the stored spec.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

from dlprov.errors import DlprovError, SpecError
from dlprov.model import limits
from dlprov.model.names import check_name
from dlprov.model.spec import Attribute, DataflowSpec
from dlprov.model.values import Converter, converter, infer_type
from dlprov.store.store import Store

log = logging.getLogger("dlprov.capture")


class SpecBook:
    """A dataflow spec plus, per set, the converters that check values against it."""

    def __init__(self, spec: DataflowSpec) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        # Per set, one dict mutated in place, so tasks may keep a reference to it.
        self.converters: dict[str, dict[str, Converter]] = {}
        for set_tag in spec.sets:
            self._refresh(set_tag)

    def _refresh(self, set_tag: str) -> dict[str, Converter]:
        found = self.converters.setdefault(set_tag, {})
        for attribute in self.spec.sets[set_tag].attributes.values():
            found[attribute.name] = converter(set_tag, attribute)
        return found

    def snapshot(self) -> dict:
        with self.lock:
            return self.spec.to_dict()

    def declare_set(self, set_tag: str, attributes: Iterable[Attribute]) -> bool:
        """Add a set or attributes to it. Returns True if the spec grew. Refuses, changing
        nothing, a name given twice (in any case) and a set over the store's limits."""
        set_tag = check_name("set", set_tag)
        attributes = list(attributes)
        with self.lock:
            known = self.spec.sets.get(set_tag)
            names = set(known.attributes) if known is not None else set()
            given: set[str] = set()
            for attribute in attributes:
                if attribute.name in given:
                    raise SpecError(f"set {set_tag!r}: attribute {attribute.name!r} is given "
                                    f"twice (names are case-insensitive)")
                given.add(attribute.name)
            if known is None:
                limits.check_set_table(self.spec.tag, set_tag)
            limits.check_attribute_count(set_tag, len(names | given))
            types = [a.type.value for a in known.attributes.values()] if known else []
            limits.check_set_width(
                set_tag, types + [a.type.value for a in attributes if a.name not in names],
                max(1, len(self.spec.transformations_of(set_tag))))  # its producer's column
            changed = self.spec.add_set(set_tag, attributes)
            self._refresh(set_tag)
            return changed

    def infer_set(self, set_tag: str, values: dict[str, Any]) -> bool:
        """Add the attributes of a first element that the set does not have yet."""
        set_tag = check_name("set", set_tag)
        with self.lock:
            known = self.spec.sets.get(set_tag)
            new = []
            for name, value in values.items():
                if known is None or check_name("attribute", name) not in known.attributes:
                    attribute = Attribute(name, infer_type(set_tag, name, value))
                    converter(set_tag, attribute)(value)  # a bad first value adds nothing
                    new.append(attribute)
            if known is not None and not new:
                return False
            return self.declare_set(set_tag, new)

    def add_role(self, transformation: str, set_tag: str, role: str,
                 producer: str | None = None) -> bool:
        with self.lock:
            limits.check_new_roles(self.spec, check_name("set", set_tag),
                                   (check_name("transformation", transformation),
                                    None if producer is None
                                    else check_name("transformation", producer)))
            return self.spec.add_role(transformation, set_tag, role, producer)

    def add_transformation(self, transformation: str) -> bool:
        with self.lock:
            return self.spec.add_transformation(transformation)

    def add_task(self, transformation: str, inputs: Iterable[tuple[str, str]]) -> bool:
        """Add ``transformation`` and the ``(set, producer)`` inputs it takes from tasks it
        depends on: all of it, or nothing if a set would grow past the store's limits."""
        inputs = [(check_name("set", set_tag), check_name("transformation", producer))
                  for set_tag, producer in inputs]
        transformation = check_name("transformation", transformation)
        with self.lock:
            touching: dict[str, set[str]] = {}
            for set_tag, producer in inputs:
                touching.setdefault(set_tag, {transformation}).add(producer)
            for set_tag, names in touching.items():
                limits.check_new_roles(self.spec, set_tag, names)
            changed = self.spec.add_transformation(transformation)
            for set_tag, producer in inputs:
                changed |= self.spec.add_role(transformation, set_tag, "input", producer)
            return changed

    def merge(self, spec: DataflowSpec) -> bool:
        """Add a declared spec; refused whole, changing nothing, if the result would not fit
        the store's limits."""
        with self.lock:
            trial = self.spec.copy()
            trial.merge(spec)
            limits.check_spec(trial)
            changed = self.spec.merge(spec)
            for set_tag in self.spec.sets:
                self._refresh(set_tag)
            return changed


_books: dict[tuple[str, str], SpecBook] = {}
_books_lock = threading.Lock()


def specbook_for(store: Store, df_tag: str) -> SpecBook:
    """The process's :class:`SpecBook` of ``df_tag`` in ``store``, loaded from it on first use.

    A store that cannot be read is no reason to stop a training run: the spec starts empty and
    grows from what the run captures.
    """
    key = (store.url, df_tag)
    with _books_lock:
        found = _books.get(key)
        if found is None:
            try:
                stored = store.load_spec(df_tag)
            except DlprovError as exc:
                log.warning("dlprov: cannot read the spec of %r (%s); inferring it afresh", df_tag, exc)
                stored = None
            found = _books[key] = SpecBook(stored or DataflowSpec(df_tag))
        return found
