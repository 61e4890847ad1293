"""A click group whose commands in other modules are imported when they are used, so that a
command pays only for the libraries it needs (``dlprov runs`` does not import PROV, the graph
database or the server; see ``benchmarks/cli_startup.py``)."""
from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A group that also knows commands by ``"module:attribute"`` (:meth:`add_lazy`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``target`` (``"package.module:command"``) as the command ``name``."""
        self.lazy[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy:
            module, _, attribute = self.lazy[name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if command.name != name:  # a wrong table entry would otherwise run another command
                raise RuntimeError(f"{self.lazy[name]} is command {command.name!r}, not {name!r}")
            self.add_command(command)
        return super().get_command(ctx, name)
