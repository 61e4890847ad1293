"""Example 1: PyTorch MLP candidates with preprocessing variants, chosen among with Q1-Q5."""
from __future__ import annotations


def test_mlp_example_answers_development_questions(example, store_path, sql, tmp_path):
    module = example("pytorch_mlp_digits")
    answers = module.main(["--epochs", "2", "--samples", "600",
                           "--output-dir", str(tmp_path / "out")])
    assert sql("SELECT count(*), min(status) FROM dataflow_execution") == [(4, "finished")]
    # Q1: exactly the candidates trained with lr 0.001 (three of the four)
    expected = {name for (name,) in sql(
        "SELECT m.model_name FROM mnist__otrainedmodel m JOIN mnist__itrain i "
        "ON i.train_task_id = m.train_task_id WHERE i.learning_rate = 0.001")}
    assert {row["model_name"] for row in answers["q1"].records()} == expected
    assert len(expected) == 3
    # Q3 and Q4 name the best by average training accuracy and by test accuracy
    [(by_train,)] = sql("SELECT train_task_id FROM mnist__otrain GROUP BY train_task_id "
                        "ORDER BY avg(accuracy) DESC LIMIT 1")
    assert [r["train_task_id"] for r in answers["q3"].records()] == [by_train]
    [(by_test,)] = sql("SELECT m.train_task_id FROM mnist__otrainedmodel m JOIN mnist__otest t "
                       "ON t.test_task_id = m.test_task_id ORDER BY t.accuracy DESC LIMIT 1")
    assert answers["q4"].records()[0]["train_task_id"] == by_test
    # Q5 reaches back to the raw input of that run
    q5 = answers["q5"].records()
    assert {r["train_task_id"] for r in q5} == {by_test}
    assert "iinputdataset" in {r["set_tag"] for r in q5}
