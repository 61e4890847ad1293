"""Experiment 2 of the DLProv paper, small: a Keras residual CNN on CIFAR-like images, then
Q7-Q12 for the model chosen for deployment.

LoadData -> NormalizeData -> OneHotEncoding -> SplitData are captured with the Pythonic API;
training and evaluation with the Keras integration, in the same run, so the model's derivation
trace reaches back to the raw input (oonehotdataset <- onehotencoding <- onormalizedata <-
normalizedata <- iinputdataset). Images are generated (no download) unless ``--cifar100 DIR``
points at CIFAR-100's python files.

Run: ``KERAS_BACKEND=torch python examples/keras_resnet_cifar.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import dlprov  # noqa: E402
from dlprov.integrations.keras import ProvenanceCallback  # noqa: E402
from dataset_loaders import load_cifar100, synthetic_images  # noqa: E402

DATAFLOW = "cifar"
CLASSES = 4


def residual_cnn(input_shape, classes: int, filters: int, blocks: int):
    """A ResNet-style stand-in for ResNet50: a stem, residual blocks, global pooling."""
    import keras
    from keras import layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    for _ in range(blocks):
        y = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x), name="resnet_s")


def load(args) -> tuple[np.ndarray, np.ndarray, str]:
    if args.cifar100:
        (x, y), _ = load_cifar100(args.cifar100, label="coarse")
        keep = y < CLASSES
        return x[keep][:args.samples], y[keep][:args.samples], f"cifar100:{args.cifar100}"
    x, y = synthetic_images(args.samples, CLASSES, seed=1)
    return x, y, "generated:synthetic_images"


def train_candidate(args, learning_rate: float, filters: int, workdir: Path, store=None) -> str:
    import keras
    with dlprov.run(DATAFLOW, store=store) as run:
        with run.task("loaddata") as load_task:
            x, y, source = load(args)
            load_task.input("iinputdataset", dataset_name="cifar-like", dataset_source=source)
            raw = workdir / "raw.npz"
            np.savez(raw, x=x, y=y)
            load_task.output("oloaddata", dataset_dir=raw, n_samples=len(x))
        with run.task("normalizedata", depends_on=load_task) as norm:
            x = x.astype("float32") / 255.0
            norm.input("inormalizedata", method="divide_by_255")
            path = workdir / "normalized.npz"
            np.savez(path, x=x, y=y)
            norm.output("onormalizedata", dataset_dir=path)
        with run.task("onehotencoding", depends_on=norm) as onehot:
            y = np.eye(CLASSES, dtype="float32")[y]
            path = workdir / "onehot.npz"
            np.savez(path, x=x, y=y)
            onehot.output("oonehotdataset", dataset_dir=path, n_classes=CLASSES)
        with run.task("splitdata", depends_on=onehot) as split:
            cut = int(0.8 * len(x))
            split.input("isplitconfig", train_size=0.8, test_size=0.2)
            paths = {}
            for name, part in (("train", slice(None, cut)), ("test", slice(cut, None))):
                paths[name] = workdir / f"{name}.npz"
                np.savez(paths[name], x=x[part], y=y[part])
            split.output("otrainset", dataset_dir=paths["train"], n_samples=cut)
            split.output("otestset", dataset_dir=paths["test"], n_samples=len(x) - cut)

        keras.utils.set_random_seed(0)
        model = residual_cnn(x.shape[1:], CLASSES, filters, blocks=1)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        callback = ProvenanceCallback(run=run, depends_on=[split], uses=["otrainset"],
                                      model_dir=str(workdir / "models"),
                                      extra_hyperparameters={"filters": filters})
        with callback:
            model.fit(x[:cut], y[:cut], epochs=args.epochs, batch_size=32,
                      validation_split=0.2, callbacks=[callback], verbose=0)
            model.evaluate(x[cut:], y[cut:], callbacks=[callback], verbose=0)
    return run.exec_tag


def main(argv: list[str] | None = None, store=None) -> dict[str, dlprov.QueryResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output-dir", default="keras-output")
    parser.add_argument("--cifar100", metavar="DIR", help="CIFAR-100 python files (no download)")
    args = parser.parse_args(argv)
    for i, (learning_rate, filters) in enumerate([(1e-3, 8), (3e-3, 8), (3e-3, 16)]):
        workdir = Path(args.output_dir) / f"candidate-{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        train_candidate(args, learning_rate, filters, workdir, store)

    from dlprov import query
    best = query.q4(store=store, dataflow=DATAFLOW).records()[0]
    [model] = [m for m in dlprov.sql(
        "SELECT model_id FROM otrainedmodel WHERE train_task_id = :task",
        store=store, dataflow=DATAFLOW, params={"task": best["train_task_id"]}).rows[0]]
    print(f"Selected for deployment: model {model} (highest test accuracy)")
    answers = {}
    for name in ("q7", "q8", "q9", "q10", "q11", "q12"):
        answers[name] = getattr(query, name)(model, store=store, dataflow=DATAFLOW)
        print(f"\n{name.upper()}:")
        for row in answers[name].records()[:8]:
            print("  ", row)
    return answers


if __name__ == "__main__":
    main()
