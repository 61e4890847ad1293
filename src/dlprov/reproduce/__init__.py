"""Training a model again from its provenance: a recipe (``dlprov reproduce MODEL -o DIR``,
:func:`write_recipe`) and a rerun here checked against the old model (``--run``,
:func:`rerun`)."""
from __future__ import annotations

from dlprov.reproduce.recipe import Recipe, build_recipe, write_recipe
from dlprov.reproduce.rerun import Verdict, rerun

__all__ = ["Recipe", "build_recipe", "write_recipe", "Verdict", "rerun"]
