"""``dlprov reproduce MODEL``: a recipe from the model's provenance (``-o DIR``) or a rerun
here checked against it (``--run``); the twin of :mod:`dlprov.reproduce`."""
from __future__ import annotations

import click


@click.command("reproduce")
@click.argument("model", metavar="MODEL")
@click.option("--output", "-o", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the recipe here (reproduce.sh, requirements.lock, patch, inputs).")
@click.option("--run", "run_now", is_flag=True,
              help="Train again here, in the current environment, and compare.")
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-5, show_default=True,
              help="--run: relative tolerance within which metrics must agree.")
@click.option("--timeout", type=click.FloatRange(min=1), metavar="S",
              help="--run: stop the training after S seconds.")
@click.option("--dataflow", "-d", "df_tag", metavar="TAG",
              help="Dataflow of MODEL (default: the one that has it).")
@click.pass_context
def reproduce(ctx: click.Context, model: str, output: str | None, run_now: bool,
              rtol: float, timeout: float | None, df_tag: str | None) -> None:
    """Rebuild MODEL from its provenance: -o DIR writes a recipe (exact environment, commit
    and patch, command line, input digests, reproduce.sh); --run trains again here and says
    what matched, exiting 1 if hyperparameters, data or metrics (within --rtol) differ.

    \b
      dlprov reproduce mlp-adam -o recipe/ && recipe/reproduce.sh
      dlprov reproduce mlp-adam --run --rtol 1e-4
    """
    from dlprov.errors import DlprovError
    from dlprov.reproduce import rerun, write_recipe
    if not output and not run_now:
        raise DlprovError("give -o DIR (write a recipe) or --run (train again here), or both")
    if output:
        recipe = write_recipe(model, output, store=ctx.obj, dataflow=df_tag)
        click.echo(f"wrote the recipe of {model} to {output} (run {output}/reproduce.sh)")
        for line in recipe.missing:
            click.echo(f"missing: {line}", err=True)
    if run_now:
        verdict = rerun(model, store=ctx.obj, dataflow=df_tag, rtol=rtol, timeout=timeout)
        for line in verdict.lines:
            click.echo(line)
        ctx.exit(verdict.exit_code)
