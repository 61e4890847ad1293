"""Readers of the store: SQL, executions, tasks, specs, and the provenance questions of the
DLProv paper (Q1–Q12). Each CLI listing has its twin here."""
from dlprov.query.building import Statement
from dlprov.query.catalogue import list_runs, list_tasks
from dlprov.query.external import external_lineage, linked_records
from dlprov.query.models import ModelRef, find_model
from dlprov.query.questions import (
                                    QUESTIONS,
                                    ask,
                                    prepare,
                                    q1,
                                    q2,
                                    q3,
                                    q4,
                                    q5,
                                    q6,
                                    q7,
                                    q8,
                                    q9,
                                    q10,
                                    q11,
                                    q12,
)
from dlprov.query.schema import describe
from dlprov.query.sql import QueryResult, set_tables, sql

__all__ = ["sql", "QueryResult", "set_tables", "list_runs", "list_tasks", "describe",
           "QUESTIONS", "Statement", "ask", "prepare", "ModelRef", "find_model",
           "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12"]
__all__ += ["external_lineage", "linked_records"]
