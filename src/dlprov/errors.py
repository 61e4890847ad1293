"""The errors dlprov raises. Every message names what was wrong and what to do."""
from __future__ import annotations


class DlprovError(Exception):
    """Base class of every error raised by dlprov."""


class NameRejected(DlprovError, ValueError):
    """A dataflow, transformation, set or attribute name is not a plain identifier."""


class SpecError(DlprovError, ValueError):
    """An element or declaration does not fit the dataflow's prospective spec."""


class ValueRejected(DlprovError, ValueError):
    """A value cannot be stored: NaN/inf, a tensor with more than one value, a wrong type."""


class StoreUnavailable(DlprovError):
    """The store cannot be opened or reached."""


class ReadOnlyViolation(DlprovError):
    """A statement given to the read-only SQL interface would write."""


class QueryLimitExceeded(DlprovError):
    """A read-only SQL statement ran past its time limit or would return more rows or bytes
    than allowed (see :mod:`dlprov.query.guard`)."""


class NotFound(DlprovError, LookupError):
    """A dataflow, execution, task or model that was asked for does not exist."""


class QueryError(DlprovError, ValueError):
    """A provenance question cannot be asked as given: a parameter is missing, a model name is
    ambiguous, or the dataflow lacks a set the question relies on."""


class NoActiveRun(DlprovError, RuntimeError):
    """A preprocessing step was called with no run to capture into (none given with ``run=``,
    none made current with ``dlprov.use_run``), or ``dlprov.saved`` outside any step."""


class ProvImportError(DlprovError, ValueError):
    """A PROV document cannot be imported: not PROV, malformed, over a limit or hostile."""


class TaskEnded(DlprovError, RuntimeError):
    """``input``, ``output`` or ``model`` was called on a task that has ended (or whose run has
    ended): nothing is recorded into a finished task."""


class RunEnded(DlprovError, RuntimeError):
    """A task was started in, or a handle made of, a run that has ended."""
