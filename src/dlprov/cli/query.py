"""``dlprov query q1 … q12``: the provenance questions of the DLProv paper's Table 2.

Each command is the twin of :func:`dlprov.query.prepare` / :func:`dlprov.query.ask`.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import click

from dlprov.cli.imports import external, linked
from dlprov.cli.options import dataflow_option, format_option
from dlprov.cli.output import render
from dlprov.query.questions import QUESTIONS
from dlprov.store.store import Store

_sql_option = click.option("--sql", "show_sql", is_flag=True,
                           help="Print the SQL and its parameters instead of running it.")
_model_option = click.option("--model", "-m", metavar="MODEL", required=True,
                             help="The model: its id, its name or the path of its file.")
_engine_option = click.option("--engine", type=click.Choice(["sql", "cypher"]), default="sql",
                              show_default=True,
                              help="Answer from the store (SQL) or its provenance graph "
                                   "(Cypher, see dlprov.graph.ask); --sql prints the query.")
_learning_rate_option = click.option("--learning-rate", type=float, metavar="RATE",
                                     help="Only trainings with this learning rate.")


class _InOrder(click.Group):
    """Lists Q1 … Q12 in the paper's order, not alphabetically (q1, q10, q11, …)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_InOrder)
def query() -> None:
    """Answer the provenance questions of the DLProv paper (Table 2, Q1–Q12).

    A dataflow following the paper's conventions is assumed: sets itrain, otrain,
    otrainedmodel, otest of transformations train and test. A MODEL is a model id, a model
    name or the path of the model's file.
    """


def _question(question_id: str, *options: Callable) -> None:
    """Register ``dlprov query <question_id>`` with ``options`` and the shared ones."""
    question = QUESTIONS[question_id]

    @click.pass_context
    def command(ctx: click.Context, df_tag: str | None, fmt: str, show_sql: bool,
                **params: Any) -> None:
        from dlprov.query.questions import prepare
        if params.pop("engine", "sql") == "cypher":
            _cypher(question_id, params["model"], Store(ctx.obj), df_tag, fmt, show_sql)
            return
        statement = prepare(question_id, store=Store(ctx.obj), dataflow=df_tag, **params)
        if show_sql:
            click.echo(str(statement))
            return
        result = statement.run()
        click.echo(render(result.columns, result.rows, fmt))

    details = inspect.cleandoc(question.build.__doc__ or "")
    for option in reversed((*options, dataflow_option, format_option, _sql_option)):
        command = option(command)
    query.command(question_id, help=f"{question.title}\n\n{details}",
                  short_help=question.title)(command)


def _cypher(question_id: str, model: str, store: Store, df_tag: str | None, fmt: str,
            show_sql: bool) -> None:
    """``--engine cypher``: the twin of :func:`dlprov.graph.ask` (``--sql``: of ``prepare``)."""
    from dlprov.graph.questions import ask, prepare
    if show_sql:
        text, params = prepare(question_id, model, store=store, dataflow=df_tag)
        click.echo(f"{text}\n-- parameters: {params}")
        return
    result = ask(question_id, model, store=store, dataflow=df_tag)
    click.echo(render(result.columns, result.rows, fmt))


_question("q1", click.option("--learning-rate", type=float, metavar="RATE", required=True,
                             help="The learning rate, e.g. 0.001."))
_question("q2", _learning_rate_option,
          click.option("--batch-size", type=int, metavar="N",
                       help="Only trainings with this batch size."),
          click.option("--model", "-m", metavar="MODEL",
                       help="Only the training of this model (id, name or file path)."))
# Q3–Q6 rank trainings by a metric: the paper's accuracy (Q6: loss) unless told otherwise.
_ranking_options = (
    click.option("--metric", metavar="NAME",
                 help="Rank by this numeric attribute (e.g. val_acc, test_acc, val_loss) "
                      "instead of the paper's; an unknown one lists those there are."),
    click.option("--mode", type=click.Choice(["max", "min"], case_sensitive=False),
                 help="Best is the highest (max) or lowest (min) value; default: min for "
                      "loss- or error-like names, else max."),
    click.option("--set", "set_tag", metavar="SET",
                 help="The set the metric is in (default: the question's own set if it has "
                      "it, else the one set of train or test that has it)."))
_question("q3", *_ranking_options)
_question("q4", *_ranking_options)
_question("q5", *_ranking_options)
_question("q6", click.option("--training-set", metavar="NAME", required=True,
                             help="A file path (or its last part) or dataset name of the data "
                                  "the models were trained on."), *_ranking_options)
for _id in ("q7", "q8", "q9", "q10", "q11", "q12"):
    _question(_id, _model_option, _engine_option)
query.add_command(external)
query.add_command(linked)
