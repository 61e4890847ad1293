"""How MLflow's names and values become dlprov's: dataflow tags from experiment names, exec
tags from run names, tag keys, parameter values, timestamps, and the environment and agent an
MLflow run's system tags describe."""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Mapping

from dlprov.errors import DlprovError
from dlprov.model.names import check_name
from dlprov.model.tags import MAX_TAG_KEY, check_tag_value

#: Metric name prefixes of a test or evaluation context: such metrics go to ``otest``.
TEST_PREFIXES = ("test_", "test/", "eval_", "eval/")

#: MLflow's system tags that describe where a run ran (``environment`` columns).
ENVIRONMENT_TAGS = {"mlflow.source.git.commit": "git_commit",
                    "mlflow.source.git.repoURL": "git_repository",
                    "mlflow.source.name": "command_line"}
#: Tags kept elsewhere (the note is the execution's notes) or too bulky for a tag.
SKIPPED_TAGS = {"mlflow.note.content", "mlflow.log-model.history"}

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_KEY = re.compile(r"[^A-Za-z0-9_-]+")


def dataflow_tag(experiment_name: str) -> str:
    """The dataflow an experiment becomes: its name where it is a valid dataflow tag, else the
    name with other characters as ``_`` (``/Users/me/exp 1`` → ``Users_me_exp_1``)."""
    try:
        check_name("dataflow", experiment_name)
        return experiment_name
    except DlprovError:
        cleaned = _NOT_PLAIN.sub("_", experiment_name).strip("_.-")[:50] or "mlflow"
        if not cleaned[0].isalpha():
            cleaned = ("mlflow_" + cleaned)[:50]
        return cleaned


def exec_tag(run_name: str | None, run_id: str) -> str:
    """The execution an MLflow run becomes: its name and the start of its id (names repeat)."""
    return f"{(run_name or 'run')[:150]}-{run_id[:8]}"


def tag_key(key: str) -> str:
    """An MLflow tag key as a dlprov tag key (``mlflow.source.type`` → ``mlflow_source_type``)."""
    cleaned = _NOT_KEY.sub("_", key).strip("_-") or "tag"
    if not cleaned[0].isalpha():
        cleaned = "t_" + cleaned
    return cleaned[:MAX_TAG_KEY]


def tags_of(tags: Mapping[str, str], extra: Mapping[str, str],
            warnings: list[str]) -> dict[str, str]:
    """The execution's tags: the run's (see :data:`SKIPPED_TAGS`) and ``extra`` (MLflow ids);
    a tag dlprov cannot hold (a value over 1 KiB) is left out with a warning."""
    found: dict[str, str] = {}
    for key, value in [*tags.items(), *extra.items()]:
        if key in SKIPPED_TAGS:
            continue
        name = tag_key(key)
        try:
            found[name] = check_tag_value(name, value)
        except DlprovError as exc:
            warnings.append(f"tag {key!r} left out: {exc}")
    return found


def param_value(text: str | None) -> Any:
    """An MLflow parameter (always text) as dlprov stores it: numbers as numbers; None for
    an empty value or ``None``."""
    if text is None or text.strip() in ("", "None", "null"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text  # NaN or inf: kept as written, not refused
    return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", text.strip()) \
        else number


def timestamp(milliseconds: int | None) -> datetime | None:
    """MLflow's milliseconds since the epoch as local time (as dlprov's timestamps are)."""
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000)


def environment_of(tags: Mapping[str, str]) -> dict[str, Any]:
    """The ``environment`` fields an MLflow run's system tags give."""
    found = {column: tags[key] for key, column in ENVIRONMENT_TAGS.items() if tags.get(key)}
    if "git_commit" in found:
        found["git_commit"] = found["git_commit"][:64]
    return found


def is_test_metric(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether metric ``name`` is of a test or evaluation context."""
    lowered = name.lower()
    return any(lowered.startswith(p.lower()) for p in prefixes)


def dataset_values(dataset_input: Any) -> dict[str, Any]:
    """One element of ``itraindataset`` for an MLflow dataset input: name, digest, source,
    schema's columns, record count, context."""
    dataset = dataset_input.dataset
    context = next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"),
                   None)
    source = dataset.source
    try:
        found = json.loads(source) if source else None
        if isinstance(found, dict):
            source = found.get("uri") or found.get("url") or found.get("path") or source
    except ValueError:
        pass
    columns = n_records = None
    try:
        schema = json.loads(dataset.schema) if dataset.schema else None
        specs = (schema or {}).get("mlflow_colspec") or (schema or {}).get("mlflow_tensorspec")
        if isinstance(specs, list):
            columns = [c.get("name") for c in specs if isinstance(c, dict)]
    except (ValueError, AttributeError):
        pass
    try:
        profile = json.loads(dataset.profile) if dataset.profile else None
        n_records = (profile or {}).get("num_rows")
    except (ValueError, AttributeError):
        pass
    return {"name": dataset.name, "kind": f"mlflow:{dataset.source_type}",
            "digest": dataset.digest, "dataset_dir": str(source) if source else None,
            "columns": columns, "n_records": n_records, "context": context}
