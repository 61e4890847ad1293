"""The story ``dlprov demo`` prints: short, fitting the terminal, every answer present, and
the commands it suggests work on the store it made."""
from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

from dlprov.cli.main import cli
from dlprov.demo.workflow import run_demo
from dlprov.store.store import Store
from tests.demo_output import assert_listing_4_printed_as_stored

WIDTH = 72


@pytest.fixture
def story(store_path, tmp_path, monkeypatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    lines: list[str] = []
    run_demo(store=Store(store_path), candidates=2, epochs=1, output_dir=tmp_path / "out",
             progress=False, echo=lambda text: lines.extend(text.splitlines()))
    return lines


def test_the_story_is_short_fits_the_terminal_and_answers_everything(story, sql):
    text = "\n".join(story)
    assert len(story) <= 80, text
    paths = [line for line in story if line.startswith(("  dlprov ", "Store: "))]
    assert [line for line in story if len(line) > WIDTH and line not in paths] == []
    assert story[1].startswith("Recorded 2 executions of dataflow 'digits' (")
    assert_listing_4_printed_as_stored(text, sql)
    for question in range(1, 13):
        [answer] = [line for line in story if line.startswith(f"Q{question} ")]
        assert "no answer" not in answer and len(answer) > 25, answer
    [(best_name,)] = sql("""
        SELECT m.name FROM trained_model m
        JOIN digits__otrainedmodel o ON o.model_id = m.model_id
        JOIN digits__otest t ON t.test_task_id = o.test_task_id
        ORDER BY t.accuracy DESC LIMIT 1""")
    assert f"Chosen model (Q4's): {best_name}\n  id " in text
    assert [line for line in story if line.startswith("Q4 ")][0].startswith(
        f"Q4 best test accuracy: {best_name}: test_accuracy=")


def test_the_suggested_commands_run_on_the_store(story, tmp_path):
    commands = [shlex.split(line)[1:] for line in story if line.startswith("  dlprov ")]
    assert len(commands) >= 3
    runner = CliRunner()
    assert commands[-1][-1] == "ui"  # serves until stopped: its options are checked instead
    commands[-1].append("--help")
    for command in commands:
        result = runner.invoke(cli, command)
        assert result.exit_code == 0, (command, result.output)
        assert result.output.strip(), command
