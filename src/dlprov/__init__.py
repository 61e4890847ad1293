"""dlprov: provenance of deep-learning workflows, recorded, stored, queried and exported (W3C PROV).

The public surface::

    import dlprov
    with dlprov.run("mnist") as run:
        with run.task("train") as train:
            train.input("itrain", optimizer_name="adam", learning_rate=1e-3)
            train.output("otrain", epoch=1, loss=0.4, accuracy=0.9)

The DfAnalyzer-compatible API lives in :mod:`dlprov.dfa`.
"""
from dlprov.capture.dataprep import prepare, saved, step, use_run
from dlprov.capture.run import Run, attach, run
from dlprov.capture.task import Task
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
from dlprov.model.spec import Attribute, AttributeType, DataflowSpec
from dlprov.query import describe, list_runs, list_tasks, sql

__version__ = "0.1.0"

__all__ = [
    "run", "attach", "Run", "Task", "Attribute", "AttributeType", "DataflowSpec",
    "step", "prepare", "saved", "use_run",
    "sql", "list_runs", "list_tasks", "describe",
    "DlprovError", "NameRejected", "NoActiveRun", "NotFound", "ProvImportError", "QueryError",
    "ReadOnlyViolation", "RunEnded", "SpecError", "StoreUnavailable", "TaskEnded",
    "ValueRejected", "__version__",
]
