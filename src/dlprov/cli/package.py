"""``dlprov package``, ``verify`` and ``inspect``: deployment packages, the twins of
:func:`dlprov.prov.package.package_model`, :func:`~dlprov.prov.package.verify_package` and
:func:`~dlprov.prov.package.inspect_package`."""
from __future__ import annotations

import click

from dlprov.cli.options import dataflow_option, format_option
from dlprov.cli.output import render
from dlprov.prov.package import QUESTIONS, PackageError
from dlprov.store.store import Store


@click.command("package")
@click.option("--model", "-m", metavar="MODEL", required=True,
              help="The model: its id, its name or the path of its file.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), metavar="FILE.zip",
              required=True, help="The package to write.")
@dataflow_option
@click.pass_context
def package_command(ctx: click.Context, model: str, output: str, df_tag: str | None) -> None:
    """Write one zip holding MODEL's file, its provenance (PROV-JSON, PROV-N, a picture, an
    extract of the store) and a manifest with sha256 digests.

    \b
      dlprov package --model mlp-adam -o mlp-adam.zip
    """
    from dlprov.prov.package import package_model
    path = package_model(model, output, Store(ctx.obj), dataflow=df_tag)
    click.echo(f"wrote {path}", err=True)


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
def verify_command(file: str) -> None:
    """Check a package: digests, the model's bytes against the sha256 its provenance records,
    and the document. Exit 0 if OK, 1 if it FAILED, 2 if FILE is no package."""
    from dlprov.prov.package import verify_package
    try:
        verdict = verify_package(file)
    except PackageError as exc:
        click.echo(f"FAILED: {exc}")
        raise SystemExit(2) from None
    click.echo(str(verdict))
    raise SystemExit(verdict.exit_code)


@click.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("question", type=click.Choice(QUESTIONS, case_sensitive=False))
@click.option("--model", "-m", metavar="MODEL",
              help="The model asked about (default: the packaged one).")
@format_option
def inspect_command(file: str, question: str, model: str | None, fmt: str) -> None:
    """Answer QUESTION (Q7–Q12) about a packaged model from the package alone, no store."""
    from dlprov.prov.package import inspect_package
    params = {"model": model} if model else {}
    result = inspect_package(file, question, **params)
    click.echo(render(result.columns, result.rows, fmt))
