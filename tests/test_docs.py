"""The README's and docs' code blocks are executed: documentation that runs."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)
DLPROV = [sys.executable, "-m", "dlprov"]


def run_page(page: Path) -> None:
    """Python blocks share one namespace, in order; bash lines starting with `dlprov` run."""
    namespace: dict = {"__name__": "__docs__"}
    for language, code in BLOCK.findall(page.read_text()):
        if language == "python":
            exec(compile(code, str(page), "exec"), namespace)
            continue
        for line in code.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("dlprov "):
                result = subprocess.run(DLPROV + shlex.split(command)[1:], capture_output=True,
                                        text=True, timeout=120)
                assert result.returncode == 0, f"{command}\n{result.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_runs(page: Path, store_path: Path) -> None:
    run_page(page)
    assert store_path.exists()
