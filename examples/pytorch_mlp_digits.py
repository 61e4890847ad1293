"""Experiment 1 of the DLProv paper, small: PyTorch MLPs on digit images with several
optimizers, learning rates and preprocessing sequences, then Q1-Q5 to choose among them.

Preprocessing (LoadData -> NormalizeData -> [ReduceDimensions] -> SplitData) is captured with
the Pythonic API; the hand-written training loop with ``dlprov.integrations.torch``, in the same
run. Digits come from scikit-learn (shipped, no download) unless ``--mnist DIR`` points at
MNIST's IDX files.

Run: ``python examples/pytorch_mlp_digits.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import dlprov  # noqa: E402
from dataset_loaders import load_mnist  # noqa: E402
from dlprov import query  # noqa: E402
from dlprov.demo.data import load_digits_arrays, normalize, reduce_dimensions, split  # noqa: E402
from dlprov.demo.training import build_mlp, make_optimizer  # noqa: E402
from dlprov.integrations.torch import track_training  # noqa: E402

DATAFLOW = "mnist"
# (optimizer, learning rate, normalisation, PCA components or None)
CANDIDATES = [("adam", 0.001, "minmax", None), ("sgd", 0.01, "minmax", None),
              ("adam", 0.001, "standard", 32), ("rmsprop", 0.001, "standard", None)]


def load(mnist: str | None, samples: int) -> tuple[np.ndarray, np.ndarray, str]:
    if mnist:
        (x, y), _ = load_mnist(mnist)
        x = x.reshape(len(x), -1)[:samples].astype(np.float32) * (16 / 255)
        return x, y[:samples].astype(np.int64), f"mnist:{mnist}"
    x, y = load_digits_arrays()
    return x[:samples], y[:samples], "sklearn.datasets.load_digits"


def run_candidate(args, optimizer_name: str, learning_rate: float, normalization: str,
                  components: int | None, workdir: Path, store=None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    with dlprov.run(DATAFLOW, store=store) as run:
        with run.task("loaddata") as load_task:
            x, y, source = load(args.mnist, args.samples)
            load_task.input("iinputdataset", dataset_name="digits", dataset_source=source)
            np.savez(workdir / "raw.npz", x=x, y=y)
            load_task.output("oloaddata", dataset_dir=workdir / "raw.npz")
        previous = load_task
        with run.task("normalizedata", depends_on=previous) as norm:
            norm.input("inormalizedata", method=normalization)
            x = normalize(x, normalization)
            np.savez(workdir / "normalized.npz", x=x, y=y)
            norm.output("onormalizedata", dataset_dir=workdir / "normalized.npz")
        previous = norm
        if components:
            with run.task("reducedimensions", depends_on=previous) as pca:
                pca.input("ireducedimensions", n_components=components)
                x = reduce_dimensions(x, components, seed=0)
                np.savez(workdir / "reduced.npz", x=x, y=y)
                pca.output("oreducedimensions", dataset_dir=workdir / "reduced.npz")
            previous = pca
        with run.task("splitdata", depends_on=previous) as split_task:
            split_task.input("isplitconfig", train_size=0.6, val_size=0.2, test_size=0.2)
            (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(x, y, (0.6, 0.2, 0.2), 0)
            for name, (px, py) in (("otrainset", (x_train, y_train)), ("ovalset", (x_val, y_val)),
                                   ("otestset", (x_test, y_test))):
                np.savez(workdir / f"{name}.npz", x=px, y=py)
                split_task.output(name, dataset_dir=workdir / f"{name}.npz", n_samples=len(px))

        torch.manual_seed(0)
        model = build_mlp(x.shape[1], 64, 2)
        optimizer = make_optimizer(optimizer_name, model.parameters(), learning_rate)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        with track_training(run=run, model=model, optimizer=optimizer, epochs=args.epochs,
                            batch_size=32, depends_on=[split_task],
                            uses=["otrainset", "ovalset"]) as log:
            for epoch in range(1, args.epochs + 1):
                for start in range(0, len(xt), 32):
                    loss = F.cross_entropy(model(xt[start:start + 32]), yt[start:start + 32])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                log.epoch_end(epoch, loss=loss, accuracy=_accuracy(model, x_train, y_train),
                              val_accuracy=_accuracy(model, x_val, y_val))
            log.save_model(workdir / "model.pt", name=f"mlp-{optimizer_name}-{learning_rate}"
                                                      f"-{normalization}-{components}")
            log.test(accuracy=_accuracy(model, x_test, y_test))


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean().item()


def main(argv: list[str] | None = None, store=None) -> dict[str, dlprov.QueryResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1797)
    parser.add_argument("--output-dir", default="mlp-output")
    parser.add_argument("--mnist", metavar="DIR", help="MNIST IDX files (no download)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for i, candidate in enumerate(CANDIDATES):
        run_candidate(args, *candidate, Path(args.output_dir) / f"candidate-{i}", store)
    answers = {
        "q1": query.q1(0.001, store=store, dataflow=DATAFLOW),
        "q2": query.q2(learning_rate=0.001, batch_size=32, store=store, dataflow=DATAFLOW),
        "q3": query.q3(store=store, dataflow=DATAFLOW),
        "q4": query.q4(store=store, dataflow=DATAFLOW),
        "q5": query.q5(store=store, dataflow=DATAFLOW),
    }
    for name, result in answers.items():
        print(f"\n{name.upper()}:")
        for row in result.records()[:6]:
            print("  ", row)
    return answers


if __name__ == "__main__":
    main()
