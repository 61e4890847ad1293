"""The main job end to end on the embedded store, checked against the raw rows it stored."""
from __future__ import annotations

from click.testing import CliRunner

from dlprov.cli.main import cli
from tests.demo_output import assert_listing_4_printed_as_stored


def test_demo_captures_every_candidate_and_answers_listing_4(store_path, sql, tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--candidates", "4", "--epochs", "2",
                                      "--no-progress", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    runs = sql("SELECT status FROM dataflow_execution")
    assert runs == [("finished",)] * 4
    assert sql("SELECT count(*) FROM digits__otrain") == [(8,)]
    assert sql("SELECT count(*) FROM digits__otrainedmodel WHERE test_task_id IS NOT NULL") == [(4,)]
    # Listing 4's answer, recomputed here from the stored rows
    assert_listing_4_printed_as_stored(result.output, sql)
    # Q1–Q12 are answered; Q7–Q12 about the model with the highest test accuracy (Q4's)
    for question in range(1, 13):
        assert f"\nQ{question} " in result.output
    [(best_model_id, best_name)] = sql("""
        SELECT m.model_id, m.name FROM trained_model m
        JOIN digits__otrainedmodel o ON o.model_id = m.model_id
        JOIN digits__otest t ON t.test_task_id = o.test_task_id
        ORDER BY t.accuracy DESC LIMIT 1""")
    about_model = result.output.split("\nChosen model (Q4's): ")[1]
    assert about_model.startswith(f"{best_name}\n  id {best_model_id};")
    for question in range(7, 13):
        assert f"\nQ{question} " in about_model
    assert len(result.output.splitlines()) <= 80  # a short story, not every table
    # every model file exists where the provenance says
    assert sql("SELECT count(*) FROM trained_model WHERE size_bytes > 0") == [(4,)]
    for (path,) in sql("SELECT model_dir FROM digits__otrainedmodel"):
        assert (tmp_path / "out").as_posix() in path
        assert __import__("pathlib").Path(path).stat().st_size > 0
