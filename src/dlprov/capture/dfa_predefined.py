"""The DL dataflow that ``Dataflow(tag, predefined=True)`` declares, as the original DLProv did.

Plain data, turned into :class:`dlprov.capture.dfa.Transformation` objects by ``Dataflow``.
Two changes from the original, on purpose:

- ``otrain.elapsed_time`` is numeric, not text: numbers are stored as numbers.
- The metrics of ``otrain`` and ``otest`` (loss, accuracy, val_loss, val_accuracy) allow NaN/inf,
  which a diverging training produces; the original could not store them, so its examples wrote
  -9999999 instead. The run's other numbers (epoch, elapsed_time, hyperparameters) must be finite.
"""
from __future__ import annotations

TEXT, NUMERIC, FILE = "text", "numeric", "file"
NAN = True  # the attribute allows NaN/inf

# (transformation, ((set, "input" | "output", producing transformation or None, attributes), ...))
# An attribute is (name, type) or (name, type, NAN). A set passed on from its producer lists no
# attributes: it has the producer's.
PREDEFINED: tuple = (
    ("loaddata", (
        ("iinputdataset", "input", None, (("dataset_name", TEXT), ("dataset_source", TEXT))),
        ("oloaddata", "output", None, (("dataset_dir", FILE),)),
    )),
    ("applyfilter", (
        ("ifilter", "input", None, (("filter_type", TEXT),)),
        ("oloaddata", "input", "loaddata", ()),
        ("ofilter", "output", None, (("pp_dataset", FILE),)),
    )),
    ("splitdata", (
        ("ofilter", "input", "applyfilter", ()),
        ("isplitconfig", "input", None,
         (("train_size", NUMERIC), ("val_size", NUMERIC), ("test_size", NUMERIC))),
        ("otrainset", "output", None, (("trainsetx", FILE), ("trainsety", FILE))),
        ("ovalset", "output", None, (("valsetx", FILE), ("valsety", FILE))),
        ("otestset", "output", None, (("testsetx", FILE), ("testsety", FILE))),
    )),
    ("train", (
        ("otrainset", "input", "splitdata", ()),
        ("ovalset", "input", "splitdata", ()),
        ("itrain", "input", None,
         (("optimizer_name", TEXT), ("learning_rate", NUMERIC), ("num_epochs", NUMERIC),
          ("batch_size", NUMERIC), ("num_layers", NUMERIC))),
        ("otrain", "output", None,
         (("timestamp", TEXT), ("elapsed_time", NUMERIC), ("loss", NUMERIC, NAN),
          ("accuracy", NUMERIC, NAN), ("val_loss", NUMERIC, NAN),
          ("val_accuracy", NUMERIC, NAN), ("epoch", NUMERIC))),
        ("otrainedmodel", "output", None, (("model_name", TEXT), ("model_dir", FILE))),
        ("oweights", "output", None, (("weights_path", FILE),)),
    )),
    ("test", (
        ("otestset", "input", "splitdata", ()),
        ("otrainedmodel", "input", "train", ()),
        ("otest", "output", None, (("loss", NUMERIC, NAN), ("accuracy", NUMERIC, NAN))),
    )),
)
