"""Comparing two models (or executions): what differs between their traces (``dlprov diff``).

::

    from dlprov.compare import diff, render
    found = diff("mlp-adam", "mlp-sgd")          # plain data: sections of rows, divergence
    found["identical"], found["sections"]["hyperparameters"]
    print(render(found, "table"))                # or "json", "html" (one self-contained page)

A side is a model (id, name or file path, as every command takes it), a model package
(``a.zip``, no store needed) or, with ``runs=True``, an execution (exec tag or id). Each side is
read by :func:`dlprov.compare.trace.read_trace` (SQLite, PostgreSQL, a package's extract) or a
``dlprov serve`` server's ``/v1/trace``, then aligned by :mod:`dlprov.compare.align`. The result
is plain data, so a web page can call :func:`diff` and render it as it likes.
"""
from __future__ import annotations

from typing import Any

from dlprov.store.store import Store

__all__ = ["diff", "render", "compare_traces", "load_trace"]


def diff(a: str, b: str, *, store: Store | str | None = None,
         store_b: Store | str | None = None, runs: bool = False, dataflow: str | None = None,
         rtol: float = 1e-6, atol: float = 1e-12) -> dict[str, Any]:
    """How ``b`` differs from ``a`` (see the module): ``{"a", "b", "identical",
    "differences", "sections", "divergence"}``. ``store_b`` reads ``b`` from another store
    (default: ``store``). Metrics agree within ``rtol``/``atol``. Raises :class:`NotFound`
    for an unknown model or execution, :class:`PackageError` for a damaged package."""
    from dlprov.compare.align import compare_traces
    from dlprov.compare.sources import load_trace
    first = load_trace(a, store=store, runs=runs, dataflow=dataflow)
    second = load_trace(b, store=store if store_b is None else store_b, runs=runs,
                        dataflow=dataflow)
    return compare_traces(first, second, rtol=rtol, atol=atol)


def __getattr__(name: str) -> Any:
    if name == "render":
        from dlprov.compare.rendering import render
        return render
    if name == "compare_traces":
        from dlprov.compare.align import compare_traces
        return compare_traces
    if name == "load_trace":
        from dlprov.compare.sources import load_trace
        return load_trace
    raise AttributeError(f"module 'dlprov.compare' has no attribute {name!r}")
