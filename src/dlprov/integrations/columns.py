"""Which column of a set a framework's name (a metric, a hyperparameter) is stored in.

Frameworks name metrics freely (``val/loss``, ``val_loss``, ``val-loss``, ``🔥``); columns are
plain identifiers. :func:`~dlprov.model.names.attribute_name` cleans a name, and names that clean
alike get distinct columns here: the first keeps the cleaned name, the next ones get ``_2``,
``_3``, ... Each attribute made for a name that is not its own records that name as its
:attr:`~dlprov.model.spec.Attribute.label`, so the mapping is read back from the spec: the same
name finds the same column in every epoch, run and process of the dataflow, in any order.
Names are case-insensitive, as attribute names are (``Loss`` is ``loss``).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from dlprov.model.limits import storable_text
from dlprov.model.names import MAX_NAME_LENGTH, attribute_name, check_name
from dlprov.model.spec import MAX_LABEL_LENGTH, Attribute


def label_of(name: object) -> str:
    """``name`` as a label every store can hold: NUL and lone surrogates escaped, at most
    :data:`MAX_LABEL_LENGTH` characters (longer names are told apart by their start)."""
    return storable_text(str(name))[:MAX_LABEL_LENGTH]


def name_key(label: str) -> str:
    """What tells two names apart: their text, ignoring case."""
    return label.lower()


def attribute_key(attribute: Attribute) -> str:
    """The name an attribute stands for: its label, else its own name."""
    return name_key(attribute.label if attribute.label is not None else attribute.name)


def assign_columns(attributes: Mapping[str, Attribute], labels: Iterable[str]) -> dict[str, str]:
    """The column of each label (see :func:`label_of`) in a set holding ``attributes``: the
    attribute made for it, else a free column derived from its cleaned name; among new labels,
    those that are already plain names (``val_loss``) choose first. Labels that are one name
    (differing in case) get one column. Pure: the caller declares the new columns, with their
    labels, under the lock that guards ``attributes``."""
    labels = list(labels)
    by_key = {attribute_key(a): a.name for a in attributes.values()}
    taken = set(attributes)
    new = [label for label in labels if name_key(label) not in by_key]
    for label in sorted(new, key=lambda label: attribute_name(label) != name_key(label)):
        key = name_key(label)
        if key not in by_key:
            by_key[key] = _free_column(attribute_name(label), taken)
            taken.add(by_key[key])
    return {label: by_key[name_key(label)] for label in labels}


def _free_column(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f"_{number}"
        column = base[:MAX_NAME_LENGTH - len(suffix)].rstrip("_") + suffix
        if column not in taken:
            return check_name("attribute", column)
        number += 1
