"""``dlprov demo --parsl``: the demo's candidates trained in parallel by Parsl, in one execution.

The same dataflow ``digits`` and the same sets as the sequential demo (:mod:`.workflow`), but
all candidates are tasks of one execution: this process runs each candidate's preprocessing
chain (LoadData ... SplitData) and submits its Train and Test as Parsl apps
(:func:`dlprov.integrations.parsl.provenance_app`) to a HighThroughputExecutor whose ``workers``
worker processes run on this machine, reached over 127.0.0.1 only. Train depends on its
SplitData task and uses ``otrainset`` and ``ovalset``; Test depends on SplitData (``otestset``)
and, through Train's future, on Train (``otrainedmodel``). Parsl's run directory is made in the
output folder.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import dlprov
from dlprov.demo import workflow
from dlprov.demo.training import Candidate, build_mlp
from dlprov.integrations.parsl import current_task, provenance_app, require_parsl
from dlprov.store.store import Store

TRAIN_USES = ["otrainset", "ovalset"]
TEST_USES = ["otestset", "otrainedmodel"]


def train_candidate(candidate: Candidate, epochs: int, train_set, val_set, workdir: str) -> str:
    """The Train app (runs in a worker): hyperparameters, metrics per epoch and the saved model
    recorded in its task; returns the model file's path."""
    import torch

    from dlprov.capture.parameters import record_parameters

    torch.set_num_threads(1)  # the workers share the machine's cores
    task = current_task()
    # the hyperparameters as dlprov.prepare(..., params=...) records them in the sequential demo
    record_parameters(task.run, task, "itrain", workflow.train_params(candidate, epochs))
    workflow.fit(task, candidate, train_set, val_set, epochs, Path(workdir))
    return str(Path(workdir) / workflow.MODEL_FILE)


def evaluate_candidate(candidate: Candidate, model_path: str, test_set) -> float:
    """The Test app (runs in a worker): the saved model's loss and accuracy on the test part;
    returns the accuracy."""
    import torch

    from dlprov.demo.training import evaluate

    torch.set_num_threads(1)
    model = build_mlp(test_set[0].shape[1], candidate.hidden_units, candidate.num_layers)
    model.load_state_dict(torch.load(model_path))
    workflow.record_test(current_task(), model, test_set)
    return evaluate(model, *test_set)[1]



@contextmanager
def local_htex(workers: int, run_dir: Path) -> Iterator[None]:
    """A HighThroughputExecutor with ``workers`` worker processes on this machine, loaded as
    Parsl's configuration for the block, its run directory ``run_dir``."""
    parsl = require_parsl()
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    # Parsl starts its interchange and worker pool by script name, from this Python's bin.
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    cores = os.cpu_count() or 1
    config = Config(executors=[HighThroughputExecutor(
        label="dlprov_demo", address="127.0.0.1", max_workers_per_node=workers,
        # never fewer workers than asked for, whatever the core count
        cores_per_worker=min(1.0, cores / workers),
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))],
        run_dir=str(run_dir))
    try:
        dfk = parsl.load(config)
        try:
            yield
        finally:
            dfk.cleanup()
            parsl.clear()
    finally:
        os.environ["PATH"] = path


def run_parallel_demo(*, store: Store | None = None, candidates: int = 4, epochs: int = 8,
                      workers: int = 2, output_dir: str | Path = "demo-output",
                      progress: bool = True, echo: Callable[[str], None] = print) -> str:
    """Train ``candidates`` models on ``workers`` Parsl workers as tasks of one execution, then
    print the run, Listing 4's answer and the answers to Q1–Q12; returns the exec tag."""
    from tqdm import tqdm

    require_parsl()  # before anything is recorded
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    store = store or Store()
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    chosen = workflow.candidates(candidates)
    with local_htex(workers, output_dir / "parsl-runinfo"), \
            dlprov.run(workflow.DATAFLOW, store=store) as run, \
            dlprov.use_run(run):
        train_app = provenance_app(run, "train", uses=TRAIN_USES)(train_candidate)
        test_app = provenance_app(run, "test", uses=TEST_USES)(evaluate_candidate)
        tests = []
        for candidate in chosen:  # preprocessing here, while earlier candidates train there
            workdir = output_dir / candidate.name
            (train_set, val_set, test_set), split = workflow.preprocess(candidate, workdir)
            trained = train_app(candidate, epochs, train_set, val_set, str(workdir),
                                depends_on=[split])
            tests.append(test_app(candidate, trained, test_set, depends_on=[split]))
        with tqdm(total=len(tests), desc=f"training on {workers} Parsl workers",
                  unit="model", disable=not progress) as bar:
            for future in as_completed(tests):
                future.result()  # a failed app fails the run, with the app's error
                bar.update(1)
    workflow.report(store, chosen, 1, echo)
    return run.exec_tag
