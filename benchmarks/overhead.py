"""What dlprov capture costs a training script, measured side by side in one run.

Two figures, each against a target:

1. the cost of one capture call, ``task.output("otrain", ...)`` with six numeric values, as
   the training thread pays it (checking and converting the values, then a queue append),
   over many calls timed in small chunks;
2. the wall time of a small PyTorch training loop (an MLP on scikit-learn's digits, CPU)
   with no capture, capture once per epoch and capture once per batch, as overhead over the
   loop without capture. The loop is timed as the user lives it: from before the first epoch
   to after ``run.end()`` returns, so the final flush is inside; the flush and the run's start
   are also shown on their own, with the CPU time the recorder's writer thread used. Beside
   it, what the training thread waited for during the loop (Linux: the scheduler's counters
   per thread), with and without capture: the recorder thread's Python work holds the GIL,
   and each wait for the GIL shows as a voluntary context switch and time off a CPU.

Variants are interleaved (baseline, per-epoch, per-batch, then the next round in rotated order)
and each captured run is compared with the baseline of its own round, so a machine that slows
down for a while slows all three. A report, not a test: it exits 0 whether targets are met or not.

    python benchmarks/overhead.py            # full run, 1 to 1.5 minutes on 2 cores
    python benchmarks/overhead.py --quick    # smoke run, under 30 seconds
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

try:
    import numpy as np
    import sklearn  # noqa: F401 - the demo's data come from it
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
except ImportError as missing:  # pragma: no cover - depends on the environment
    sys.exit(f"overhead.py needs torch, numpy and scikit-learn (pip install -e '.[demo]'): "
             f"{missing}")

import dlprov
from dlprov.demo.data import load_digits_arrays, normalize, split
from dlprov.demo.training import build_mlp
from dlprov.recorder.recorder import close_all  # stops writer threads between timed runs

CALL_TARGET_US = 1.0           # the capture call's median (issue 20; it was 5 us)
EPOCH_TARGET_PCT = 0.3         # per-epoch capture: wall overhead and capture CPU
BATCH_TARGET_PCT = 2.0         # per-batch capture: wall overhead
BATCH_CPU_TARGET_PCT = 0.75    # per-batch capture: capture CPU (issue 20)

BASELINE, PER_EPOCH, PER_BATCH = "no capture", "per-epoch", "per-batch"
VARIANTS = (BASELINE, PER_EPOCH, PER_BATCH)


# -- 1. one capture call -------------------------------------------------------------------------

@dataclass
class CallCost:
    per_call_us: list[float]    # one sample per chunk: the chunk's time over its calls
    harness_us: list[float]     # the same loop calling a function that does nothing
    flush_s: float              # run.end() after the last call: the writer catching up
    written: int                # rows found in the store afterwards


def _no_op(set_tag: str, /, **values: object) -> None:
    pass


def _time_calls(call: Callable[..., None], calls: int, chunk: int) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    for start in range(0, calls, chunk):
        began = clock()
        for i in range(start, start + chunk):
            call("otrain", epoch=i, loss=0.2503, accuracy=0.9121, val_loss=0.3114,
                 val_accuracy=0.8935, elapsed_time=1.5)
        samples.append((clock() - began) / chunk / 1000)
    return samples


def measure_call_cost(store: Path, args: argparse.Namespace) -> CallCost:
    """Time ``args.calls`` capture calls in chunks of ``args.chunk`` into the fresh SQLite
    file ``store``."""
    calls, chunk = args.calls, args.chunk
    harness = _time_calls(_no_op, min(calls, 50_000), chunk)
    with dlprov.run("bench_calls", store=store, **_run_options(args)) as run:
        with run.task("train") as task:
            # The first element of a set infers its attributes: a one-off, not timed.
            task.output("otrain", epoch=-1, loss=0.0, accuracy=0.0, val_loss=0.0,
                        val_accuracy=0.0, elapsed_time=0.0)
            gc.collect()
            samples = _time_calls(task.output, calls, chunk)
        began = time.perf_counter()
        run.end()
        flush_s = time.perf_counter() - began
    close_all()
    return CallCost(samples, harness, flush_s, _count_rows(store, "bench_calls__otrain"))


# -- 2. a training loop --------------------------------------------------------------------------

@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def load_data(seed: int) -> Digits:
    """The demo's digits, scaled to [0, 1], cut 80/20 into training and validation."""
    x, y = load_digits_arrays()
    (x_train, y_train), (x_val, y_val), _ = split(normalize(x, "minmax"), y, (0.8, 0.2, 0.0),
                                                  seed)
    return Digits(*(torch.from_numpy(a) for a in (x_train, y_train, x_val, y_val)))


MODELS = {
    "mlp": "MLP 64-128-128-10",
    "cnn": "CNN conv3x3(16)-conv3x3(32)-maxpool-linear(10) on the 8x8 images",
}


def build_model(kind: str) -> torch.nn.Module:
    """The demo's MLP, or a small convolutional network on the same digits seen as 8x8 images."""
    if kind == "mlp":
        return build_mlp(64, hidden_units=128, num_layers=3)
    if kind == "cnn":
        nn = torch.nn
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
    raise ValueError(f"unknown model {kind!r}: choose from {sorted(MODELS)}")


def train(data: Digits, epochs: int, batch_size: int, seed: int,
          task: dlprov.Task | None = None, per_batch: bool = False, model: str = "mlp") -> float:
    """The loop every variant runs; only the capture calls differ. Returns the last val loss.

    With a ``task``, each epoch's metrics go to set ``otrain``; with ``per_batch`` too, each
    batch's go to ``obatch``. ``model``: "mlp" or "cnn" (see :data:`MODELS`)."""
    torch.manual_seed(seed)
    model = build_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    if task is not None:
        task.input("itrain", optimizer_name="adam", learning_rate=1e-3, batch_size=batch_size,
                   epochs=epochs, seed=seed)
    val_loss = float("nan")
    for epoch in range(epochs):
        tally = EpochTally(epoch, task if per_batch else None)
        model.train()
        for step, (xb, yb) in enumerate(loader):
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            tally.batch(step, loss, logits, yb)
        model.eval()
        with torch.no_grad():
            logits = model(data.x_val)
            val_loss = F.cross_entropy(logits, data.y_val).item()
            val_accuracy = (logits.argmax(1) == data.y_val).float().mean().item()
        if task is not None:
            tally.end(task, val_loss, val_accuracy)
    return val_loss


class EpochTally:
    """One epoch's running loss and accuracy, as every benchmark's loop keeps them (each
    batch's loss and accuracy read back, as a logging user's loop does). With a ``task``, each
    batch's metrics go to set ``obatch``; :meth:`end` records the epoch's to ``otrain``."""

    def __init__(self, epoch: int, task=None) -> None:
        self.epoch, self.task = epoch, task
        self.started = time.perf_counter()
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def batch(self, step: int, loss: torch.Tensor, logits: torch.Tensor,
              labels: torch.Tensor) -> None:
        batch_loss = loss.item()
        batch_correct = int((logits.argmax(1) == labels).sum())
        self.loss_sum += batch_loss * len(labels)
        self.correct += batch_correct
        self.seen += len(labels)
        if self.task is not None:
            self.task.output("obatch", epoch=self.epoch, step=step, loss=batch_loss,
                             accuracy=batch_correct / len(labels),
                             elapsed_time=time.perf_counter() - self.started)

    def end(self, task, val_loss: float, val_accuracy: float) -> None:
        """The epoch's metrics, validation's included, to ``task``'s set ``otrain``."""
        task.output("otrain", epoch=self.epoch, loss=self.loss_sum / self.seen,
                    accuracy=self.correct / self.seen, val_loss=val_loss,
                    val_accuracy=val_accuracy, elapsed_time=time.perf_counter() - self.started)


@dataclass(frozen=True)
class ThreadStat:
    """A thread's scheduler counters, from Linux's /proc/self/task/<tid>/{schedstat,status}."""
    cpu_ns: int       # time on a CPU
    wait_ns: int      # time runnable, waiting in the run queue for a CPU
    voluntary: int    # switches the thread asked for: it blocked (on the GIL, a lock, I/O)
    involuntary: int  # switches the kernel forced: preempted at the end of its time slice

    def __sub__(self, other: "ThreadStat") -> "ThreadStat":
        return ThreadStat(self.cpu_ns - other.cpu_ns, self.wait_ns - other.wait_ns,
                          self.voluntary - other.voluntary,
                          self.involuntary - other.involuntary)


def thread_stat(tid: int | None) -> ThreadStat | None:
    """Thread ``tid``'s counters now; None where /proc has none (not Linux, thread gone)."""
    if tid is None:
        return None
    folder = Path(f"/proc/self/task/{tid}")
    try:
        cpu_ns, wait_ns = (int(x) for x in (folder / "schedstat").read_text().split()[:2])
        status = dict(line.split(":", 1) for line in
                      (folder / "status").read_text().splitlines() if ":" in line)
        return ThreadStat(cpu_ns, wait_ns, int(status["voluntary_ctxt_switches"]),
                          int(status["nonvoluntary_ctxt_switches"]))
    except (OSError, ValueError, KeyError):
        return None


def recorder_cpu_s() -> float | None:
    """CPU time so far of the recorder's writer threads (named ``dlprov-recorder``), None
    where it cannot be read."""
    stats = [thread_stat(t.native_id) for t in threading.enumerate()
             if t.name == "dlprov-recorder"]
    if not stats or None in stats:
        return None
    return sum(s.cpu_ns for s in stats) / 1e9


@dataclass
class Timing:
    wall_s: float           # before the first epoch .. after run.end() returned
    flush_s: float = 0.0    # run.end() alone
    start_s: float = 0.0    # dlprov.run() alone (not in wall_s)
    background_cpu_s: float = 0.0  # CPU time of threads other than training's (dlprov's)
    training_cpu_s: float = 0.0    # CPU time of the training thread over the same span
    rows: int = 0           # otrain + obatch rows found in the store
    loop_s: float = 0.0     # train() alone: the loop, without dlprov.run() and run.end()
    loop_thread: ThreadStat | None = None  # the training thread's counters over train() alone
    recorder_cpu_s: float | None = None    # the recorder thread's CPU over the whole run

    def blocked_ms(self) -> float | None:
        """The training thread's time in the loop off a CPU and not runnable: blocked, e.g.
        waiting for the GIL (loop wall - thread CPU - run-queue wait)."""
        if self.loop_thread is None:
            return None
        return 1000 * self.loop_s - (self.loop_thread.cpu_ns + self.loop_thread.wait_ns) / 1e6


def _timed_loop(data: Digits, args: argparse.Namespace, model: str,
                task: dlprov.Task | None = None, per_batch: bool = False
                ) -> tuple[float, ThreadStat | None]:
    """``train()`` once: its wall time and the training thread's counters over it."""
    tid = threading.get_native_id()
    before, cpu_began, began = thread_stat(tid), time.thread_time_ns(), time.perf_counter()
    train(data, args.epochs, args.batch_size, args.seed, task, per_batch, model)
    loop_s, cpu_ns, after = (time.perf_counter() - began, time.thread_time_ns() - cpu_began,
                             thread_stat(tid))
    if before is None or after is None:
        return loop_s, None
    # schedstat's CPU time of a running thread lags by up to a scheduler tick; the clock's
    # does not (the run-queue wait is complete: it is added when the thread gets a CPU)
    return loop_s, replace(after - before, cpu_ns=cpu_ns)


def _cpu_clocks() -> tuple[float, float]:
    """(CPU time of the whole process, of this thread): their difference is what other threads
    (dlprov's writer and environment probe) spent."""
    return time.process_time(), time.thread_time()


def train_once(variant: str, data: Digits, args: argparse.Namespace, store: Path,
               model: str = "mlp") -> Timing:
    """One timed training run of ``variant`` of ``model``, captured into the SQLite file
    ``store``."""
    gc.collect()
    if variant == BASELINE:
        cpu_began = _cpu_clocks()
        began = time.perf_counter()
        loop = _timed_loop(data, args, model)
        wall_s = time.perf_counter() - began
        return Timing(wall_s, 0.0, 0.0, *_cpu_since(cpu_began), 0, *loop)
    rows_before = _stored_rows(store)  # the store may hold earlier runs of this variant
    cpu_began = _cpu_clocks()
    began = time.perf_counter()
    with dlprov.run("bench", store=store, **_run_options(args)) as run:
        start_s = time.perf_counter() - began
        began = time.perf_counter()
        with run.task("train") as task:
            loop = _timed_loop(data, args, model, task, variant == PER_BATCH)
        flush_began = time.perf_counter()
        run.end()
        ended = time.perf_counter()
        cpu_s = _cpu_since(cpu_began)
        writer_cpu_s = recorder_cpu_s()  # before close_all() ends the thread
    close_all()  # stop this store's writer thread (untimed) so that it cannot disturb the next
    rows = _stored_rows(store) - rows_before
    return Timing(ended - began, ended - flush_began, start_s, *cpu_s, rows, *loop,
                  writer_cpu_s)


def _stored_rows(store: Path) -> int:
    return _count_rows(store, "bench__otrain") + _count_rows(store, "bench__obatch")


def _cpu_since(began: tuple[float, float]) -> tuple[float, float]:
    """(CPU time of the other threads, of this thread) since ``began``."""
    process, thread = _cpu_clocks()
    return (process - began[0]) - (thread - began[1]), thread - began[1]


def _run_options(args: argparse.Namespace) -> dict:
    # The git probes run git in this script's repository; a benchmark should leave it alone
    # unless asked (--git-probe). The agent's e-mail is given so that git is not asked for it.
    if args.git_probe:
        return {}
    return {"email": "benchmark@localhost", "capture_environment": {"git": False}}


def measure_training(data: Digits, args: argparse.Namespace, folder: Path, model: str = "mlp"
                     ) -> dict[str, list[Timing]]:
    """Rounds of every variant, each round in a rotated order, after one untimed warm-up round."""
    timings: dict[str, list[Timing]] = {v: [] for v in VARIANTS}
    for round_ in range(-1, args.repeats):
        shift = max(round_, 0) % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            # A user's store accumulates runs: by default each variant keeps one store (made in
            # the warm-up round); --fresh-store pays schema creation inside every run instead.
            name = f"train-{round_ + 1}-" if args.fresh_store else "train-"
            store = folder / f"{name}{model}-{variant.replace(' ', '-')}.db"
            timing = train_once(variant, data, args, store, model)
            if round_ >= 0:
                timings[variant].append(timing)
        if round_ >= 0:
            _progress(f"{model} round {round_ + 1}/{args.repeats}: " + ", ".join(
                f"{v} {timings[v][-1].wall_s:.3f} s" for v in VARIANTS))
    return timings


# -- 4. a run's fixed cost in a fresh process ----------------------------------------------------

# One run of ten epochs in a new interpreter, as a training script lives it: the first run of a
# process opens the store, compiles its statements and (for a new store) makes its tables.
FRESH_PROCESS = """
import json, sys, time
began = time.perf_counter()
import dlprov
imported = time.perf_counter()
run = dlprov.run("fresh", store=sys.argv[1], email="benchmark@localhost",
                 capture_environment={"git": False})
started = time.perf_counter()
with run.task("train") as task:
    task.input("itrain", learning_rate=0.001, batch_size=16)
    for epoch in range(10):
        task.output("otrain", epoch=epoch, loss=1.0 / (epoch + 1), accuracy=0.9)
calls = time.perf_counter()
run.end()
ended = time.perf_counter()
print(json.dumps({"import": imported - began, "start": started - imported,
                  "calls": calls - started, "end": ended - calls}))
"""


def measure_fresh_processes(folder: Path, runs: int) -> dict[str, list[dict[str, float]]]:
    """``runs`` new interpreters each doing one run: into a new store, and into one that
    already holds runs (made by the first of them)."""
    import subprocess
    found: dict[str, list[dict[str, float]]] = {"new store": [], "existing store": []}
    existing = folder / "fresh-existing.db"
    for i in range(runs + 1):
        for kind, store in (("new store", folder / f"fresh-new-{i}.db"),
                            ("existing store", existing)):
            done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(store)],
                                  capture_output=True, text=True, timeout=120, check=True)
            if i > 0:  # the first pair warms the disk cache and makes the existing store
                found[kind].append(json.loads(done.stdout))
    return found


def report_fresh_processes(report: "Report", found: dict[str, list[dict[str, float]]],
                           number: str) -> None:
    runs = len(found["new store"])
    report.say(f"{number}. A run's fixed cost in a fresh process ({runs} new interpreters each): "
               f"dlprov.run(), 11 capture calls, run.end()")
    report.say(f"   {'store':<15} {'import dlprov':>13} {'dlprov.run()':>13} {'11 calls':>9} "
               f"{'run.end()':>10}")
    for kind, rows in found.items():
        med = {k: 1000 * statistics.median(r[k] for r in rows) for k in rows[0]}
        report.say(f"   {kind:<15} {med['import']:>10.1f} ms {med['start']:>10.2f} ms "
                   f"{med['calls']:>6.2f} ms {med['end']:>7.2f} ms")
        report.verdicts.append(Verdict(f"fresh process, {kind}: run() + end()",
                                       f"{med['start'] + med['end']:.1f} ms", "(reported)", "-"))
    report.say("   medians; run.end() waits for the writer thread: opening the store, compiling "
               "its statements, (new store) making")
    report.say("   its tables, writing. Later runs in the same process reuse the engine: see "
               "the flush column above")


# -- reporting -----------------------------------------------------------------------------------

def _count_rows(store: Path, table: str) -> int:
    with sqlite3.connect(store) as conn:
        try:
            return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        except sqlite3.OperationalError:  # the set was never captured into this store
            return 0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


@dataclass
class Verdict:
    figure: str
    measured: str
    target: str
    result: str


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)  # overhead % per round

    def say(self, line: str = "") -> None:
        self.lines.append(line)

    def finish(self) -> None:
        """Add the table of verdicts and the missed or unresolved ones, and print it all."""
        self.lines += render_table(self.verdicts)
        self.say()
        for outcome in ("FAIL", "UNRESOLVED"):
            figures = [v.figure for v in self.verdicts if v.result.startswith(outcome)]
            if figures:
                self.say(f"{outcome}: {'; '.join(figures)}")
        if all(v.result in ("PASS", "-") for v in self.verdicts):
            self.say("all targets met")
        print("\n".join(self.lines), flush=True)

    def write_json(self, path: str | None) -> None:
        """The verdicts (and the per-round series) as JSON for ``benchmarks/report.py``."""
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(
                {"figures": [asdict(v) for v in self.verdicts], "series": self.series},
                indent=2))

    def plot(self, path: str | None, title: str) -> None:
        """Box plots of the per-round overheads (PNG): one panel per group, one box per series
        (series are named ``"group | label"``); a log-like scale where some series are far
        above the rest (MLflow's, in peers.py)."""
        if not path or not self.series:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        groups: dict[str, dict[str, list[float]]] = {}
        for name, values in self.series.items():
            group, _, label = name.rpartition(" | ")
            groups.setdefault(group, {})[label] = values
        width = max(len(g) for g in groups.values())
        fig, axes = plt.subplots(1, len(groups), figsize=(1.4 * width * len(groups) + 1.5, 4.2),
                                 squeeze=False)
        for ax, (group, series) in zip(axes[0], groups.items()):
            ax.boxplot(list(series.values()), showfliers=True)
            ax.set_xticks(range(1, len(series) + 1), [n.replace(" ", "\n") for n in series],
                          fontsize=8)
            ax.axhline(0.0, color="grey", linewidth=0.8)
            top = max(max(v) for v in series.values())
            if top > 50:
                bottom = min(min(min(v) for v in series.values()), 0.0)
                ax.set_yscale("symlog", linthresh=2.0)
                ax.set_ylim(1.5 * bottom - 1.0, 2.0 * top)
            ax.set_title(group, fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("overhead over the same round's baseline (%)")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


def report_calls(report: Report, cost: CallCost, calls: int, chunk: int) -> None:
    median, p99 = statistics.median(cost.per_call_us), _pct(cost.per_call_us, 99)
    slow = sum(1 for s in cost.per_call_us if s * chunk > 1000)
    report.say(f"1. One capture call: task.output('otrain', <6 numeric values>), {calls:,} calls "
               f"timed in chunks of {chunk}")
    report.say(f"   per call (chunk mean): median {median:.2f} us, p90 "
               f"{_pct(cost.per_call_us, 90):.2f} us, p99 {p99:.2f} us, max "
               f"{max(cost.per_call_us):.1f} us; chunks over 1 ms: {slow} of "
               f"{len(cost.per_call_us):,}")
    report.say(f"   of which the harness (a no-op call, same arguments): median "
               f"{statistics.median(cost.harness_us):.2f} us")
    report.say(f"   run.end() after the last call (writer catching up): {cost.flush_s:.3f} s; "
               f"rows in the store: {cost.written:,} of {calls + 1:,}")
    if cost.written != calls + 1:
        report.say("   WARNING: rows are missing from the store")
    report.verdicts.append(Verdict("capture call, median", f"{median:.2f} us",
                                   f"<= {CALL_TARGET_US:g} us",
                                   "PASS" if median <= CALL_TARGET_US else "FAIL"))
    report.verdicts.append(Verdict("capture call, p99", f"{p99:.2f} us", "(reported)", "-"))


def _median_ci(values: list[float], seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap 95% confidence interval of the median of ``values``."""
    draws = np.random.default_rng(seed).choice(values, (resamples, len(values)))
    medians = np.median(draws, axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def _span(low: float, high: float) -> str:
    return f"{low:+.2f}..{high:+.2f}%"


def report_training(report: Report, timings: dict[str, list[Timing]],
                    args: argparse.Namespace, batches: int, call_us: float,
                    model: str = "mlp", number: str = "2") -> None:
    report.say(f"{number}. Training loop: {MODELS[model]} on digits, {args.epochs} epochs x "
               f"{batches} batches of {args.batch_size}, CPU, {torch.get_num_threads()} torch "
               f"thread(s), {args.repeats} rounds")
    report.say("   wall = before the first epoch .. run.end() returned (final flush included); "
               "overhead = wall / same round's baseline - 1")
    base = [t.wall_s for t in timings[BASELINE]]
    # CPU time, not wall: other processes on the machine stretch the wall, not the CPU time.
    base_cpu = statistics.median(t.training_cpu_s for t in timings[BASELINE])
    report.say(f"   {'variant':<11} {'rows':>5} {'wall':>8}  {'overhead':>8} {'95% CI':>17} "
               f"{'IQR':>17} {'min..max':>17}  {'flush':>6} {'start':>6} {'dlprov thr':>10} "
               f"{'capture CPU':>11}")
    targets = {PER_EPOCH: EPOCH_TARGET_PCT, PER_BATCH: BATCH_TARGET_PCT}
    cpu_targets = {PER_EPOCH: EPOCH_TARGET_PCT, PER_BATCH: BATCH_CPU_TARGET_PCT}
    expected = {BASELINE: 0, PER_EPOCH: args.epochs, PER_BATCH: args.epochs * (batches + 1)}
    for variant in VARIANTS:
        runs = timings[variant]
        walls = [t.wall_s for t in runs]
        line = f"   {variant:<11} {expected[variant]:>5} {statistics.median(walls):>6.3f} s  "
        if variant == BASELINE:
            threads_ms = 1000 * statistics.median(t.background_cpu_s for t in runs)
            report.say(line + f"{'-':>8} {'-':>17} {'-':>17} {'-':>17}  {'-':>6} {'-':>6} "
                       f"{threads_ms:>8.1f}ms")
            continue
        overhead = [100.0 * (w / b - 1.0) for w, b in zip(walls, base)]
        report.series[f"{MODELS[model].split()[0]} | {variant}"] = overhead
        med = statistics.median(overhead)
        low, high = _median_ci(overhead)
        threads_ms = 1000 * statistics.median(t.background_cpu_s for t in runs)
        # What capture spends, as a share of the loop: the capture calls on the training thread
        # (their count x part 1's median) plus the CPU of dlprov's threads. With a core to spare
        # their Python work still holds the GIL, so this is about what the loop can lose.
        spent_pct = 100 * (expected[variant] * call_us / 1e6 + threads_ms / 1000) / base_cpu
        report.say(line + f"{med:>+7.2f}% {_span(low, high):>17} "
                   f"{_span(_pct(overhead, 25), _pct(overhead, 75)):>17} "
                   f"{_span(min(overhead), max(overhead)):>17}  "
                   f"{1000 * statistics.median(t.flush_s for t in runs):>4.1f}ms "
                   f"{1000 * statistics.median(t.start_s for t in runs):>4.1f}ms "
                   f"{threads_ms:>8.1f}ms {spent_pct:>10.2f}%")
        target = targets[variant]
        # The wall figure passes or fails only if its confidence interval is clear of the target.
        result = ("PASS" if high < target else "FAIL" if low > target
                  else f"UNRESOLVED (95% CI {_span(low, high)})")
        report.verdicts.append(Verdict(f"training ({model}), {variant} overhead (wall)",
                                       f"{med:+.2f}% (CI {_span(low, high)})",
                                       f"< {target:g}%", result))
        report.verdicts.append(Verdict(f"training ({model}), {variant} capture CPU",
                                       f"{spent_pct:.2f}%", f"< {cpu_targets[variant]:g}%",
                                       "PASS" if spent_pct < cpu_targets[variant] else "FAIL"))
        wrong = [t.rows for t in runs if t.rows != expected[variant]]
        if wrong:
            report.say(f"   WARNING: {variant} runs stored {wrong} rows, expected "
                       f"{expected[variant]}")
    report.say("   wall: median; overhead: median over rounds, its bootstrap 95% CI, IQR and "
               "range; rows: elements captured per run")
    report.say("   flush = run.end() alone (inside wall); start = dlprov.run() alone (outside "
               "wall); dlprov thr = CPU time of the")
    report.say("   threads other than training's over the run (process CPU - training thread "
               "CPU): the recorder's writer and the environment probe")
    report.say("   capture CPU = (rows x part 1's median call + dlprov thr) / the baseline's "
               f"median CPU time ({base_cpu:.3f} s): what capture spends, far less moved by")
    report.say("   machine noise than the wall figures")
    report_thread_waits(report, timings, model)


def report_thread_waits(report: Report, timings: dict[str, list[Timing]], model: str) -> None:
    """The training thread's waits over the loop alone, each variant beside the baseline: the
    GIL the recorder thread holds shows as blocked time and voluntary switches."""
    report.say("   the training thread over train() alone (no run start or end), medians over "
               "rounds; 'n/a' where /proc has no per-thread counters (not Linux):")
    report.say(f"   {'variant':<11} {'blocked':>9} {'run-queue':>10} {'voluntary':>9} "
               f"{'involuntary':>11} {'recorder CPU':>12}")
    for variant in VARIANTS:
        runs = timings[variant]
        blocked = _median_or_none([t.blocked_ms() for t in runs])
        stats = [t.loop_thread for t in runs]
        wait = _median_or_none([None if s is None else s.wait_ns / 1e6 for s in stats])
        voluntary = _median_or_none([None if s is None else s.voluntary for s in stats])
        involuntary = _median_or_none([None if s is None else s.involuntary for s in stats])
        writer = (None if variant == BASELINE
                  else _median_or_none([None if t.recorder_cpu_s is None
                                        else 1000 * t.recorder_cpu_s for t in runs]))
        report.say(f"   {variant:<11} {_ms(blocked):>9} {_ms(wait):>10} {_count(voluntary):>9} "
                   f"{_count(involuntary):>11} "
                   f"{'-' if variant == BASELINE else _ms(writer):>12}")
        if variant != BASELINE:
            report.verdicts.append(Verdict(
                f"training ({model}), {variant} GIL waits of the training thread",
                _thread_waits_text(runs, timings[BASELINE], writer), "(reported)", "-"))
    report.say("   blocked = the loop's wall - the thread's CPU - its run-queue wait: time off a "
               "CPU and not runnable, as when waiting")
    report.say("   for the GIL (each wait is a voluntary switch); run-queue = runnable, waiting "
               "for a CPU (other threads and processes);")
    report.say("   recorder CPU = the recorder's writer thread over the whole run "
               "(/proc/self/task/<tid>/schedstat)")


def _thread_waits_text(runs: list[Timing], base: list[Timing], writer_ms: float | None) -> str:
    """The captured loop's waits over the same round's baseline, as one table cell."""
    pairs = [(t.loop_thread, b.loop_thread, t.blocked_ms(), b.blocked_ms())
             for t, b in zip(runs, base)]
    if not pairs or any(p is None for pair in pairs for p in pair):
        return "n/a"
    blocked = statistics.median(t - b for _, _, t, b in pairs)
    wait = statistics.median((t.wait_ns - b.wait_ns) / 1e6 for t, b, _, _ in pairs)
    voluntary = statistics.median(t.voluntary - b.voluntary for t, b, _, _ in pairs)
    involuntary = statistics.median(t.involuntary - b.involuntary for t, b, _, _ in pairs)
    return (f"blocked {blocked:+.2f} ms, run-queue {wait:+.2f} ms, switches {voluntary:+g} "
            f"voluntary / {involuntary:+g} involuntary vs no capture; recorder CPU "
            f"{_ms(writer_ms)}")


def _median_or_none(values: list[float | None]) -> float | None:
    return None if not values or None in values else statistics.median(values)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def render_table(verdicts: list[Verdict]) -> list[str]:
    rows = [("figure", "measured", "target", "result")]
    rows += [(v.figure, v.measured, v.target, v.result) for v in verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, help="capture calls to time (default 200000)")
    parser.add_argument("--chunk", type=int, default=10, help="calls per timed chunk (10)")
    parser.add_argument("--repeats", type=int, help="timed training rounds (default 11)")
    parser.add_argument("--epochs", type=int, help="epochs per training run (default 20)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (16)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--git-probe", action="store_true",
                        help="let runs run git for the agent's e-mail and the git state (off)")
    parser.add_argument("--fresh-store", action="store_true",
                        help="a new store file for every run (default: one per variant, "
                             "as a user's store accumulates runs)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in well under 30 s (few calls, rounds and epochs)")
    parser.add_argument("--models", default=None,
                        help="comma-separated models to train: mlp, cnn (default both; "
                             "--quick: mlp)")
    parser.add_argument("--fresh-runs", type=int, default=None,
                        help="new interpreters timing one run each (default 7; --quick: 2)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--plot", help="write a PNG box plot of the overheads here")
    args = parser.parse_args(argv)
    if args.fresh_runs is None:
        args.fresh_runs = 2 if args.quick else 7
    args.models = [m.strip() for m in (args.models or ("mlp" if args.quick else "mlp,cnn"))
                   .split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        parser.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    defaults = ({"calls": 20_000, "repeats": 2, "epochs": 2} if args.quick
                else {"calls": 200_000, "repeats": 11, "epochs": 20})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.calls, args.chunk, args.repeats, args.epochs, args.batch_size, args.threads) < 1:
        parser.error("counts must be positive")
    args.calls = max(args.calls - args.calls % args.chunk, args.chunk)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = Report()
    report.say(f"dlprov {dlprov.__version__} capture overhead"
               f"{' (--quick: a smoke run, the numbers are rough)' if args.quick else ''}")
    report.say(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"{os.cpu_count()} CPUs, {platform.machine()}; store: an SQLite file in a temp "
               f"dir, one per variant kept across rounds (--fresh-store: one per run); "
               f"git probes {'on' if args.git_probe else 'off'}")
    report.say()
    with tempfile.TemporaryDirectory(prefix="dlprov-bench-") as tmp:
        folder = Path(tmp)
        _progress(f"timing {args.calls:,} capture calls")
        cost = measure_call_cost(folder / "calls.db", args)
        report_calls(report, cost, args.calls, args.chunk)
        report.say()
        data = load_data(args.seed)
        batches = -(-len(data.x_train) // args.batch_size)
        for number, model in enumerate(args.models, start=2):
            _progress(f"training {model}: 1 warm-up + {args.repeats} rounds x "
                      f"{len(VARIANTS)} variants")
            timings = measure_training(data, args, folder, model)
            report_training(report, timings, args, batches, statistics.median(cost.per_call_us),
                            model, str(number))
            report.say()
        _progress(f"fresh processes: {args.fresh_runs} x 2")
        report_fresh_processes(report, measure_fresh_processes(folder, args.fresh_runs),
                               str(len(args.models) + 2))
        report.say()
    report.finish()
    report.write_json(args.json)
    report.plot(args.plot, f"dlprov capture overhead, {args.epochs} epochs, "
                           f"{args.repeats} rounds (per-epoch target {EPOCH_TARGET_PCT}%, "
                           f"per-batch {BATCH_TARGET_PCT}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
