"""Three small MLflow runs logged with the real MLflow client (and one child run), as the
MLflow tests import them."""
from __future__ import annotations

import os
from pathlib import Path

LEARNING_RATES = (0.1, 0.01, 0.001)
TEST_ACCURACY = (0.80, 0.95, 0.90)  # the second run is the best


def log_three_runs(tracking_uri: str, workdir: Path, *, duplicate_points: bool = False,
                   experiment: str = "digits") -> list[str]:
    """Log three ended runs of ``experiment`` into ``tracking_uri`` (parameters, metric
    histories of three steps, a test metric, a dataset input, an sklearn model) and a child of
    the first; returns the three run ids. Artifacts go to ``workdir``. ``duplicate_points``:
    log each point twice."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:  # artifacts in workdir, not ./mlruns
        mlflow.create_experiment(experiment, artifact_location=(workdir / "artifacts").as_uri())
    mlflow.set_experiment(experiment)
    data = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    source = workdir / "train.csv"
    data.to_csv(source, index=False)
    ids = []
    try:
        for i, (lr, accuracy) in enumerate(zip(LEARNING_RATES, TEST_ACCURACY)):
            with mlflow.start_run(run_name=f"mlp-{i}") as run:
                mlflow.log_params({"learning_rate": lr, "optimizer": "adam", "batch_size": 32})
                mlflow.set_tags({"team": "vision", "mlflow.source.git.commit": f"abc{i}"})
                for step in range(3):
                    for _ in range(2 if duplicate_points else 1):
                        mlflow.log_metric("loss", 1 / (step + 1) + lr, step=step,
                                          timestamp=1_700_000_000_000 + step * 1000)
                    mlflow.log_metric("val/accuracy", 0.5 + step / 10, step=step)
                mlflow.log_metric("test_accuracy", accuracy)
                mlflow.log_input(mlflow.data.from_pandas(data, source=str(source),
                                                         name="digits-train"),
                                 context="training")
                model = LogisticRegression().fit(np.array([[0], [1], [2], [3]]), [0, 0, 1, 1])
                mlflow.sklearn.log_model(model, name="model",
                                         serialization_format="cloudpickle")
                if i == 0:
                    with mlflow.start_run(run_name="fold-1", nested=True):
                        mlflow.log_param("fold", 1)
                        mlflow.log_metric("loss", 0.3)
                ids.append(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    return ids
