"""dlprov beside MLflow and yProv4ML, measured side by side in one run.

Two figures, each tool against dlprov measured in the same rounds:

1. the cost of one metric record, one value at one step, as the training thread pays it:
   dlprov ``task.output("ometric", step=i, loss=x)``, MLflow ``mlflow.log_metric("loss", x,
   step=i)`` synchronous and with ``synchronous=False`` (an SQLite store in a temp dir), and
   yProv4ML ``yprov4ml.log_metric("loss", x, step=i)``; timed in chunks, median and p99 of the
   per-call chunk means, and each tool's median over dlprov's; and ``mlflow.log_metric``
   through dlprov's tracking-store plugin (``dlprov:<tmp>/mlflow-plugin.db``, "mlflow>dlprov")
   against MLflow's own SQLite store (target: at least 100x cheaper);
2. the overhead on overhead.py's training loop (the demo's MLP on digits, the same ``train``
   function, imported) of each tool logging the same things at the same points: each epoch's
   metrics and, with ``--level batch`` (the default), each batch's too.

Rounds are interleaved, each in a rotated order, and every figure is compared with dlprov's (or
the baseline's) of its own round. A tool that is not installed is skipped with a message. A
report, not a test: it exits 0 whether targets are met or not.

    benchmarks/.venv-peers/bin/python benchmarks/peers.py          # full run, ~4 minutes, 2 cores
    benchmarks/.venv-peers/bin/python benchmarks/peers.py --quick  # smoke run, under a minute
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as ov  # noqa: E402 - the training loop, data, store counting and reporting

import dlprov  # noqa: E402
import torch  # noqa: E402

try:
    import mlflow
    MLFLOW_MISSING = ""
except Exception as error:  # pragma: no cover - depends on the environment
    mlflow = None
    MLFLOW_MISSING = f"{type(error).__name__}: {error}"

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import yprov4ml
    YPROV_MISSING = ""
except Exception as error:  # pragma: no cover - depends on the environment
    yprov4ml = None
    YPROV_MISSING = f"{type(error).__name__}: {error}"

CALL_TARGET_US = 3.0          # dlprov per-call median
SYNC_RATIO_TARGET = 500.0     # MLflow synchronous per call / dlprov per call
MLFLOW_OVERHEAD_RATIO = 10.0  # MLflow (synchronous) overhead / dlprov overhead
PLUGIN_RATIO_TARGET = 100.0   # MLflow on its SQLite store / MLflow on dlprov's plugin, per call
# yProv4ML: dlprov's overhead no higher than yProv4ML's

DLPROV, MLFLOW_SYNC, MLFLOW_ASYNC, YPROV = "dlprov", "mlflow sync", "mlflow async", "yprov4ml"
# MLflow's own API writing through dlprov's tracking-store plugin (MLFLOW_TRACKING_URI=dlprov:…)
MLFLOW_DLPROV = "mlflow>dlprov"
BASELINE = "no tracking"


def available_tools() -> list[str]:
    tools = [DLPROV]
    if mlflow is not None:
        tools += [MLFLOW_SYNC, MLFLOW_ASYNC, MLFLOW_DLPROV]
    if yprov4ml is not None:
        tools.append(YPROV)
    return tools


# -- the tools behind one interface --------------------------------------------------------------

class Tool:
    """Start a run, hand out a ``task`` with overhead.train's interface (``input(set, **values)``
    and ``output(set, **values)``), end the run (flushing whatever is queued)."""

    def __init__(self, name: str, folder: Path, args: argparse.Namespace) -> None:
        self.name, self.folder, self.args = name, folder, args
        self.runs = 0

    def start(self, label: str):
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


class DlprovTool(Tool):
    def start(self, label: str):
        store = self.folder / f"dlprov-{label}.db"  # one store per label, runs accumulate
        self._run = dlprov.run("bench", store=store, **ov._run_options(self.args))
        self._run.__enter__()
        self._task = self._run.task("train")
        self._task.__enter__()
        return self._task

    def end(self) -> None:
        self._task.__exit__(None, None, None)
        self._run.end()
        self._run.__exit__(None, None, None)
        self.writer_cpu_s = ov.recorder_cpu_s()  # the writer thread's CPU, before it stops
        ov.close_all()  # stop the writer thread (after the timed end) so it cannot disturb others


class _KeyedTask:
    """What both peer adapters keep: a step counter per set and the ``<set>.<name>`` keys."""

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}
        self.keys: dict[tuple[str, str], str] = {}

    def _key(self, set_tag: str, name: str) -> str:
        key = self.keys.get((set_tag, name))
        if key is None:
            key = self.keys[(set_tag, name)] = f"{set_tag}.{name}"
        return key


class MlflowTask(_KeyedTask):
    """overhead.train's task interface on MLflow's fluent API: one ``log_metrics`` call per
    record (all its values at once, step = the record's index in its set)."""

    def __init__(self, synchronous: bool) -> None:
        super().__init__()
        self.synchronous = synchronous

    def input(self, set_tag: str, **values: object) -> None:
        mlflow.log_params({self._key(set_tag, k): v for k, v in values.items()},
                          synchronous=self.synchronous)

    def output(self, set_tag: str, **values: float) -> None:
        step = self.steps.get(set_tag, 0)
        self.steps[set_tag] = step + 1
        mlflow.log_metrics({self._key(set_tag, k): v for k, v in values.items()}, step=step,
                           synchronous=self.synchronous)


class MlflowTool(Tool):
    def __init__(self, name: str, folder: Path, args: argparse.Namespace) -> None:
        super().__init__(name, folder, args)
        self.synchronous = name in (MLFLOW_SYNC, MLFLOW_DLPROV)
        self.plugin = name == MLFLOW_DLPROV
        self.uri = (f"dlprov:{folder}/mlflow-plugin.db" if self.plugin
                    else f"sqlite:///{folder}/mlflow-{name.replace(' ', '-')}.db")

    def start(self, label: str):
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(f"bench-{label}")
        mlflow.start_run()
        return MlflowTask(self.synchronous)

    def end(self) -> None:
        if not self.synchronous:
            mlflow.flush_async_logging()
        mlflow.end_run()
        if self.plugin:
            ov.close_all()  # the plugin's records written, as DlprovTool's are


class YprovTask(_KeyedTask):
    """overhead.train's task interface on yProv4ML: one ``log_metric`` call per value (it has
    no call for several values), ``log_param`` per input value."""

    def input(self, set_tag: str, **values: object) -> None:
        for k, v in values.items():
            yprov4ml.log_param(self._key(set_tag, k), v)

    def output(self, set_tag: str, **values: float) -> None:
        step = self.steps.get(set_tag, 0)
        self.steps[set_tag] = step + 1
        for k, v in values.items():
            yprov4ml.log_metric(self._key(set_tag, k), v, step=step)


class YprovTool(Tool):
    def start(self, label: str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yprov4ml.start_run(f"bench_{label}", provenance_save_dir=str(self.folder / "yprov"),
                               metrics_file_type="csv")
        return YprovTask()

    def end(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yprov4ml.end_run(create_graph=False, create_svg=False)


def make_tool(name: str, folder: Path, args: argparse.Namespace) -> Tool:
    if name == DLPROV:
        return DlprovTool(name, folder, args)
    if name in (MLFLOW_SYNC, MLFLOW_ASYNC, MLFLOW_DLPROV):
        return MlflowTool(name, folder, args)
    return YprovTool(name, folder, args)


# -- 1. one metric record ------------------------------------------------------------------------

@dataclass
class CallSamples:
    per_call_us: list[float] = field(default_factory=list)
    end_s: list[float] = field(default_factory=list)   # ending the run: flushing what is queued
    calls: int = 0


def _record_call(tool: str, task) -> Callable[[int, float], None]:
    """One record of one value at one step, the way each tool logs it."""
    if tool == DLPROV:
        output = task.output
        return lambda i, x: output("ometric", step=i, loss=x)
    if tool == MLFLOW_SYNC:
        log = mlflow.log_metric
        return lambda i, x: log("loss", x, step=i)
    if tool == MLFLOW_ASYNC:
        log = mlflow.log_metric
        return lambda i, x: log("loss", x, step=i, synchronous=False)
    if tool == MLFLOW_DLPROV:
        log = mlflow.log_metric
        return lambda i, x: log("loss", x, step=i)
    log = yprov4ml.log_metric
    return lambda i, x: log("loss", x, step=i)


def calls_for(tool: str, args: argparse.Namespace) -> tuple[int, int]:
    """(calls per round, calls per timed chunk) for ``tool``: the slow ones get fewer."""
    if tool == MLFLOW_SYNC:
        return args.sync_calls, 1
    if tool in (MLFLOW_ASYNC, MLFLOW_DLPROV):
        return args.async_calls, args.chunk
    return args.calls, args.chunk


def measure_calls(tools: list[str], folder: Path, args: argparse.Namespace
                  ) -> dict[str, CallSamples]:
    """Rounds of every tool, each round in a rotated order; in each, a fresh run per tool, its
    calls timed in chunks, then its end (flush) timed apart."""
    samples = {t: CallSamples() for t in tools}
    makers = {t: make_tool(t, folder / "calls", args) for t in tools}
    (folder / "calls").mkdir()
    clock = time.perf_counter_ns
    for round_ in range(-1, args.call_rounds):  # round -1: an untimed warm-up (schemas, imports)
        shift = max(round_, 0) % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            calls, chunk = calls_for(tool, args)
            if round_ < 0:
                calls = min(calls, 10 * chunk)
            task = makers[tool].start("calls")
            call = _record_call(tool, task)
            call(-1, 0.0)  # the first record of a set/key is a one-off: not timed
            gc.collect()
            got = []
            for start in range(0, calls, chunk):
                began = clock()
                for i in range(start, start + chunk):
                    call(i, 0.2503)
                got.append((clock() - began) / chunk / 1000)
            began = time.perf_counter()
            makers[tool].end()
            ended = time.perf_counter() - began
            if round_ >= 0:
                samples[tool].per_call_us += got
                samples[tool].end_s.append(ended)
                samples[tool].calls += calls
        if round_ >= 0:
            last = {t: calls_for(t, args)[0] // calls_for(t, args)[1] for t in tools}
            ov._progress(f"calls round {round_ + 1}/{args.call_rounds}: " + ", ".join(
                f"{t} {statistics.median(samples[t].per_call_us[-last[t]:]):.2f} us"
                for t in tools))
    return samples


def report_calls(report: ov.Report, tools: list[str], samples: dict[str, CallSamples],
                 args: argparse.Namespace) -> float:
    report.say(f"1. One metric record (one value at one step), {args.call_rounds} interleaved "
               f"rounds, a fresh run per tool per round")
    report.say("   dlprov: task.output('ometric', step=i, loss=x); MLflow: mlflow.log_metric("
               "'loss', x, step=i[, synchronous=False]) into sqlite:///<tmp>/mlflow.db;")
    report.say("   yProv4ML: yprov4ml.log_metric('loss', x, step=i) (CSV metric files); "
               "per call = a timed chunk's mean")
    report.say("   mlflow>dlprov: mlflow.log_metric('loss', x, step=i) with MLflow's tracking "
               "URI dlprov:<tmp>/mlflow-plugin.db (dlprov's tracking-store plugin)")
    report.say(f"   {'tool':<13} {'calls':>8} {'chunk':>5} {'median':>10} {'p90':>10} "
               f"{'p99':>10} {'IQR':>19} {'x dlprov':>9} {'end (flush)':>12}")
    base = statistics.median(samples[DLPROV].per_call_us)
    for tool in tools:
        s = samples[tool].per_call_us
        med = statistics.median(s)
        report.say(f"   {tool:<13} {samples[tool].calls:>8,} {calls_for(tool, args)[1]:>5} "
                   f"{med:>7.2f} us {ov._pct(s, 90):>7.2f} us {ov._pct(s, 99):>7.2f} us "
                   f"{ov._pct(s, 25):>7.2f}..{ov._pct(s, 75):>7.2f} us {med / base:>8.0f}x "
                   f"{1000 * statistics.median(samples[tool].end_s):>9.1f} ms")
    report.say("   x dlprov = the tool's median / dlprov's median; end = ending the run after "
               "its calls (median over rounds), not in the per-call figures")
    report.verdicts.append(ov.Verdict("dlprov per call, median", f"{base:.2f} us",
                                      f"<= {CALL_TARGET_US:g} us",
                                      "PASS" if base <= CALL_TARGET_US else "FAIL"))
    report.verdicts.append(ov.Verdict(
        "dlprov per call, p99", f"{ov._pct(samples[DLPROV].per_call_us, 99):.2f} us",
        "(reported)", "-"))
    if MLFLOW_SYNC in samples:
        ratio = statistics.median(samples[MLFLOW_SYNC].per_call_us) / base
        report.verdicts.append(ov.Verdict("per call, MLflow sync / dlprov", f"{ratio:,.0f}x",
                                          f">= {SYNC_RATIO_TARGET:g}x",
                                          "PASS" if ratio >= SYNC_RATIO_TARGET else "FAIL"))
    if MLFLOW_ASYNC in samples:
        ratio = statistics.median(samples[MLFLOW_ASYNC].per_call_us) / base
        report.verdicts.append(ov.Verdict("per call, MLflow async / dlprov", f"{ratio:,.1f}x",
                                          "(reported)", "-"))
    if MLFLOW_SYNC in samples and MLFLOW_DLPROV in samples:
        ratio = (statistics.median(samples[MLFLOW_SYNC].per_call_us)
                 / statistics.median(samples[MLFLOW_DLPROV].per_call_us))
        report.verdicts.append(ov.Verdict(
            "mlflow.log_metric, SQLite store / dlprov plugin", f"{ratio:,.0f}x",
            f">= {PLUGIN_RATIO_TARGET:g}x", "PASS" if ratio >= PLUGIN_RATIO_TARGET else "FAIL"))
    if YPROV in samples:
        ratio = statistics.median(samples[YPROV].per_call_us) / base
        report.verdicts.append(ov.Verdict("per call, yProv4ML / dlprov", f"{ratio:,.1f}x",
                                          "(reported)", "-"))
    return base


# -- 2. a training loop --------------------------------------------------------------------------

Loop = Callable[[object, bool], object]  # loop(task or None, per_batch): one training run


def train_with(variant: str, loop: Loop, tools: dict[str, Tool], level: str = "batch"
               ) -> ov.Timing:
    """One timed run of ``loop`` with ``variant`` logging (or none). Wall: before the first
    epoch .. after the run's end returned (its flush inside); start apart.

    What earlier runs left on the heap (yProv4ML keeps its last run's graph and metrics, MLflow
    its caches) is frozen out of the collector first, so that it does not slow whichever
    variant comes next: each run pays only for the garbage it makes itself."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if variant == BASELINE:
        began = time.perf_counter()
        loop(None, False)
        return ov.Timing(time.perf_counter() - began)
    tool = tools[variant]
    began = time.perf_counter()
    task = tool.start("train")
    start_s = time.perf_counter() - began
    began = time.perf_counter()
    loop(task, level == "batch")
    flush_began = time.perf_counter()
    tool.end()
    ended = time.perf_counter()
    return ov.Timing(ended - began, ended - flush_began, start_s,
                     recorder_cpu_s=getattr(tool, "writer_cpu_s", None))


def measure_training(tools: list[str], loop: Loop, args: argparse.Namespace, folder: Path,
                     label: str, level: str = "batch", deadline: float | None = None
                     ) -> dict[str, list[ov.Timing]]:
    """One untimed warm-up round, then ``args.repeats`` rounds of every variant, each round in
    a rotated order; with a ``deadline`` (time.monotonic()), no round is begun that the last
    one's length says would end after it (at least one round is always measured)."""
    variants = [BASELINE] + tools
    where = folder / f"train-{label}-{level}"
    makers = {t: make_tool(t, where, args) for t in tools}
    where.mkdir()
    timings: dict[str, list[ov.Timing]] = {v: [] for v in variants}
    for round_ in range(-1, args.repeats):
        began = time.monotonic()
        shift = max(round_, 0) % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            timing = train_with(variant, loop, makers, level)
            if round_ >= 0:
                timings[variant].append(timing)
        if round_ >= 0:
            gc.unfreeze()
            ov._progress(f"training {label}/{level} round {round_ + 1}/{args.repeats}: " +
                         ", ".join(f"{v} {timings[v][-1].wall_s:.3f} s" for v in variants))
        if (deadline is not None and round_ >= 0
                and time.monotonic() + (time.monotonic() - began) > deadline):
            ov._progress(f"training {label}/{level}: stopped after {round_ + 1} rounds "
                         f"(time budget)")
            break
    return timings


def report_training(report: ov.Report, tools: list[str], timings: dict[str, list[ov.Timing]],
                    args: argparse.Namespace, batches: int, model: str = "mlp",
                    level: str = "batch", number: str = "2") -> None:
    records = args.epochs * ((batches + 1) if level == "batch" else 1)
    report.say(f"{number}. Training loop (overhead.py's), logging per {level}: "
               f"{ov.MODELS[model]} on digits, {args.epochs} "
               f"epochs x {batches} batches of {args.batch_size}, CPU, "
               f"{torch.get_num_threads()} torch thread(s), {args.repeats} interleaved rounds")
    report.say("   logged: each epoch's 6 metrics" +
               (" and each batch's 5" if level == "batch" else "") +
               f" ({records} records a run) and the run's 5 hyperparameters")
    report.say("   wall = before the first epoch .. the run's end returned (flush inside); "
               "overhead = wall / same round's baseline - 1")
    report_overheads(report, tools, timings, f"{ov.MODELS[model].split()[0]}, per {level}",
                     f"{model}, per {level}")


def report_overheads(report: ov.Report, tools: list[str], timings: dict[str, list[ov.Timing]],
                     group: str, name: str) -> dict[str, list[float]]:
    """Each tool's overhead over the baseline of its own round: the table, the plot's series
    (``group``) and the verdicts (``training (name)``). Returns the overheads (%) per tool."""
    base = [t.wall_s for t in timings[BASELINE]]
    report.say(f"   {'variant':<13} {'wall':>8}  {'overhead':>9} {'95% CI':>19} {'IQR':>19} "
               f"{'min..max':>19} {'end':>8} {'start':>8} {'vs dlprov':>9}")
    report.say(f"   {BASELINE:<13} {statistics.median(base):>6.3f} s")
    overheads: dict[str, list[float]] = {}
    for tool in tools:
        walls = [t.wall_s for t in timings[tool]]
        overheads[tool] = [100.0 * (w / b - 1.0) for w, b in zip(walls, base)]
        report.series[f"{group} | {tool}"] = overheads[tool]
    dl_med = statistics.median(overheads[DLPROV])
    for tool in tools:
        o = overheads[tool]
        med = statistics.median(o)
        low, high = ov._median_ci(o)
        vs = "-" if tool == DLPROV else (f"{med / dl_med:.1f}x" if dl_med > 0 else "n/a")
        report.say(f"   {tool:<13} {statistics.median(t.wall_s for t in timings[tool]):>6.3f} s "
                   f"{med:>+8.2f}% {_span(low, high):>19} "
                   f"{_span(ov._pct(o, 25), ov._pct(o, 75)):>19} {_span(min(o), max(o)):>19} "
                   f"{1000 * statistics.median(t.flush_s for t in timings[tool]):>5.1f}ms "
                   f"{1000 * statistics.median(t.start_s for t in timings[tool]):>6.1f}ms "
                   f"{vs:>9}")
    report.say("   overhead: median over rounds, bootstrap 95% CI of it, IQR, range; end = the "
               "run's end alone (inside wall: flush,")
    report.say("   async drain, yProv4ML's PROV JSON); start = starting the run (outside wall; "
               "yProv4ML's start_run sleeps 1 s);")
    report.say("   vs dlprov = the tool's median overhead / dlprov's (n/a if dlprov's median "
               "is not above 0: within noise)")
    low, high = ov._median_ci(overheads[DLPROV])
    report.verdicts.append(ov.Verdict(f"training ({name}), dlprov overhead",
                                      f"{dl_med:+.2f}% (CI {_span(low, high)})", "(reported)",
                                      "-"))
    for tool in tools[1:]:
        med = statistics.median(overheads[tool])
        if tool == YPROV:
            target, ok = "dlprov <= yProv4ML", dl_med <= med
        elif tool == MLFLOW_SYNC:
            target = f"dlprov x{MLFLOW_OVERHEAD_RATIO:g} <= MLflow"
            ok = dl_med * MLFLOW_OVERHEAD_RATIO <= med
        else:
            target, ok = "(reported)", None
        ratio = f"{med / dl_med:.1f}x dlprov" if dl_med > 0 else "dlprov within noise"
        result = "-" if ok is None else "PASS" if ok else "FAIL"
        if result == "FAIL" and _within(med, overheads[DLPROV]):
            # The peer's median lies inside dlprov's own interval: the machine's noise, not
            # the tools, decides which is lower.
            result = "UNRESOLVED (within dlprov's 95% CI)"
        report.verdicts.append(ov.Verdict(f"training ({name}), {tool} overhead",
                                          f"{med:+.2f}% ({ratio})", target, result))
    return overheads


def _within(value: float, overheads: list[float]) -> bool:
    low, high = ov._median_ci(overheads)
    return low <= value <= high


def _span(low: float, high: float) -> str:
    return f"{low:+.2f}..{high:+.2f}%"


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int,
                        help="dlprov and yProv4ML calls per round (default 20000)")
    parser.add_argument("--async-calls", type=int,
                        help="MLflow asynchronous calls per round (default 2000)")
    parser.add_argument("--sync-calls", type=int,
                        help="MLflow synchronous calls per round, timed one by one (default 200)")
    parser.add_argument("--chunk", type=int, default=10, help="calls per timed chunk (10)")
    parser.add_argument("--call-rounds", type=int, help="per-call rounds (default 5)")
    parser.add_argument("--repeats", type=int, help="training rounds (default 7)")
    parser.add_argument("--epochs", type=int, help="epochs per training run (default 10)")
    parser.add_argument("--levels", default="epoch,batch",
                        help="comma-separated: log each epoch's metrics only (epoch), or each "
                             "batch's too (batch); default both")
    parser.add_argument("--models", default=None,
                        help="comma-separated models to train: mlp, cnn (default both; "
                             "--quick: mlp)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--plot", help="write a PNG box plot of the training overheads here")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch size (16)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--git-probe", action="store_true",
                        help="let dlprov runs run git (off, as in overhead.py)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: rough numbers")
    args = parser.parse_args(argv)
    args.levels = [x.strip() for x in args.levels.split(",") if x.strip()]
    args.models = [m.strip() for m in (args.models or ("mlp" if args.quick else "mlp,cnn"))
                   .split(",") if m.strip()]
    if not args.levels or set(args.levels) - {"epoch", "batch"}:
        parser.error("--levels: choose from epoch, batch")
    if not args.models or set(args.models) - set(ov.MODELS):
        parser.error(f"--models: choose from {', '.join(ov.MODELS)}")
    defaults = ({"calls": 2_000, "async_calls": 200, "sync_calls": 20, "call_rounds": 2,
                 "repeats": 2, "epochs": 1} if args.quick else
                {"calls": 20_000, "async_calls": 2_000, "sync_calls": 200, "call_rounds": 5,
                 "repeats": 7, "epochs": 10})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    counts = (args.calls, args.async_calls, args.sync_calls, args.chunk, args.call_rounds,
              args.repeats, args.epochs, args.batch_size, args.threads)
    if min(counts) < 1:
        parser.error("counts must be positive")
    args.calls = max(args.calls - args.calls % args.chunk, args.chunk)
    args.async_calls = max(args.async_calls - args.async_calls % args.chunk, args.chunk)
    args.fresh_store = False
    return args


def _versions() -> str:
    out = [f"dlprov {dlprov.__version__}"]
    out.append(f"mlflow {mlflow.__version__}" if mlflow else f"mlflow: skipped ({MLFLOW_MISSING})")
    if yprov4ml is not None:
        from importlib.metadata import version
        out.append(f"yprov4ml {version('yprov4ml')}")
    else:
        out.append(f"yprov4ml: skipped ({YPROV_MISSING})")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in ("mlflow", "alembic", "yprov4ml"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    tools = available_tools()
    report = ov.Report()
    report.say(f"dlprov beside MLflow and yProv4ML"
               f"{' (--quick: a smoke run, the numbers are rough)' if args.quick else ''}")
    report.say(_versions())
    report.say(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}")
    for name, missing in (("MLflow", MLFLOW_MISSING), ("yProv4ML", YPROV_MISSING)):
        if missing:
            report.say(f"{name} is not importable here, skipped: {missing}")
    report.say()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="dlprov-peers-") as tmp:
        folder = Path(tmp)
        os.chdir(folder)  # yProv4ML's end_run looks for a requirements file in the cwd
        try:
            ov._progress(f"per-call: 1 warm-up + {args.call_rounds} rounds x {len(tools)} tools")
            samples = measure_calls(tools, folder, args)
            report_calls(report, tools, samples, args)
            report.say()
            data = ov.load_data(args.seed)
            batches = -(-len(data.x_train) // args.batch_size)
            number = 2
            for model in args.models:
                for level in args.levels:
                    ov._progress(f"training {model}, per {level}: 1 warm-up + {args.repeats} "
                                 f"rounds x {len(tools) + 1} variants")
                    def loop(task, per_batch, model=model):
                        return ov.train(data, args.epochs, args.batch_size, args.seed, task,
                                        per_batch, model)
                    timings = measure_training(tools, loop, args, folder, model, level)
                    report_training(report, tools, timings, args, batches, model, level,
                                    str(number))
                    report.say()
                    number += 1
        finally:
            os.chdir(cwd)
    report.finish()
    report.write_json(args.json)
    report.plot(args.plot, f"training overhead beside peers, {args.epochs} epochs, "
                           f"{args.repeats} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
