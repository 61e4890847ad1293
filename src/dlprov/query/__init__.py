"""Readers of the store: SQL, executions, tasks, specs, and the provenance questions of the
DLProv paper (Q1–Q12). Each CLI listing has its twin here."""
from dlprov.lazy import lazy_names as _lazy_names, names_from as _names_from

# Imported on first use: a reader of one module (dlprov.query.guard) does not import them all.
__getattr__, __dir__ = _lazy_names(__name__, {
    **_names_from("dlprov.query.building", ("Statement",)),
    **_names_from("dlprov.query.catalogue", ("list_runs", "list_tasks")),
    **_names_from("dlprov.query.external", ("external_lineage", "linked_records")),
    **_names_from("dlprov.query.models", ("ModelRef", "find_model")),
    **_names_from("dlprov.query.questions",
                  ("QUESTIONS", "ask", "prepare", *(f"q{i}" for i in range(1, 13)))),
    **_names_from("dlprov.query.schema", ("describe",)),
}, globals())
# Not lazy: the module dlprov.query.sql, once imported, would hide the function of its name.
from dlprov.query.sql import QueryResult, set_tables, sql  # noqa: E402

__all__ = ["sql", "QueryResult", "set_tables", "list_runs", "list_tasks", "describe",
           "QUESTIONS", "Statement", "ask", "prepare", "ModelRef", "find_model",
           "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12"]
__all__ += ["external_lineage", "linked_records"]
