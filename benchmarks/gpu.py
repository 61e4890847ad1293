"""Capture overhead on real GPU training, dlprov beside MLflow and yProv4ML, side by side.

A ResNet-18 (the CIFAR form: 3x3 stem, no max-pool; 11.2M parameters) trains on CIFAR-shaped
images made on the GPU (32x32x3, 10 classes, a class pattern under noise, so that it learns:
no download), bf16 autocast, SGD with Nesterov momentum. Every variant runs the same loop, which
reads each batch's loss and accuracy back (``loss.item()``, as a logging user does); only the
logging calls differ: none, dlprov (``task.output``), MLflow (``log_metrics``, synchronous and
``synchronous=False``, an SQLite store) and yProv4ML (``log_metric`` per value). Two levels: each
epoch's metrics only, and each batch's too. The tools' adapters, the interleaved rotated rounds
and the report are peers.py's, so the figures read as its CPU ones do.

One run is sized from a probe (``--run-seconds``); rounds stop when ``--budget`` seconds are
spent (a GPU lease is short), at least one round per level. Beside the wall overhead: dlprov's
capture CPU (its calls, at the per-call median measured first on the same machine, plus its
writer thread's CPU) as a share of the baseline run. A report, not a test: it exits 0 whether
targets are met or not; without a GPU it runs on the CPU (a smoke run, the figures mean little).

    python benchmarks/gpu.py --json out/gpu.json            # ~6 minutes on one H200
    python benchmarks/gpu.py --quick                        # smoke run, ~1 minute anywhere
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as ov  # noqa: E402 - reporting, timings, thread counters
import peers  # noqa: E402 - the tools behind one interface, interleaved rounds

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

# per-epoch and per-batch capture on a GPU: wall overhead and capture CPU, % of the run
TARGET_PCT = {"epoch": 0.3, "batch": 2.0}


# -- the model and its data ----------------------------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a shortcut (a 1x1 projection where the shape changes)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                          nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18(classes: int = 10) -> nn.Module:
    """ResNet-18 for 32x32 images (He et al. 2016; the CIFAR stem)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                               nn.ReLU()]
    inputs = 64
    for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs, 1)]
        inputs = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Images:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def make_images(train: int, val: int, device: torch.device, seed: int) -> Images:
    """CIFAR-shaped images on ``device``: each class a fixed random pattern under noise."""
    g = torch.Generator(device=device).manual_seed(seed)
    patterns = torch.randn(10, 3, 32, 32, device=device, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), device=device, generator=g)
        x = 0.6 * patterns[y] + torch.randn(n, 3, 32, 32, device=device, generator=g)
        return x.contiguous(memory_format=torch.channels_last), y

    return Images(*draw(train), *draw(val))


def train(data: Images, epochs: int, batch_size: int, seed: int, task=None,
          per_batch: bool = False) -> float:
    """The loop every variant runs; only the logging calls differ. Returns the last val loss.

    With a ``task``, each epoch's metrics go to set ``otrain``; with ``per_batch`` too, each
    batch's go to ``obatch`` (peers.py's task interface)."""
    device = data.x_train.device
    torch.manual_seed(seed)
    model = resnet18().to(device, memory_format=torch.channels_last)
    lr = 0.05
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    if task is not None:
        task.input("itrain", optimizer_name="sgd", learning_rate=lr, batch_size=batch_size,
                   epochs=epochs, seed=seed)
    g = torch.Generator(device=device).manual_seed(seed)
    n = len(data.y_train)
    amp = torch.autocast(device.type, dtype=torch.bfloat16)
    val_loss = float("nan")
    for epoch in range(epochs):
        tally = ov.EpochTally(epoch, task if per_batch else None)
        model.train()
        order = torch.randperm(n, device=device, generator=g)
        for step, first in enumerate(range(0, n, batch_size)):
            picked = order[first:first + batch_size]
            xb, yb = data.x_train[picked], data.y_train[picked]
            with amp:
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            tally.batch(step, loss, logits, yb)
        model.eval()
        val_sum, val_correct = 0.0, 0
        with torch.no_grad(), amp:
            for first in range(0, len(data.y_val), 1024):
                xv, yv = data.x_val[first:first + 1024], data.y_val[first:first + 1024]
                logits = model(xv)
                val_sum += float(F.cross_entropy(logits, yv, reduction="sum"))
                val_correct += int((logits.argmax(1) == yv).sum())
        val_loss = val_sum / len(data.y_val)
        if task is not None:
            tally.end(task, val_loss, val_correct / len(data.y_val))
    return val_loss


# -- measuring -----------------------------------------------------------------------------------

def size_runs(data: Images, args: argparse.Namespace) -> float:
    """Sets ``args.epochs`` so that one run takes about ``args.run_seconds``; returns the
    seconds one epoch took (after a warm-up epoch: cuDNN's autotuning, the allocator)."""
    train(data, 1, args.batch_size, args.seed)
    began = time.perf_counter()
    train(data, 2, args.batch_size, args.seed)
    epoch_s = (time.perf_counter() - began) / 2
    if args.epochs is None:
        args.epochs = max(2, round(args.run_seconds / epoch_s))
    return epoch_s


def report_capture_share(report: ov.Report, timings: dict[str, list[ov.Timing]],
                         records: int, call_us: float, level: str) -> None:
    """dlprov's capture CPU as a share of the baseline run: its calls on the training thread
    (count x the per-call median) plus its writer thread's CPU."""
    base = statistics.median(t.wall_s for t in timings[peers.BASELINE])
    writer = [t.recorder_cpu_s for t in timings[peers.DLPROV] if t.recorder_cpu_s is not None]
    if not writer:
        return
    writer_s = statistics.median(writer)
    share = 100 * (records * call_us / 1e6 + writer_s) / base
    report.say(f"   dlprov capture CPU: {records} calls x {call_us:.2f} us + writer thread "
               f"{1000 * writer_s:.1f} ms = {share:.3f}% of the baseline run's "
               f"{base:.2f} s")
    target = TARGET_PCT[level]
    report.verdicts.append(ov.Verdict(f"GPU training (per {level}), dlprov capture CPU",
                                      f"{share:.3f}%", f"< {target:g}%",
                                      "PASS" if share < target else "FAIL"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, help="training images (default 20000)")
    parser.add_argument("--val-size", type=int, default=2000, help="validation images (2000)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (256)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: sized)")
    parser.add_argument("--run-seconds", type=float, help="one run's length when sizing (4)")
    parser.add_argument("--repeats", type=int, help="rounds at most per level (default 8)")
    parser.add_argument("--budget", type=float, help="seconds for the training rounds, all "
                                                     "levels (default 300)")
    parser.add_argument("--levels", default="epoch,batch", help="epoch, batch or both")
    parser.add_argument("--tools", default=None,
                        help="comma-separated tools to measure beside the baseline: dlprov, "
                             "mlflow sync, mlflow async, yprov4ml (default all installed)")
    parser.add_argument("--device", default=None, help="cuda (default where there is one)")
    parser.add_argument("--json", help="also write the figures as JSON here")
    parser.add_argument("--plot", help="write a PNG box plot of the overheads here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: rough numbers")
    args = parser.parse_args(argv)
    defaults = ({"train_size": 512, "run_seconds": 1.0, "repeats": 1, "budget": 30.0}
                if args.quick else
                {"train_size": 20_000, "run_seconds": 4.0, "repeats": 8, "budget": 300.0})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.levels = [x.strip() for x in args.levels.split(",") if x.strip()]
    if args.tools is not None:
        args.tools = [x.strip() for x in args.tools.split(",") if x.strip()]
        if peers.DLPROV not in args.tools:
            parser.error("--tools: dlprov is what the others are compared with; name it")
    if not args.levels or set(args.levels) - {"epoch", "batch"}:
        parser.error("--levels: choose from epoch, batch")
    if min(args.train_size, args.val_size, args.batch_size, args.repeats) < 1:
        parser.error("sizes and counts must be positive")
    # peers.measure_calls's counts: per-call cost on this machine, a few seconds
    args.calls, args.async_calls, args.sync_calls, args.chunk = 20_000, 2_000, 200, 10
    args.call_rounds = 1 if args.quick else 2
    args.git_probe = False
    return args


def _device_text(device: torch.device) -> str:
    if device.type != "cuda":
        return f"{device} (no GPU: a smoke run)"
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.benchmark = True
    for name in ("mlflow", "alembic", "yprov4ml"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # MLflow through dlprov's plugin is peers.py's figure (and needs dlprov installed, for
    # its entry point): not measured here
    tools = [t for t in peers.available_tools() if t != peers.MLFLOW_DLPROV
             and (args.tools is None or t in args.tools)]
    report = ov.Report()
    report.say(f"dlprov beside MLflow and yProv4ML on GPU training"
               f"{' (--quick: a smoke run, the numbers are rough)' if args.quick else ''}")
    report.say(peers._versions())
    report.say(f"python {platform.python_version()}, torch {torch.__version__}, "
               f"{os.cpu_count()} CPUs, {platform.machine()}; device: {_device_text(device)}")
    report.say()
    data = make_images(args.train_size, args.val_size, device, args.seed)
    epoch_s = size_runs(data, args)
    batches = -(-args.train_size // args.batch_size)
    ov._progress(f"one epoch {epoch_s:.3f} s ({args.train_size / epoch_s:,.0f} images/s): "
                 f"{args.epochs} epochs a run")
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="dlprov-gpu-") as tmp:
        folder = Path(tmp)
        os.chdir(folder)  # yProv4ML's end_run looks for a requirements file in the cwd
        try:
            ov._progress(f"per-call: 1 warm-up + {args.call_rounds} rounds x "
                         f"{len(tools)} tools")
            samples = peers.measure_calls(tools, folder, args)
            call_us = peers.report_calls(report, tools, samples, args)
            report.say()

            def loop(task, per_batch):
                return train(data, args.epochs, args.batch_size, args.seed, task, per_batch)

            budget_end = time.monotonic() + args.budget
            for index, level in enumerate(args.levels):
                number = index + 2  # the report's section (1: the per-call figures)
                # each level gets an equal share of what is left
                deadline = (time.monotonic()
                            + (budget_end - time.monotonic()) / (len(args.levels) - index))
                ov._progress(f"training per {level}: 1 warm-up + up to {args.repeats} rounds "
                             f"x {len(tools) + 1} variants")
                timings = peers.measure_training(tools, loop, args, folder, "resnet18", level,
                                                 deadline)
                rounds = len(timings[peers.BASELINE])
                records = args.epochs * ((batches + 1) if level == "batch" else 1)
                report.say(f"{number}. GPU training, logging per {level}: ResNet-18 (11.2M "
                           f"parameters) on {args.train_size:,} 32x32 images, {args.epochs} "
                           f"epochs x {batches} batches of {args.batch_size}, bf16 autocast, "
                           f"{rounds} interleaved rounds")
                report.say(f"   one epoch {epoch_s:.3f} s ({args.train_size / epoch_s:,.0f} "
                           f"images/s, {1000 * epoch_s / batches:.2f} ms a batch); logged: each "
                           f"epoch's 6 metrics" + (" and each batch's 5" if level == "batch"
                                                   else "") + f" ({records} records a run)")
                report.say("   wall = before the first epoch .. the run's end returned (flush "
                           "inside); overhead = wall / same round's baseline - 1")
                overheads = peers.report_overheads(report, tools, timings,
                                                   f"ResNet-18 GPU, per {level}",
                                                   f"GPU ResNet-18, per {level}")
                report_capture_share(report, timings, records, call_us, level)
                target = TARGET_PCT[level]
                med = statistics.median(overheads[peers.DLPROV])
                low, high = ov._median_ci(overheads[peers.DLPROV])
                result = "PASS" if med < target else (
                    "UNRESOLVED (target within the 95% CI)" if low < target else "FAIL")
                report.verdicts.append(ov.Verdict(f"GPU training (per {level}), dlprov wall "
                                                  f"overhead", f"{med:+.2f}%", f"< {target:g}%",
                                                  result))
                report.say()
        finally:
            os.chdir(cwd)
    report.finish()
    report.write_json(args.json)
    report.plot(args.plot, f"GPU training overhead beside peers, ResNet-18, {args.epochs} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
