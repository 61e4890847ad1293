"""The main job (``dlprov demo``): candidate MLPs on digits, captured with the Pythonic API.

Each candidate is one execution of dataflow ``digits``:
LoadData -> NormalizeData -> [ReduceDimensions] -> OneHotEncoding -> SplitData -> Train -> Test.
The preprocessing steps are captured by ``dlprov.step`` (SplitData by ``dlprov.prepare``); each
takes and returns the whole dataset (features and labels), so each uses all of what the one
before produced. ``dlprov demo --parsl`` (:mod:`.parallel`) shares these pieces.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

import dlprov
from dlprov.demo import data
from dlprov.capture.task import Task
from dlprov.demo.training import Candidate, build_mlp, evaluate, train
from dlprov.store.store import Store

DATAFLOW = "digits"
SEED = 7
SPLIT = (0.6, 0.2, 0.2)
MODEL_FILE = "model.pt"

CANDIDATES = [
    Candidate("mlp-adam-minmax", "minmax", None, "adam", 1e-3, 64, 2),
    Candidate("mlp-sgd-minmax", "minmax", None, "sgd", 1e-2, 64, 2),
    Candidate("mlp-adam-standard", "standard", None, "adam", 1e-2, 128, 3),
    Candidate("mlp-rmsprop-standard-pca", "standard", 32, "rmsprop", 1e-3, 64, 2),
    Candidate("mlp-adam-minmax-pca", "minmax", 24, "adam", 3e-3, 128, 2),
    Candidate("mlp-sgd-standard", "standard", None, "sgd", 3e-2, 32, 3),
]

LISTING_4 = """\
SELECT im.*, om.avg_accuracy
FROM itrain im
JOIN (
  SELECT train_task_id, AVG(accuracy) AS avg_accuracy
  FROM otrain
  GROUP BY train_task_id
  HAVING AVG(accuracy) = (
    SELECT MAX(avg_accuracy)
    FROM (
      SELECT AVG(accuracy) AS avg_accuracy
      FROM otrain
      GROUP BY train_task_id
    ) AS subquery
  )
) om ON im.train_task_id = om.train_task_id;"""


def candidates(count: int) -> list[Candidate]:
    """``count`` candidates: the listed ones, then variations of them with other learning rates."""
    chosen = []
    for i in range(count):
        base = CANDIDATES[i % len(CANDIDATES)]
        if i >= len(CANDIDATES):
            factor = 2.0 ** (i // len(CANDIDATES))
            base = Candidate(f"{base.name}-lr{base.learning_rate * factor:g}", base.normalization,
                             base.pca_components, base.optimizer_name,
                             base.learning_rate * factor, base.hidden_units, base.num_layers)
        chosen.append(base)
    return chosen


# The preprocessing steps: each call is a task, linked to the one before by the arrays it is
# given (dlprov.step); each saves its result under the candidate's folder (not a parameter).
@dlprov.step("loaddata", params_set="iinputdataset", outputs="oloaddata", ignore=("workdir",))
def load_data(workdir: Path, dataset_name: str = "digits",
              dataset_source: str = "sklearn.datasets.load_digits"):
    x, y = data.load_digits_arrays()
    dlprov.saved(data.save(workdir / "raw.npz", x=x, y=y), x, y)
    return x, y


@dlprov.step("normalizedata", outputs="onormalizedata", ignore=("workdir",))
def normalize_data(x, y, workdir: Path, method: str):
    x = data.normalize(x, method)
    dlprov.saved(data.save(workdir / "normalized.npz", x=x, y=y), x, y)
    return x, y


@dlprov.step("reducedimensions", outputs="oreducedimensions", ignore=("workdir",))
def reduce_dimensions(x, y, workdir: Path, n_components: int, method: str = "pca",
                      seed: int = SEED):
    x = data.reduce_dimensions(x, n_components, seed)
    dlprov.saved(data.save(workdir / "reduced.npz", x=x, y=y), x, y)
    return x, y


@dlprov.step("onehotencoding", outputs="oonehotdataset", ignore=("workdir",))
def one_hot_encoding(x, y, workdir: Path):
    y = data.one_hot(y)
    dlprov.saved(data.save(workdir / "onehot.npz", x=x, y=y), x, y)
    return x, y


SPLIT_SETS = ("otrainset", "ovalset", "otestset")


def split_data(x, y, workdir: Path, train_size: float = SPLIT[0], val_size: float = SPLIT[1],
               test_size: float = SPLIT[2], seed: int = SEED) -> tuple[list, Task]:
    """SplitData: the train, validation and test parts (one set each) and the task that made
    them. A block rather than a decorated step, so that its task can be named as a dependency
    of tasks that run in other processes (``dlprov demo --parsl``)."""
    params = dict(train_size=train_size, val_size=val_size, test_size=test_size, seed=seed)
    with dlprov.prepare("splitdata", x, y, params=params, params_set="isplitconfig") as step:
        parts = data.split(x, y, (train_size, val_size, test_size), seed)
        for i, (name, set_tag, part) in enumerate(zip(("train", "val", "test"), SPLIT_SETS,
                                                      parts)):
            step.output(part, set_tag, name=f"return[{i}]",
                        path=data.save(workdir / f"{name}.npz", x=part[0], y=part[1]))
    return parts, step.task


def preprocess(candidate: Candidate, workdir: Path) -> tuple[list, Task]:
    """The candidate's preprocessing chain, as tasks of the current run (``dlprov.use_run``):
    its train, validation and test parts and the SplitData task."""
    x, y = load_data(workdir)
    x, y = normalize_data(x, y, workdir, method=candidate.normalization)
    if candidate.pca_components:
        x, y = reduce_dimensions(x, y, workdir, n_components=candidate.pca_components)
    x, y = one_hot_encoding(x, y, workdir)
    return split_data(x, y, workdir)


def train_params(candidate: Candidate, epochs: int) -> dict:
    """Train's hyperparameters (its ``itrain`` element)."""
    return dict(optimizer_name=candidate.optimizer_name, learning_rate=candidate.learning_rate,
                num_epochs=epochs, batch_size=candidate.batch_size,
                num_layers=candidate.num_layers, hidden_units=candidate.hidden_units)


def fit(task: Task, candidate: Candidate, train_set, val_set, epochs: int, workdir: Path,
        on_epoch: Callable[[], None] = lambda: None):
    """Train the candidate's MLP inside ``task``: an ``otrain`` element per epoch, the model
    saved as ``workdir/model.pt`` and recorded (``otrainedmodel``); returns the model."""
    import torch

    model = build_mlp(train_set[0].shape[1], candidate.hidden_units, candidate.num_layers)

    def record_epoch(metrics: dict) -> None:
        task.output("otrain", timestamp=datetime.now(), **metrics)
        on_epoch()

    train(model, candidate, train_set, val_set, epochs, SEED, record_epoch)
    model_path = workdir / MODEL_FILE
    torch.save(model.state_dict(), model_path)
    # an otrainedmodel element and a trained_model entity (size, sha256, parameters)
    task.model(model_path, model, name=candidate.name)
    return model


def record_test(task: Task, model, test_set) -> None:
    """Test: the model's loss and accuracy on the test part (``otest``)."""
    loss, accuracy = evaluate(model, *test_set)
    task.output("otest", loss=loss, accuracy=accuracy)


def run_candidate(candidate: Candidate, *, store: Store, epochs: int, output_dir: Path,
                  on_epoch: Callable[[], None] = lambda: None) -> str:
    """Run the whole workflow for one candidate, capturing its provenance; return the exec tag."""
    workdir = output_dir / candidate.name
    with dlprov.run(DATAFLOW, store=store) as run, dlprov.use_run(run):
        (train_set, val_set, test_set), _ = preprocess(candidate, workdir)
        # train uses the training and validation sets (otrainset, ovalset) it is given
        with dlprov.prepare("train", train_set, val_set,
                            params=train_params(candidate, epochs)) as step:
            train_task = step.task
            model = fit(train_task, candidate, train_set, val_set, epochs, workdir, on_epoch)
        # test uses the test set (otestset) and the trained model (otrainedmodel)
        with dlprov.prepare("test", test_set, depends_on=train_task,
                            uses=["otrainedmodel"]) as step:
            record_test(step.task, model, test_set)
    return run.exec_tag


def run_demo(*, store: Store | None = None, candidates: int = 4, epochs: int = 8,
             output_dir: str | Path = "demo-output", progress: bool = True,
             echo: Callable[[str], None] = print) -> None:
    """Train ``candidates`` models, capture everything, print the runs, Listing 4's answer and
    the answers to the paper's Q1–Q12."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)
    store = store or Store()
    output_dir = Path(output_dir)
    chosen = globals()["candidates"](candidates)
    with tqdm(total=len(chosen) * epochs, desc="training", unit="epoch",
              disable=not progress) as bar:
        for candidate in chosen:
            bar.set_postfix_str(candidate.name)
            run_candidate(candidate, store=store, epochs=epochs, output_dir=output_dir,
                          on_epoch=lambda: bar.update(1))
    report(store, chosen, len(chosen), echo)


def report(store: Store, chosen: list[Candidate], executions: int,
           echo: Callable[[str], None] = print) -> None:
    """Print the story of the latest ``executions`` runs: what ran, Listing 4's answer, the
    answers to Q1–Q12 in brief (Q7–Q12 about the model Q4 chooses) and where to look next."""
    from dlprov.demo.story import tell

    tell(store, DATAFLOW, LISTING_4, executions, learning_rate=chosen[0].learning_rate,
         training_set="train.npz", echo=echo)
