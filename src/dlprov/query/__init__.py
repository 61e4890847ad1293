"""Readers of the store: SQL, executions, tasks, specs. Each CLI listing has its twin here."""
from dlprov.query.catalogue import list_runs, list_tasks
from dlprov.query.schema import describe
from dlprov.query.sql import QueryResult, set_tables, sql

__all__ = ["sql", "QueryResult", "set_tables", "list_runs", "list_tasks", "describe"]
