"""Synthetic provenance stores for the benchmarks: N executions × E epochs of the demo's dataflow.

Each execution is the demo's workflow (``src/dlprov/demo/workflow.py``) captured with the
Pythonic API and written by the real recorder and :class:`StoreWriter`, so the rows are exactly
what capture stores: LoadData -> NormalizeData -> OneHotEncoding -> SplitData -> Train -> Test,
with the hyperparameters (``itrain``), one ``otrain`` element per epoch (loss, accuracy,
elapsed_time, ...), a trained model (``task.model``), the test measures (``otest``) and the
data-preparation lineage (files of each step, task dependencies and uses). Hyperparameters and
metrics vary from one execution to the next (seeded), so that every question has a real answer.

Built SQLite stores are cached under ``benchmarks/.cache/`` keyed by N×E and a hash of the
schema and of this file: a rerun opens the cached file at once.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

CACHE = Path(__file__).resolve().parent / ".cache"
DATAFLOW = "synthetic"

OPTIMIZERS = ("adam", "sgd", "rmsprop")
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
BATCH_SIZES = (32, 64, 128, 256)
NORMALIZATIONS = ("minmax", "standard")


@dataclass(frozen=True)
class SyntheticStore:
    """A built store: its URL, dataflow, size, and how long building it took (0 if cached)."""

    url: str
    dataflow: str
    executions: int
    epochs: int
    build_seconds: float
    cached: bool


def schema_hash() -> str:
    """A short hash of the fixed tables' DDL and of this builder: a change to either is a new
    cache key, so a stale store is never measured."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from dlprov.store import schema as s

    from dlprov.store import specs

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(specs.__file__).read_bytes())  # how set tables and their indexes are made
    for table in s.metadata.sorted_tables:
        digest.update(str(CreateTable(table).compile(dialect=sqlite.dialect())).encode())
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            digest.update(str(CreateIndex(index).compile(dialect=sqlite.dialect())).encode())
    return digest.hexdigest()[:12]


def build(executions: int, epochs: int, *, store: str | None = None, seed: int = 7,
          echo=print) -> SyntheticStore:
    """A store with ``executions`` × ``epochs`` of the synthetic dataflow: the cached SQLite file
    if there is one, else built now (into a temporary file renamed when complete). With
    ``store`` (a PostgreSQL URL), the dataflow ``synthetic_<N>x<E>`` there, built if absent."""
    if executions < 1 or epochs < 1:
        raise ValueError(f"executions and epochs must be at least 1, got {executions}×{epochs}")
    if store is not None:
        return _build_in(store, executions, epochs, seed, echo)
    path = CACHE / f"synthetic-{executions}x{epochs}-{schema_hash()}.db"
    built: list[SyntheticStore] = []
    if not build_once(path, lambda url: built.append(
            _build_in(url, executions, epochs, seed, echo, DATAFLOW))):
        return SyntheticStore(f"sqlite:///{path}", DATAFLOW, executions, epochs, 0.0, True)
    return SyntheticStore(f"sqlite:///{path}", DATAFLOW, executions, epochs,
                          built[0].build_seconds, False)


def build_once(path: Path, make: Callable[[str], object]) -> bool:
    """Make the cached SQLite store ``path`` with ``make(url)`` unless it exists; whether it
    was made now. ``make`` writes into a file of this process's own, renamed to ``path`` only
    when complete (its recorders closed, its WAL checkpointed), so an interrupted build is
    never taken for a store."""
    from dlprov.recorder.recorder import close_all
    from dlprov.store.store import Store

    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        make(f"sqlite:///{partial}")
        close_all(timeout=3600)
        Store(str(partial)).dispose()  # its last connection closed: the WAL is checkpointed
        for suffix in ("-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        partial.rename(path)
    finally:
        for leftover in path.parent.glob(f"{partial.name}*"):
            if not leftover.is_dir():  # the spool folder goes below
                leftover.unlink(missing_ok=True)
        shutil.rmtree(partial.with_suffix(".partial.spool"), ignore_errors=True)
    return True


def _build_in(url: str, executions: int, epochs: int, seed: int, echo,
              dataflow: str | None = None) -> SyntheticStore:
    from dlprov.recorder.recorder import close_all
    from dlprov.store.store import Store

    dataflow = dataflow or f"{DATAFLOW}_{executions}x{epochs}"
    target = Store(url)
    if target.backend == "postgresql" and target.load_spec(dataflow) is not None:
        analyze(target)
        return SyntheticStore(url, dataflow, executions, epochs, 0.0, True)
    environment = _environment()
    began = time.perf_counter()
    rng = random.Random(seed)
    workspace = Path(url.split("///", 1)[-1]).parent if url.startswith("sqlite") else CACHE
    before = os.environ.get("DLPROV_CAPTURE_ENVIRONMENT")
    os.environ["DLPROV_CAPTURE_ENVIRONMENT"] = "0"  # one probe, above, serves every execution
    try:
        for i in range(executions):
            capture_execution(target, dataflow, i, epochs, rng, environment, workspace)
            if echo and executions >= 100 and (i + 1) % max(1, executions // 10) == 0:
                echo(f"  built {i + 1}/{executions} executions "
                     f"({time.perf_counter() - began:.0f} s)", flush=True)
    finally:  # the caller's own runs (a test's, say) probe their environment as before
        if before is None:
            os.environ.pop("DLPROV_CAPTURE_ENVIRONMENT", None)
        else:
            os.environ["DLPROV_CAPTURE_ENVIRONMENT"] = before
    close_all(timeout=3600)  # every record written before the clock stops
    seconds = time.perf_counter() - began
    if target.backend == "postgresql":
        analyze(target)
    target.dispose()
    if echo:
        echo(f"built {executions}×{epochs} store in {seconds:.1f} s", flush=True)
    return SyntheticStore(url, dataflow, executions, epochs, seconds, False)


def analyze(store) -> None:
    """Gather the planner's statistics of a PostgreSQL store: the dataflow's set tables and
    the core tables. What autovacuum does after a bulk load on a default server; a server
    with autovacuum off (as here) would otherwise plan every query without them (Q2 at
    10,000 executions: 2.9 s instead of ~0.3 s)."""
    with store.engine().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ANALYZE")  # every table this user may analyze: seconds at 1M rows


def _environment() -> dict:
    from dlprov.capture.environment import collect_environment

    return collect_environment(git=False, gpus=False)


def capture_execution(store, dataflow: str, i: int, epochs: int, rng: random.Random,
                      environment: dict, workspace: Path) -> str:
    """Capture execution ``i`` with the Pythonic API; return its exec tag. Nothing waits for
    the writer: the recorder batches many executions into each transaction."""
    import dlprov
    from dlprov.model import records as r

    optimizer = OPTIMIZERS[i % len(OPTIMIZERS)]
    learning_rate = LEARNING_RATES[(i // len(OPTIMIZERS)) % len(LEARNING_RATES)]
    batch_size = BATCH_SIZES[(i // 7) % len(BATCH_SIZES)]
    normalization = NORMALIZATIONS[i % len(NORMALIZATIONS)]
    layers, hidden = 1 + i % 3, (32, 64, 128)[(i // 3) % 3]
    skill = rng.uniform(0.6, 0.99)  # the accuracy this candidate approaches
    speed = rng.uniform(2.0, 20.0)
    name = f"mlp-{optimizer}-{normalization}-{i:05d}"
    folder = workspace / "runs" / name
    # no exec_tag: giving one costs a lookup per run (is it taken?)
    run = dlprov.run(dataflow, store=store, user=f"user{i % 5}", email=f"user{i % 5}@example.org",
                     organization="dlprov-bench", capture_environment=False)
    run.put((r.ENVIRONMENT, run.key, environment))
    with run.task("loaddata") as load:
        load.input("iinputdataset", dataset_name="digits",
                   dataset_source="sklearn.datasets.load_digits")
        load.output("oloaddata", data=folder / "raw.npz", rows=1797.0)
    with run.task("normalizedata", depends_on=load) as normalize:
        normalize.input("inormalizedata", method=normalization)
        normalize.output("onormalizedata", data=folder / "normalized.npz", rows=1797.0)
    with run.task("onehotencoding", depends_on=normalize) as encode:
        encode.output("oonehotdataset", data=folder / "onehot.npz", rows=1797.0)
    with run.task("splitdata", depends_on=encode) as split:
        split.input("isplitconfig", train_size=0.6, val_size=0.2, test_size=0.2, seed=7)
        for part, rows in (("train", 1078.0), ("val", 359.0), ("test", 360.0)):
            split.output(f"o{part}set", data=folder / f"{part}.npz", rows=rows)
    with run.task("train", depends_on=split, uses=["otrainset", "ovalset"]) as train:
        train.input("itrain", optimizer_name=optimizer, learning_rate=learning_rate,
                    num_epochs=float(epochs), batch_size=float(batch_size),
                    num_layers=float(layers), hidden_units=float(hidden))
        clock = datetime(2024, 1, 1) + timedelta(minutes=i)
        for epoch in range(epochs):
            accuracy = skill * (1 - math.exp(-(epoch + 1) / speed)) + rng.uniform(-0.01, 0.01)
            elapsed = rng.uniform(0.05, 0.3) * batch_size / 64
            clock += timedelta(seconds=elapsed)
            train.output("otrain", epoch=float(epoch), loss=max(0.0, 1.0 - accuracy) * 2.3,
                         accuracy=accuracy, val_loss=max(0.0, 1.05 - accuracy) * 2.3,
                         val_accuracy=accuracy - 0.02, elapsed_time=elapsed, timestamp=clock)
        train.model(folder / "model.pt", name=name, framework="torch")
    with run.task("test", depends_on=[split, train], uses=["otestset", "otrainedmodel"]) as test:
        test_accuracy = skill - rng.uniform(0.0, 0.05)
        test.output("otest", loss=(1.0 - test_accuracy) * 2.3, accuracy=test_accuracy)
    run.end(wait=False)
    return run.exec_tag
