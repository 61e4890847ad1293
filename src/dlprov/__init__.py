"""dlprov: provenance of deep-learning workflows, recorded, stored, queried and exported (W3C PROV).

The public surface::

    import dlprov
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.input("itrain", optimizer_name="adam", learning_rate=1e-3)
            train.output("otrain", epoch=1, loss=0.4, accuracy=0.9)

The DfAnalyzer-compatible API lives in :mod:`dlprov.dfa`.
"""
from __future__ import annotations

from dlprov.errors import (
    DlprovError,
    NameRejected,
    NoActiveRun,
    NotFound,
    ProvImportError,
    QueryError,
    ReadOnlyViolation,
    RunEnded,
    SpecError,
    StoreUnavailable,
    TaskEnded,
    ValueRejected,
)
from dlprov.lazy import lazy_names as _lazy_names, names_from as _names_from

__version__ = "0.1.0"

# The capture and query APIs are imported on first use, so that a command line that only
# reads a store does not import the whole package (see benchmarks/cli_startup.py).
__getattr__, __dir__ = _lazy_names(__name__, {
    **_names_from("dlprov.capture.dataprep", ("prepare", "saved", "step", "use_run")),
    **_names_from("dlprov.capture.run", ("Run", "attach", "run")),
    **_names_from("dlprov.capture.task", ("Task",)),
    **_names_from("dlprov.model.spec", ("Attribute", "AttributeType", "DataflowSpec")),
    **_names_from("dlprov.query", ("describe", "list_runs", "list_tasks", "sql")),
    **_names_from("dlprov.compare", ("diff",)),
}, globals())

__all__ = [
    "run", "attach", "Run", "Task", "Attribute", "AttributeType", "DataflowSpec",
    "step", "prepare", "saved", "use_run",
    "sql", "list_runs", "list_tasks", "describe", "diff",
    "DlprovError", "NameRejected", "NoActiveRun", "NotFound", "ProvImportError", "QueryError",
    "ReadOnlyViolation", "RunEnded", "SpecError", "StoreUnavailable", "TaskEnded",
    "ValueRejected", "__version__",
]
