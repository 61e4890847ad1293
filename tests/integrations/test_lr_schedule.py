"""The learning rate of every epoch is recorded in ``otrain`` as ``lr`` by each integration,
following a scheduler; ``itrain`` holds the starting rate once, as ``learning_rate``. Tiny real
trainings on CPU into real SQLite stores."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

from dlprov.integrations.torch import track_training

QUIET = {"capture_environment": False}


def columns(sql, set_tag: str) -> set[str]:
    return {name for _, name, *_ in sql(f'PRAGMA table_info("mnist__{set_tag}")')}


def rates(sql) -> list[float]:
    return [round(rate, 6) for (rate,) in sql("SELECT lr FROM mnist__otrain ORDER BY epoch")]


def test_torch_loop_records_a_step_lr_schedule(store_path, sql) -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with track_training("mnist", model=model, optimizer=optimizer, **QUIET) as log:
        for epoch in range(4):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            log.epoch_end(epoch, loss=loss)  # before the scheduler's step: this epoch's rate
            scheduler.step()
    assert rates(sql) == [0.1, 0.1, 0.05, 0.05]
    assert sql("SELECT learning_rate FROM mnist__itrain") == [(0.1,)]
    assert "lr" not in columns(sql, "itrain")


def test_torch_epoch_start_reads_the_rate_whenever_the_scheduler_steps(store_path, sql) -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    with track_training("mnist", model=model, optimizer=optimizer, **QUIET) as log:
        for epoch in range(3):
            log.epoch_start(epoch)
            optimizer.step()
            scheduler.step()  # before epoch_end: the rate read at epoch_start is kept
            log.epoch_end(epoch, loss=1.0)
    assert rates(sql) == [1.0, 0.1, 0.01]


def test_a_metric_named_lr_is_kept_as_given(store_path, sql) -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with track_training("mnist", model=model, optimizer=optimizer, **QUIET) as log:
        log.epoch_end(0, loss=1.0, lr=0.5)
    assert rates(sql) == [0.5]


def test_lightning_records_a_step_lr_schedule(store_path, sql, tmp_path) -> None:
    pytest.importorskip("lightning.pytorch")
    from dlprov.integrations.lightning import ProvenanceCallback
    from tests.integrations.test_lightning import Classifier, Data, trainer

    class Scheduled(Classifier):
        def on_train_epoch_end(self) -> None:  # no "lr" of its own: the callback's is kept
            pass

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)
            return {"optimizer": optimizer,
                    "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 2, gamma=0.1)}

    callback = ProvenanceCallback("mnist", save_model=False, **QUIET)
    trainer(callback, epochs=4).fit(Scheduled(learning_rate=0.1), Data(batch_size=16))
    callback.close()
    assert rates(sql) == [0.1, 0.1, 0.01, 0.01]
    assert sql("SELECT learning_rate FROM mnist__itrain") == [(0.1,)]


def test_lightning_lr_hyperparameter_is_learning_rate(store_path, sql) -> None:
    pytest.importorskip("lightning.pytorch")
    from dlprov.integrations.lightning import ProvenanceCallback
    from tests.integrations.test_lightning import Classifier, Data, trainer

    class WithLr(Classifier):
        def __init__(self, lr: float = 0.2) -> None:
            super().__init__(learning_rate=lr)
            self.save_hyperparameters()

    callback = ProvenanceCallback("mnist", save_model=False, **QUIET)
    trainer(callback, epochs=1).fit(WithLr(), Data(batch_size=16))
    callback.close()
    assert "lr" not in columns(sql, "itrain")
    assert sql("SELECT learning_rate FROM mnist__itrain") == [(0.2,)]


def test_keras_records_a_learning_rate_scheduler(store_path, sql) -> None:
    keras = pytest.importorskip("keras")
    from dlprov.integrations.keras import ProvenanceCallback

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4), dtype=np.float32), rng.integers(0, 3, 16)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / 10 ** (epoch // 2))
    with ProvenanceCallback("mnist", save_model=False, **QUIET) as callback:
        # ours first: the scheduler sets the rate after our on_epoch_begin
        model.fit(x, y, epochs=4, verbose=0, callbacks=[callback, schedule])
    assert rates(sql) == [0.1, 0.1, 0.01, 0.01]
    assert "learning_rate" not in columns(sql, "otrain")  # Keras' log entry: not a second name
    assert sql("SELECT learning_rate FROM mnist__itrain") == [(0.1,)]
    assert "accuracy" in columns(sql, "otrain")


def test_conventional_names_let_the_papers_questions_answer(store_path, sql, tmp_path) -> None:
    """Lightning modules log test_acc/test_loss: the same values are also recorded as otest's
    accuracy and loss, which Q4 asks about by default; nothing else is invented."""
    pytest.importorskip("lightning.pytorch")
    from dlprov.integrations.lightning import ProvenanceCallback
    from tests.integrations.test_lightning import Classifier, Data, trainer

    from dlprov.query import q4
    from tests.integrations.test_lightning import loader

    callback = ProvenanceCallback("mnist", model_dir=tmp_path / "models", **QUIET)
    model = Classifier()
    fitter = trainer(callback, epochs=1)
    fitter.fit(model, Data(batch_size=16))
    fitter.test(model, loader(2), verbose=False)
    ((accuracy, test_acc, loss, test_loss),) = sql(
        "SELECT accuracy, test_acc, loss, test_loss FROM mnist__otest")
    assert (accuracy, loss) == (test_acc, test_loss)
    assert "accuracy" not in columns(sql, "otrain")  # train/acc@1 is no conventional alias
    (best,) = q4().records()
    assert best["test_accuracy"] == accuracy
