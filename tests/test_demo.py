"""The main job end to end on the embedded store, checked against the raw rows it stored."""
from __future__ import annotations

from click.testing import CliRunner

from dlprov.cli.main import cli


def test_demo_captures_every_candidate_and_answers_listing_4(store_path, sql, tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--candidates", "4", "--epochs", "2",
                                      "--no-progress", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    runs = sql("SELECT status FROM dataflow_execution")
    assert runs == [("finished",)] * 4
    assert sql("SELECT count(*) FROM digits__otrain") == [(8,)]
    assert sql("SELECT count(*) FROM digits__otrainedmodel WHERE test_task_id IS NOT NULL") == [(4,)]
    # Listing 4's answer, recomputed here from the stored rows
    [(best_task, best_lr)] = sql("""
        SELECT t.train_task_id, i.learning_rate FROM digits__itrain i JOIN (
          SELECT train_task_id, avg(accuracy) a FROM digits__otrain GROUP BY train_task_id
          ORDER BY a DESC LIMIT 1) t ON t.train_task_id = i.train_task_id""")
    listing = result.output.split("Listing 4")[1].split("\nQ1 ")[0]  # the Q1–Q12 answers follow
    row = [line for line in listing.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert len(row) == 1
    assert int(row[0].split()[1]) == best_task
    assert float(row[0].split()[3]) == best_lr
    # Q1–Q12 are answered; Q7–Q12 about the model with the highest test accuracy (Q4's)
    for question in range(1, 13):
        assert f"\nQ{question} " in result.output
    [(best_model_id, best_name)] = sql("""
        SELECT m.model_id, m.name FROM trained_model m
        JOIN digits__otrainedmodel o ON o.model_id = m.model_id
        JOIN digits__otest t ON t.test_task_id = o.test_task_id
        ORDER BY t.accuracy DESC LIMIT 1""")
    for question in range(7, 13):
        header = result.output.split(f"\nQ{question} ")[1].splitlines()[0]
        assert f"(model {best_name}, {best_model_id}," in header
    # every model file exists where the provenance says
    assert sql("SELECT count(*) FROM trained_model WHERE size_bytes > 0") == [(4,)]
    for (path,) in sql("SELECT model_dir FROM digits__otrainedmodel"):
        assert (tmp_path / "out").as_posix() in path
        assert __import__("pathlib").Path(path).stat().st_size > 0
