"""What dlprov capture costs a training script, measured side by side in one run.

Two figures, each against a target:

1. the cost of one capture call, ``task.output("otrain", ...)`` with six numeric values, as
   the training thread pays it (validation and conversion, then a queue append), over many
   calls timed in small chunks;
2. the wall time of a small PyTorch training loop (an MLP on scikit-learn's digits, CPU)
   with no capture, capture once per epoch and capture once per batch, as ratios to the
   loop without capture. The loop is timed as the user lives it: from before the first epoch
   to after ``run.end()`` returns, so the final flush is inside; the flush and the run's
   start are also shown on their own.

Variants are interleaved (baseline, per-epoch, per-batch, baseline, ...) and each captured
round is compared with the baseline of the same round, so a machine that slows down for a
while slows all three. A report, not a test: it exits 0 whether or not targets are met.

    python benchmarks/overhead.py            # full run, about two minutes
    python benchmarks/overhead.py --quick    # smoke run, under 30 seconds
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

try:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset
except ImportError as missing:  # pragma: no cover - depends on the environment
    sys.exit(f"overhead.py needs torch, numpy and scikit-learn (pip install -e '.[demo]'): "
             f"{missing}")

import dlprov
from dlprov.recorder.recorder import close_all  # stops writer threads between timed runs

CALL_TARGET_US = 5.0
EPOCH_TARGET_PCT = 0.3
BATCH_TARGET_PCT = 2.0

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


def measure_call_cost(store: Path, calls: int, chunk: int) -> CallCost:
    """Time ``calls`` capture calls in chunks of ``chunk``; the store is a fresh SQLite file."""
    harness = _time_calls(_no_op, min(calls, 50_000), chunk)
    with dlprov.run("bench_calls", store=store) as run:
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
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[order], dtype=torch.long)
    cut = int(0.8 * len(x))
    return Digits(x[:cut], y[:cut], x[cut:], y[cut:])


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def _train(data: Digits, epochs: int, batch_size: int, seed: int,
           task: dlprov.Task | None, per_batch: bool) -> float:
    """The loop every variant runs; only the capture calls differ. Returns the last val loss."""
    torch.manual_seed(seed)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    if task is not None:
        task.input("itrain", optimizer_name="adam", learning_rate=1e-3, batch_size=batch_size,
                   epochs=epochs, seed=seed)
    val_loss = float("nan")
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for step, (xb, yb) in enumerate(loader):
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            batch_loss = loss.item()
            batch_correct = int((logits.argmax(1) == yb).sum())
            loss_sum += batch_loss * len(yb)
            correct += batch_correct
            seen += len(yb)
            if per_batch:
                task.output("obatch", epoch=epoch, step=step, loss=batch_loss,
                            accuracy=batch_correct / len(yb),
                            elapsed_time=time.perf_counter() - started)
        model.eval()
        with torch.no_grad():
            logits = model(data.x_val)
            val_loss = F.cross_entropy(logits, data.y_val).item()
            val_accuracy = (logits.argmax(1) == data.y_val).float().mean().item()
        if task is not None:
            task.output("otrain", epoch=epoch, loss=loss_sum / seen, accuracy=correct / seen,
                        val_loss=val_loss, val_accuracy=val_accuracy,
                        elapsed_time=time.perf_counter() - started)
    return val_loss


@dataclass
class Timing:
    wall_s: float          # before the first epoch to after run.end() returned
    flush_s: float = 0.0   # run.end() alone
    start_s: float = 0.0   # dlprov.run() alone (outside wall_s)
    rows: int = 0          # element rows found in the store


def train_once(variant: str, data: Digits, args: argparse.Namespace, store: Path) -> Timing:
    """One timed training run of ``variant``, captured into the fresh SQLite file ``store``."""
    gc.collect()
    if variant == BASELINE:
        began = time.perf_counter()
        _train(data, args.epochs, args.batch_size, args.seed, None, False)
        return Timing(time.perf_counter() - began)
    began = time.perf_counter()
    with dlprov.run("bench", store=store) as run:
        start_s = time.perf_counter() - began
        began = time.perf_counter()
        with run.task("train") as task:
            _train(data, args.epochs, args.batch_size, args.seed, task, variant == PER_BATCH)
        flush_began = time.perf_counter()
        run.end()
        ended = time.perf_counter()
    close_all()  # stop this store's writer thread (untimed) so it cannot disturb the next
    rows = _count_rows(store, "bench__otrain") + (
        _count_rows(store, "bench__obatch") if variant == PER_BATCH else 0)
    return Timing(ended - began, ended - flush_began, start_s, rows)


def measure_training(data: Digits, args: argparse.Namespace, folder: Path
                     ) -> dict[str, list[Timing]]:
    """Interleaved rounds of every variant, after one untimed warm-up round."""
    timings: dict[str, list[Timing]] = {v: [] for v in VARIANTS}
    for round_ in range(-1, args.repeats):
        for variant in VARIANTS:
            store = folder / f"train-{round_ + 1}-{variant.replace(' ', '-')}.db"
            timing = train_once(variant, data, args, store)
            if round_ >= 0:
                timings[variant].append(timing)
        if round_ >= 0:
            _progress(f"round {round_ + 1}/{args.repeats}: " + ", ".join(
                f"{v} {timings[v][-1].wall_s:.3f} s" for v in VARIANTS))
    return timings


# -- reporting -----------------------------------------------------------------------------------

def _count_rows(store: Path, table: str) -> int:
    with sqlite3.connect(store) as conn:
        try:
            return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


@dataclass
class Verdict:
    figure: str
    measured: str
    target: str
    passed: bool


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        self.lines.append(line)


def report_calls(report: Report, cost: CallCost, calls: int, chunk: int) -> None:
    median = statistics.median(cost.per_call_us)
    p99 = _percentile(cost.per_call_us, 99)
    report.say(f"1. One capture call: task.output('otrain', <6 numeric values>), {calls:,} calls "
               f"timed in chunks of {chunk}")
    report.say(f"   per call (chunk mean):  median {median:.2f} us   p90 "
               f"{_percentile(cost.per_call_us, 90):.2f} us   p99 {p99:.2f} us   max "
               f"{max(cost.per_call_us):.1f} us")
    report.say(f"   harness alone (no-op call, same arguments): median "
               f"{statistics.median(cost.harness_us):.2f} us (included above)")
    report.say(f"   run.end() after the last call: {cost.flush_s:.3f} s; rows in the store: "
               f"{cost.written:,} of {calls + 1:,}")
    if cost.written != calls + 1:
        report.say("   WARNING: rows are missing from the store")
    report.verdicts.append(Verdict("capture call, median", f"{median:.2f} us",
                                   f"<= {CALL_TARGET_US:g} us", median <= CALL_TARGET_US))
    report.verdicts.append(Verdict("capture call, p99", f"{p99:.2f} us", "(reported)", True))


def report_training(report: Report, timings: dict[str, list[Timing]],
                    args: argparse.Namespace, batches: int) -> None:
    report.say(f"2. Training loop: MLP 64-128-128-10 on digits ({args.epochs} epochs x {batches} "
               f"batches of {args.batch_size}, CPU, torch threads {torch.get_num_threads()}), "
               f"{args.repeats} interleaved rounds")
    report.say("   wall = before the first epoch .. run.end() returned (final flush included)")
    base = [t.wall_s for t in timings[BASELINE]]
    report.say(f"   {'variant':<12} {'rows':>6} {'wall median':>12} {'min..max':>17} "
               f"{'overhead median':>16} {'min..max':>17} {'IQR':>16} {'flush':>8} {'start':>8}")
    targets = {PER_EPOCH: EPOCH_TARGET_PCT, PER_BATCH: BATCH_TARGET_PCT}
    for variant in VARIANTS:
        walls = [t.wall_s for t in timings[variant]]
        if variant == BASELINE:
            overhead = [0.0] * len(walls)
        else:  # each round against the baseline of the same round
            overhead = [100.0 * (w / b - 1.0) for w, b in zip(walls, base)]
        med = statistics.median(overhead)
        rows = timings[variant][0].rows
        flush = statistics.median(t.flush_s for t in timings[variant])
        start = statistics.median(t.start_s for t in timings[variant])
        report.say(
            f"   {variant:<12} {rows:>6} {statistics.median(walls):>10.3f} s "
            f"{min(walls):>7.3f}..{max(walls):.3f} s {med:>+15.2f}% "
            f"{min(overhead):>+7.2f}..{max(overhead):+.2f}% "
            f"{_percentile(overhead, 25):>+7.2f}..{_percentile(overhead, 75):+.2f}% "
            + (f"{flush * 1000:>6.1f}ms {start * 1000:>6.1f}ms" if variant != BASELINE
               else f"{'-':>8} {'-':>8}"))
        if variant in targets:
            report.verdicts.append(Verdict(f"training, {variant} overhead", f"{med:+.2f}%",
                                           f"< {targets[variant]:g}%", med < targets[variant]))
    expected = {PER_EPOCH: args.epochs, PER_BATCH: args.epochs * (batches + 1)}
    for variant, want in expected.items():
        short = [t.rows for t in timings[variant] if t.rows != want]
        if short:
            report.say(f"   WARNING: {variant} runs stored {short} element rows, expected {want}")
    report.say("   flush = run.end() alone (inside wall); start = dlprov.run() alone (not in wall)")


def render_table(verdicts: list[Verdict]) -> list[str]:
    rows = [("figure", "measured", "target", "result")]
    rows += [(v.figure, v.measured, v.target,
              "-" if v.target == "(reported)" else ("PASS" if v.passed else "FAIL"))
             for v in verdicts]
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
    parser.add_argument("--repeats", type=int, help="interleaved training rounds (default 7)")
    parser.add_argument("--epochs", type=int, help="epochs per training run (default 20)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (16)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in well under 30 s (few calls, rounds and epochs)")
    args = parser.parse_args(argv)
    defaults = ({"calls": 20_000, "repeats": 2, "epochs": 2} if args.quick
                else {"calls": 200_000, "repeats": 7, "epochs": 20})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.calls, args.chunk, args.repeats, args.epochs, args.batch_size, args.threads) < 1:
        parser.error("counts must be positive")
    args.calls -= args.calls % args.chunk
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = Report()
    report.say(f"dlprov {dlprov.__version__} capture overhead"
               f"{' (--quick: smoke run, numbers are rough)' if args.quick else ''}")
    report.say(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"{os.cpu_count()} CPUs, {platform.machine()}, store: SQLite file in a temp dir")
    report.say()
    with tempfile.TemporaryDirectory(prefix="dlprov-bench-") as tmp:
        folder = Path(tmp)
        _progress(f"timing {args.calls:,} capture calls")
        cost = measure_call_cost(folder / "calls.db", args.calls, args.chunk)
        report_calls(report, cost, args.calls, args.chunk)
        report.say()
        data = load_data(args.seed)
        batches = -(-len(data.x_train) // args.batch_size)
        _progress(f"training: 1 warm-up + {args.repeats} rounds x {len(VARIANTS)} variants")
        timings = measure_training(data, args, folder)
        report_training(report, timings, args, batches)
    report.say()
    report.lines += render_table(report.verdicts)
    missed = [v.figure for v in report.verdicts if not v.passed]
    report.say()
    report.say(f"targets missed: {', '.join(missed)}" if missed else "all targets met")
    print("\n".join(report.lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
