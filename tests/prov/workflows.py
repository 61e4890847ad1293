"""Stores filled through the real capture API for the PROV export tests, with a record of what
each run captured, from which the tests compute what the export must hold."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dlprov

DF = "exp"


@dataclass
class Step:
    transformation: str
    used: dict[str, int]
    produced: dict[str, int]


@dataclass
class Recorded:
    """What :func:`capture` recorded for one candidate."""

    name: str
    exec_tag: str
    chain: tuple[str, ...]
    epochs: int
    model_id: str = ""
    steps: list[Step] = field(default_factory=list)
    outside: tuple[str, ...] = ("audit", "report")  # not in the model's trace

    def trace(self) -> list[Step]:
        return [s for s in self.steps if s.transformation not in self.outside]


def capture(root: Path, name: str, chain: tuple[str, ...], learning_rate: float,
            epochs: int = 3, *, store: str | None = None, df_tag: str = DF,
            tests: int = 1) -> Recorded:
    """One candidate: audit (unrelated), loaddata, the preprocessing ``chain``, splitdata,
    train (with a model file), ``tests`` tests, then report (after the last test)."""
    rec = Recorded(name, f"{df_tag}-{name}", chain, epochs)
    workdir = root / name
    workdir.mkdir(parents=True)
    with dlprov.run(df_tag, store=store, exec_tag=rec.exec_tag, user=f"user-{name}",
                    email=f"{name}@lab.example", organization="The Lab",
                    capture_environment={"packages": False, "git": False}) as run:
        with run.task("audit") as audit:
            audit.output("oaudit", note="unrelated")
        rec.steps.append(Step("audit", {}, {"oaudit": 1}))
        with run.task("loaddata") as load:
            load.input("iinputdataset", dataset_name="digits")
            load.output("oloaddata", dataset_dir=workdir / "raw.npz")
        rec.steps.append(Step("loaddata", {"iinputdataset": 1}, {"oloaddata": 1}))
        previous, data = load, "oloaddata"
        for step in chain:
            with run.task(step, depends_on=previous) as task:
                task.input(f"i{step}", method=step)
                task.output(f"o{step}", pp_dataset=workdir / f"{step}.npz")
            rec.steps.append(Step(step, {data: 1, f"i{step}": 1}, {f"o{step}": 1}))
            previous, data = task, f"o{step}"
        with run.task("splitdata", depends_on=previous) as split:
            split.input("isplitconfig", train_size=0.8, test_size=0.2)
            split.output("otrainset", trainsetx=workdir / "x_train.npy")
            split.output("otestset", testsetx=workdir / "x_test.npy")
        rec.steps.append(Step("splitdata", {data: 1, "isplitconfig": 1},
                              {"otrainset": 1, "otestset": 1}))
        with run.task("train", depends_on=split, uses=["otrainset"]) as train:
            train.input("itrain", optimizer_name="adam", learning_rate=learning_rate,
                        batch_size=32, layers=[64, 32])
            for epoch in range(1, epochs + 1):
                train.output("otrain", epoch=epoch, loss=1.0 / epoch, accuracy=0.5 + epoch / 10,
                             elapsed_time=0.25, timestamp=datetime(2024, 1, 1, 10, epoch))
            model_file = workdir / f"{name}.pt"
            model_file.write_bytes(b"weights of " + name.encode())
            rec.model_id = train.model(model_file, name=name, framework="torch")
        rec.steps.append(Step("train", {"otrainset": 1, "itrain": 1},
                              {"otrain": epochs, "otrainedmodel": 1}))
        for _ in range(tests):
            with run.task("test", depends_on=[split, train],
                          uses=["otestset", "otrainedmodel"]) as test:
                test.output("otest", loss=0.3, accuracy=0.9)
            rec.steps.append(Step("test", {"otestset": 1, "otrainedmodel": 1}, {"otest": 1}))
        with run.task("report", depends_on=test) as report:
            report.output("oreport", summary="done")
        rec.steps.append(Step("report", {"otest": 1}, {"oreport": 1}))
    return rec


def experiment(root: Path, store: str | None = None, df_tag: str = DF) -> dict[str, Recorded]:
    """Two candidates of dataflow ``df_tag``: a three-step preprocessing chain, and a one-step
    one."""
    where = {"store": store, "df_tag": df_tag}
    return {rec.name: rec for rec in (
        capture(root, "mlp-a", ("clean", "normalize", "augment"), 0.001, **where),
        capture(root, "mlp-b", ("normalize",), 0.01, epochs=2, **where),
    )}


def big_run(elements: int = 1000) -> str:
    """One run whose training writes ``elements`` otrain elements (per-batch metrics)."""
    with dlprov.run("big", exec_tag="big-1", capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", learning_rate=0.1)
            for step in range(elements):
                train.output("otrain", step=step, loss=1.0 / (step + 1))
        with run.task("test", depends_on=train, uses=[]) as test:
            test.output("otest", accuracy=0.5)
    return run.exec_tag
