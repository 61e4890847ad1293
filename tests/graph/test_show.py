"""`dlprov graph show`: a self-contained HTML page and an SVG of a model's trace."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.graph.page import to_html
from dlprov.prov import model_document
from dlprov.prov.picture import COLOURS, graph
from tests.prov.workflows import experiment


@pytest.fixture
def filled(store_path: Path, tmp_path: Path):
    return experiment(tmp_path)


def test_html_is_self_contained_and_labelled(filled, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["graph", "show", "--model", "mlp-a",
                                      "-o", str(tmp_path / "trace.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "trace.html").read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=", page, re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.I)
    g = graph(model_document("mlp-a"), group=True)
    for node in g.nodes.values():
        assert f'data-label="{node.label}"' in page
    assert "otrain ×3" in page  # the three epochs grouped
    for colour in COLOURS.values():
        assert colour in page
    assert "mlp-a" in page and "dlprov:loss" in page


def test_html_escapes_text() -> None:
    from prov.model import ProvDocument
    doc = ProvDocument()
    doc.add_namespace("dlprov", "DLProv")
    doc.entity("dlprov:e", {"dlprov:ds_tag": "<script>alert(1)</script>"})
    page = to_html(doc)
    assert "<script>alert" not in page
    assert page.count("<script") == 2


def test_svg_and_errors(filled, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["graph", "show", "--model", "mlp-b",
                                 "-o", str(tmp_path / "trace.svg")])
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "trace.svg").read_text()
    assert "<svg" in svg and "otrain ×2" in svg
    result = runner.invoke(cli, ["graph", "show", "--model", "mlp-b", "-o", "x.txt"])
    assert result.exit_code != 0 and "FILE.html" in result.output
    result = runner.invoke(cli, ["graph", "show", "--model", "mlp-b", "--run", "exp-mlp-b",
                                 "-o", "x.html"])
    assert result.exit_code == 1 and "give one of" in result.output
