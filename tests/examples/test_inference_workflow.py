"""Example 3: an inference workflow whose data model the user extends."""
from __future__ import annotations


def test_inference_example_records_its_own_transformations_and_answers(example, store_path,
                                                                      sql, tmp_path):
    module = example("inference_workflow")
    best = module.main(["--samples", "1", "--output-dir", str(tmp_path / "out")])
    runs = sql("SELECT count(*), min(status), max(status) FROM dataflow_execution")
    assert runs == [(6, "finished", "finished")]  # 3 thresholds x 2 decoders
    transformations = {t for (t,) in sql("SELECT tag FROM data_transformation")}
    assert {"loaddata", "loadpretrainedmodel", "runcraft", "cropwordsfromimage", "runinference",
            "runcomparison"} <= transformations
    # the best inference, recomputed here from the raw tables
    [(top,)] = sql("SELECT max(inference_metric) FROM handwriting__oruncomparison")
    assert best and all(row["inference_metric"] == top for row in best)
    expected = set(sql("""
        SELECT c.threshold, d.decoder FROM handwriting__oruncomparison c
        JOIN task t ON t.id = c.runcomparison_task_id
        JOIN task d_task ON d_task.exec_id = t.exec_id
        JOIN handwriting__imodelinput d ON d.runinference_task_id = d_task.id
        WHERE c.inference_metric = ?""", top))
    assert {(row["threshold"], row["decoder"]) for row in best} == expected
    # the pretrained model is an entity the inference task used
    assert sql("SELECT count(*) FROM trained_model WHERE name = 'glyph-codebook'") == [(6,)]
    assert sql("""SELECT count(*) FROM task_usage u JOIN task t ON t.id = u.task_id
                  JOIN data_transformation dt ON dt.id = t.dt_id
                  WHERE dt.tag = 'runinference'""")[0][0] >= 6
