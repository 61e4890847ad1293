"""PROV-JSON read a few thousand records at a time, by ``prov``'s own decoder.

``prov`` reads a PROV-JSON document into one :class:`~prov.model.ProvDocument`: for a document
of a million entities that is gigabytes of objects (records, attribute sets, qualified names),
where the parsed JSON is a fraction of it. Here the JSON is parsed once, as ``prov`` parses it
(the same repeated-key warnings), and each record-type group of each container is cut into
slices; every slice, with its container's prefixes, is decoded by ``prov``'s
``decode_json_container`` into a throw-away document (a throw-away bundle of one, for a named
bundle) and handed on, and the JSON it came from is dropped. What a slice holds, and every error
and warning ``prov`` gives, are those of reading the document whole: the groups and records come
in the same order, and each record is decoded with the same namespaces in scope.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from prov.model import ProvBundle, ProvDocument
from prov.serializers import provjson as _prov

from dlprov.prov.reading import Batch, _name

# prov 3 warns about a key repeated in a JSON object, as a future rejection; prov 2 does not.
_repeated_key_hook = getattr(_prov, "_repeated_key_hook", None)
_warn_rejection = getattr(_prov, "_warn_rejection", None)
_check_record_key = getattr(_prov, "_check_record_key", None)

Reading = Callable[[], AbstractContextManager[None]]


def json_batches(data: bytes, size: int, reading: Reading) -> Iterator[Batch]:
    """The records of the PROV-JSON ``data``, ``size`` at a time; every step runs inside a
    fresh ``reading()`` context, which turns ``prov``'s errors and warnings into dlprov's."""
    with reading():
        container = _load(data)
        document = ProvDocument()
        _prov.decode_json_document(_skeleton(container), document)  # the shapes prov checks
    prefixes = container.pop("prefix", None)
    bundles = container.pop("bundle", {})
    yield from _container_batches(container, prefixes, None, size, reading)
    for bundle_id in list(bundles):
        content = bundles.pop(bundle_id)
        yield from _bundle_batches(bundle_id, content, prefixes, size, reading)


def _load(data: bytes) -> Any:
    text = data.decode("utf-8")
    if _repeated_key_hook is None:
        return json.loads(text)
    repeated: list[str] = []
    container = json.loads(text, object_pairs_hook=_repeated_key_hook(repeated, None, None))
    for key in repeated:
        _warn_rejection(f"the key {key!r} is repeated in a JSON object; the last value is used",
                        issue=532)
    return container


def _skeleton(container: Any) -> Any:
    """``container`` with its record groups and bundles left out, so that ``prov`` checks the
    document's shape (an object, an object of prefixes, bundles in an object) and nothing else."""
    if not isinstance(container, dict):
        return container
    skeleton = {key: container[key] for key in ("prefix",) if key in container}
    bundles = container.get("bundle")
    if bundles is not None:
        skeleton["bundle"] = bundles if not isinstance(bundles, dict) else {}
    return skeleton


def _slices(container: dict[str, Any], size: int) -> Iterator[tuple[str, Any]]:
    """(record type, its records or a slice of them), emptying ``container`` as it goes."""
    for rec_type in list(container):
        group = container.pop(rec_type)
        if not isinstance(group, dict) or len(group) <= size:
            yield rec_type, group  # prov says what is wrong with a group that is no object
            continue
        keys = list(group)
        for start in range(0, len(keys), size):
            yield rec_type, {key: group.pop(key) for key in keys[start:start + size]}


def _container_batches(container: dict[str, Any], prefixes: Any, bundle: str | None,
                       size: int, reading: Reading) -> Iterator[Batch]:
    for rec_type, records in _slices(container, size):
        with reading():
            document = ProvDocument()
            _prov.decode_json_container(_with_prefixes({rec_type: records}, prefixes), document)
        yield _batch(document, bundle)


def _bundle_batches(bundle_id: str, content: Any, prefixes: Any, size: int,
                    reading: Reading) -> Iterator[Batch]:
    own = content.pop("prefix", None) if isinstance(content, dict) else None
    parts = list(_slices(content, size)) if isinstance(content, dict) else [(None, content)]
    name = None
    for rec_type, records in parts or [(None, {})]:
        with reading():
            document, bundle = _empty_bundle(prefixes)
            if rec_type is None:
                _prov.decode_json_container(
                    records if not isinstance(records, dict) else _with_prefixes({}, own),
                    bundle)
            else:
                _prov.decode_json_container(_with_prefixes({rec_type: records}, own), bundle)
            if name is None:  # the bundle's name, checked and resolved as prov does
                if _check_record_key is not None:
                    _check_record_key(bundle, bundle_id, "bundle")
                document.add_bundle(bundle, bundle.valid_qualified_name(bundle_id))
                name = _name(bundle.identifier)
        yield _batch(bundle, name)


def _empty_bundle(prefixes: Any) -> tuple[ProvDocument, ProvBundle]:
    """A bundle in a document that has the document's prefixes, as prov reads a bundle."""
    document = ProvDocument()
    _prov.decode_json_container(_with_prefixes({}, prefixes), document)
    return document, ProvBundle(document=document)


def _with_prefixes(container: dict[str, Any], prefixes: Any) -> dict[str, Any]:
    return container if prefixes is None else {"prefix": prefixes, **container}


def _batch(bundle: ProvBundle, name: str | None) -> Batch:
    return Batch(name, bundle.records, {ns.prefix: ns.uri for ns in bundle.namespaces})
