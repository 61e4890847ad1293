"""``dlprov package``, ``verify``, ``inspect`` and ``keygen``: deployment packages, the twins of
:func:`dlprov.prov.package.package_model`, :func:`~dlprov.prov.package.verify_package`,
:func:`~dlprov.prov.package.inspect_package` and :func:`~dlprov.prov.package.generate_key`."""
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
@click.option("--sign", "key", metavar="KEY.pem", type=click.Path(dir_okay=False),
              help="Sign the manifest with this Ed25519 private key (see dlprov keygen).")
@dataflow_option
@click.pass_context
def package_command(ctx: click.Context, model: str, output: str, key: str | None,
                    df_tag: str | None) -> None:
    """Write one zip holding MODEL's file, its provenance (PROV-JSON, PROV-N, a picture, an
    extract of the store) and a manifest with sha256 digests, signed with --sign.

    \b
      dlprov package --model mlp-adam -o mlp-adam.zip --sign release.pem
    """
    from dlprov.prov.package import package_model
    path = package_model(model, output, Store(ctx.obj), dataflow=df_tag, sign=key)
    click.echo(f"wrote {path}" + (" (signed)" if key else ""), err=True)


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", metavar="KEY.pub", type=click.Path(dir_okay=False),
              help="The manifest must be signed by this Ed25519 public key.")
@click.option("--store", "store", metavar="URL",
              help="The store the package came from must hold its model and trace as they "
                   "are in the package.")
def verify_command(file: str, key: str | None, store: str | None) -> None:
    """Check a package: digests, the model's bytes against the sha256 its provenance records,
    the document, and with --key its signature, with --store the store it came from. Exit 0
    if OK, 1 if it FAILED, 2 if FILE is no package (or breaks a limit) or the key unreadable."""
    from dlprov.prov.package import verify_package
    try:
        verdict = verify_package(file, key=key, store=store)
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


@click.command("keygen")
@click.argument("key", type=click.Path(dir_okay=False))
def keygen_command(key: str) -> None:
    """Make an Ed25519 key pair for signing packages: KEY (private, readable by you only: give
    it to `dlprov package --sign`) and KEY.pub (public: give it to `dlprov verify --key`)."""
    from dlprov.prov.signing import fingerprint, generate_key, load_public_key
    private, public = generate_key(key)
    click.echo(f"wrote {private} (private: keep it secret) and {public} (public); key sha256 "
               f"{fingerprint(load_public_key(public))}")
