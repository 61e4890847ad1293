"""The MLflow bridge: MLflow's runs brought into dlprov, and MLflow code captured by dlprov.

* :func:`~dlprov.integrations.mlflow.importer.import_runs` (``dlprov mlflow import``) reads an
  MLflow tracking store through ``MlflowClient`` and stores each run as a dlprov execution.
* :mod:`~dlprov.integrations.mlflow.plugin` is MLflow's tracking-store plugin for the URI
  scheme ``dlprov`` (``MLFLOW_TRACKING_URI=dlprov:///path/dlprov.db``).

MLflow is imported only where it is used: dlprov imports without it.
"""
