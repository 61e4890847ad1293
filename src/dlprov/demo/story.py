"""What ``dlprov demo`` prints once its candidates are trained: a short story that fits a
terminal. What ran, Listing 4's answer (a table), the model Q4 chooses, the answer to each of
Q1–Q12 in a line or two, and the commands that show everything in full."""
from __future__ import annotations

import shlex
import textwrap
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

from dlprov.cli.output import cell_text, plain_columns, render_records, terminal_width
from dlprov.store.store import Store

Record = dict[str, Any]
_LINES_PER_ANSWER = 2
_RUNS_SHOWN = 6  # the story stays short with --candidates 32
_HYPERPARAMETERS = ("optimizer_name", "learning_rate", "num_epochs", "batch_size",
                    "num_layers", "hidden_units")
# Listing 4's answer, most telling columns first, so that a narrow terminal drops the others
_LISTING_4_FIRST = ("train_task_id", "avg_accuracy", "optimizer_name", "learning_rate")


def tell(store: Store, dataflow: str, listing: str, executions: int, learning_rate: float,
         training_set: str = "train.npz", echo: Callable[[str], None] = print) -> None:
    """Print the story of the latest ``executions`` runs of ``dataflow`` in ``store``: what
    ran, ``listing``'s answer (Listing 4), the model Q4 chooses, Q1–Q12 (Q1 for
    ``learning_rate``, Q6 for ``training_set``, Q7–Q12 about Q4's model) and what to run
    next."""
    from dlprov.query.catalogue import list_runs
    from dlprov.query.sql import sql

    width = min(terminal_width(), 100)
    runs = list_runs(store, dataflow)[:executions]
    tasks = sum(r.get("tasks") or 0 for r in runs)
    statuses = sorted({str(r.get("status")) for r in runs})
    echo(f"\nRecorded {len(runs)} execution{'s' * (len(runs) != 1)} of dataflow '{dataflow}' "
         f"({tasks} tasks, {', '.join(statuses)})\nStore: {store.safe_url}")
    echo(render_records(runs[:_RUNS_SHOWN], ["id", "exec_tag", "status", "duration_s", "tasks"],
                        width=width))
    if len(runs) > _RUNS_SHOWN:
        echo(f"(and {len(runs) - _RUNS_SHOWN} more: dlprov runs)")

    echo("\nListing 4: the model with the highest average training accuracy")
    result = sql(listing, store=store, dataflow=dataflow)
    order = [c for c in _LISTING_4_FIRST if c in result.columns] + \
        [c for c in result.columns if c not in _LISTING_4_FIRST and c != "id"]
    echo(render_records(result.records(), order, width=width, layout="table"))

    answers = _Answers(store, dataflow, width, echo)
    answers.show("q1", f"models trained with learning rate {learning_rate:g}:", _models,
                 learning_rate=learning_rate)
    answers.show("q2", "seconds per epoch:", _epoch_times)
    answers.show("q3", "best average training accuracy:", lambda rows: _best(rows, "avg_accuracy"))
    best = answers.show("q4", "best test accuracy:",
                        lambda rows: _best(rows, "test_accuracy", "test_loss"))
    answers.show("q5", "data behind its run:", _lineage)
    answers.show("q6", f"least test loss trained on {training_set}:",
                 lambda rows: _best(rows, "test_loss", "test_accuracy"), training_set=training_set)
    if not best or best[0].get("model_id") is None:
        echo("\nQ4 chose no model: Q7–Q12 are about one.")
    else:
        model, name = best[0]["model_id"], best[0].get("model_name")
        echo(f"\nChosen model (Q4's): {name}\n  id {model}; Q7–Q12 are about it")
        for question, title, summary in (
                ("q7", "hyperparameters:", _fields), ("q8", "environment:", _environment),
                ("q9", "trained by", _responsible), ("q10", "process that led to it:", _lineage),
                ("q11", "training data:", _training_data),
                ("q12", "feature transformations:", _steps)):
            answers.show(question, title, summary, model=model)
    _next_steps(store, dataflow, best[0].get("model_name") if best else None, echo)


class _Answers:
    """Asks the paper's questions and prints each answer as ``Qn title: summary``."""

    def __init__(self, store: Store, dataflow: str, width: int,
                 echo: Callable[[str], None]) -> None:
        self.store, self.dataflow, self.width, self.echo = store, dataflow, width, echo
        self.first = True

    def show(self, question: str, title: str, summary: Callable[[list[Record]], str],
             **params: Any) -> list[Record]:
        from dlprov.query.questions import ask

        result = ask(question, store=self.store, dataflow=self.dataflow, **params)
        records = [dict(zip(result.columns, row))
                   for row in plain_columns(result.columns, result.rows)]
        if self.first:
            self.echo("\nThe paper's questions (in full: dlprov query QUESTION --help):")
            self.first = False
        label = f"{question.upper()} "
        text = f"{title} {summary(records) if records else 'no answer'}"
        lines = textwrap.wrap(text, self.width - len(label), max_lines=_LINES_PER_ANSWER,
                              placeholder=" …", break_on_hyphens=False)
        self.echo(label + ("\n" + " " * len(label)).join(lines or [""]))
        return records


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    return cell_text(value)


def _values(record: Record, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_fmt(record[k])}" for k in keys if record.get(k) is not None)


def _models(rows: list[Record]) -> str:
    names = [str(r.get("model_name")) for r in rows]
    return f"{len(rows)}: {', '.join(names)}"


def _epoch_times(rows: list[Record]) -> str:
    return ", ".join(
        f"{r.get('model_name')} {_fmt(r.get('avg_epoch_time'))}" for r in rows)


def _best(rows: list[Record], *measures: str) -> str:
    record = rows[0]
    return f"{record.get('model_name')}: {_values(record, measures)}; " \
           f"{_values(record, _HYPERPARAMETERS)}"


def _fields(rows: list[Record]) -> str:
    return _values(rows[0], [k for k in rows[0] if k not in ("train_task_id", "exec_tag")])


def _environment(rows: list[Record]) -> str:
    env = rows[0]
    gpus, packages = env.get("gpus"), env.get("packages")
    commit = str(env.get("git_commit") or "")[:8]
    return (f"{env.get('hostname')}: {env.get('os')} {env.get('os_version')}, "
            f"{env.get('cpu_count')} CPUs, {len(gpus) if isinstance(gpus, list) else 0} GPUs, "
            f"Python {env.get('python_version')}"
            + (f", {len(packages)} packages" if isinstance(packages, dict) else "")
            + (f", git {commit}{' (dirty)' if env.get('git_dirty') else ''}" if commit else ""))


def _responsible(rows: list[Record]) -> str:
    who = rows[0]
    email = f" <{who['email']}>" if who.get("email") else ""
    return (f"{who.get('username')}{email} on {who.get('hostname')}, "
            f"from {_fmt(who.get('start_time'))}")


def _chain(rows: list[Record], order: str) -> str:
    """The transformations of ``rows`` once each, by ``order`` (depth: highest first)."""
    keyed = sorted(rows, key=lambda r: (-(r.get(order) or 0) if order == "depth"
                                        else (r.get(order) or 0)))
    seen: list[str] = []
    for r in keyed:
        if r.get("transformation") not in seen:
            seen.append(r.get("transformation"))
    return " → ".join(map(str, seen))


def _lineage(rows: list[Record]) -> str:
    sets = {r.get("set_tag") for r in rows}
    return f"{_chain(rows, 'depth')} ({len(rows)} records of {len(sets)} sets)"


def _training_data(rows: list[Record]) -> str:
    parts: dict[str, set[str]] = {}
    for r in rows:
        parts.setdefault(str(r.get("set_tag")), set()).add(
            PurePath(r["files"]).name if r.get("files") else "?")
    return "; ".join(f"{tag} ({', '.join(sorted(files))})" for tag, files in parts.items())


def _steps(rows: list[Record]) -> str:
    return _chain(rows, "step")


def _next_steps(store: Store, dataflow: str, model: str | None,
                echo: Callable[[str], None]) -> None:
    prefix = f"dlprov --store {shlex.quote(store.safe_url.removeprefix('sqlite:///'))}"
    echo("\nWhere to look next:")
    for command, what in (
            ("runs --wide", "every run, its hyperparameters and metrics"),
            ("query q8 --model " + (model or "MODEL") + " --format json",
             "any answer in full"),
            (f"sql \"SELECT * FROM otrain\" -d {dataflow}", "the recorded rows, in SQL"),
            (f"export --model {model or 'MODEL'} -o model.provn",
             "W3C PROV of the model's derivation")):
        echo(f"  {prefix} {command}\n      {what}")
    echo(f"  {prefix} ui\n      all of it in a browser: runs, live curves, compare, lineage")
