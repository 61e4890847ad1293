"""How long a ``dlprov`` command takes to answer on a small store, beside MLflow's CLI.

A store of N runs (each: a train task with its hyperparameters in ``itrain`` and one ``otrain``
element per epoch, a test task with ``otest``) is made in a temporary folder; then each command
runs as a fresh process, the way a user runs it, ``--repeats`` times after one warm-up run,
and its best and median wall times are printed:

- ``dlprov runs``, ``dlprov sql "SELECT … FROM otrain"``, ``dlprov query q1``;
- where a Python with MLflow is found (``--mlflow-python``, else ``benchmarks/.venv-peers``, else
  this one), ``mlflow runs list`` and ``mlflow experiments search`` on an MLflow SQLite store of
  the same N runs, and the ratio of each dlprov command's median to ``mlflow runs list``'s.

Target: every dlprov command under 300 ms (median). A report, not a test: it exits 0 whether
the target is met or not. On 2 busy cores the figures vary; compare figures of one run.

    python benchmarks/cli_startup.py                 # 20 runs, 7 repeats
    python benchmarks/cli_startup.py --runs 100 --repeats 11 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 300
ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 5

MLFLOW_FILL = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("bench")
for i in range(int(sys.argv[2])):
    with mlflow.start_run(run_name=f"run-{i}"):
        mlflow.log_params({"optimizer_name": "adam", "learning_rate": 0.001 * (i + 1)})
        for epoch in range(int(sys.argv[3])):
            mlflow.log_metrics({"loss": 1.0 / (epoch + 1), "accuracy": epoch / 10}, step=epoch)
        mlflow.log_metrics({"test_loss": 0.5, "test_accuracy": 0.9})
"""


def fill_dlprov(path: Path, runs: int) -> None:
    """``runs`` executions of dataflow ``bench`` in the SQLite store at ``path``."""
    import dlprov

    for i in range(runs):
        with dlprov.run("bench", store=str(path), exec_tag=f"bench-{i}") as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=0.001 * (i + 1))
                for epoch in range(EPOCHS):
                    train.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1),
                                 accuracy=epoch / 10)
            with run.task("test", depends_on=train) as test:
                test.output("otest", loss=0.5, accuracy=0.9)


def dlprov_command() -> list[str]:
    """The ``dlprov`` console script beside this Python, or ``python -m dlprov``."""
    script = Path(sys.executable).with_name("dlprov")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dlprov"]


def mlflow_python(given: str | None) -> str | None:
    """A Python that imports mlflow: ``given``, the peers' venv, or this one; else None."""
    candidates = [given] if given else [str(ROOT / "benchmarks/.venv-peers/bin/python"),
                                        sys.executable]
    for python in candidates:
        if python and Path(python).exists() and subprocess.run(
                [python, "-c", "import mlflow"], capture_output=True).returncode == 0:
            return python
    return None


def timed(command: list[str], repeats: int, env: dict[str, str]) -> list[float]:
    """Wall times (ms) of ``repeats`` runs of ``command``, after one warm-up run."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): "
                             f"{done.stderr.strip()[-500:]}")
        if i:
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs in each store (20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per command (7)")
    parser.add_argument("--mlflow-python", metavar="PYTHON",
                        help="a Python with mlflow (default: benchmarks/.venv-peers, this one)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("DLPROV_STORE", "COLUMNS")}
    results: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="dlprov-bench-") as tmp:
        store = Path(tmp) / "dlprov.db"
        fill_dlprov(store, args.runs)
        dlprov = dlprov_command() + ["--store", str(store)]
        for name, command in (
                ("dlprov runs", ["runs"]),
                ("dlprov sql", ["sql", "SELECT train_task_id, epoch, loss FROM otrain"]),
                ("dlprov query q1", ["query", "q1", "--learning-rate", "0.001"])):
            results.append((name, timed(dlprov + command, args.repeats, env)))
        python = mlflow_python(args.mlflow_python)
        if python:
            uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            subprocess.run([python, "-c", MLFLOW_FILL, uri, str(args.runs), str(EPOCHS)],
                           check=True, capture_output=True, cwd=tmp)
            mlflow = [str(Path(python).with_name("mlflow"))]
            if not Path(mlflow[0]).exists():
                mlflow = [python, "-m", "mlflow"]
            found = subprocess.run(mlflow + ["experiments", "search"], capture_output=True,
                                   text=True, env={**env, "MLFLOW_TRACKING_URI": uri}, cwd=tmp)
            experiment = next((line.split()[0] for line in found.stdout.splitlines()
                               if line.split()[1:2] == ["bench"]), "1")
            for name, command in (
                    ("mlflow runs list", ["runs", "list", "--experiment-id", experiment]),
                    ("mlflow experiments search", ["experiments", "search"])):
                results.append((name, timed(mlflow + command, args.repeats,
                                            {**env, "MLFLOW_TRACKING_URI": uri})))
    report(results, args, python)


def report(results: list[tuple[str, list[float]]], args: argparse.Namespace,
           python: str | None) -> None:
    medians = {name: statistics.median(times) for name, times in results}
    baseline = medians.get("mlflow runs list")
    print(f"CLI startup on a store of {args.runs} runs ({os.cpu_count()} cores), "
          f"{args.repeats} runs each after a warm-up; target: dlprov < {TARGET_MS} ms")
    print(f"{'command':28} {'best ms':>8} {'median ms':>10} {'vs mlflow runs list':>20}  result")
    figures = []
    for name, times in results:
        median = medians[name]
        ratio = f"{median / baseline:.2f}x" if baseline else "-"
        verdict = ("PASS" if median < TARGET_MS else "FAIL") if name.startswith("dlprov") \
            else "info"
        print(f"{name:28} {min(times):8.0f} {median:10.0f} {ratio:>20}  {verdict}")
        figures.append({"figure": f"{name}, {args.runs}-run store, median", "value":
                        round(median), "unit": "ms", "result": verdict,
                        "target": TARGET_MS if verdict != "info" else None})
    if not python:
        print("mlflow was not found (no benchmarks/.venv-peers with it, not importable here): "
              "dlprov's figures only; `make bench-peers` builds that venv")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures}, indent=2))


if __name__ == "__main__":
    main()
