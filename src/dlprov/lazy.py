"""Names of a package imported on first use (PEP 562), so that importing the package, or one
light module of it, does not import every library behind its public names."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def names_from(module: str, names: Iterable[str]) -> dict[str, str]:
    """``{name: module}`` for each of ``names``: a part of a :func:`lazy_names` table."""
    return dict.fromkeys(names, module)


def lazy_names(package: str, table: dict[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (its ``globals()`` are
    ``namespace``) that import each name of ``table`` from its module when first used."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            # a submodule, as when the eager imports had loaded it (``dlprov.query.q10``)
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as missing:
                if missing.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        namespace[name] = value  # once: later look-ups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
