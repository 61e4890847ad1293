"""Describing a trained model object without importing its framework (duck typing)."""
from __future__ import annotations

from typing import Any


def framework_of(model: Any) -> str | None:
    """``torch``, ``keras``, ``sklearn``, ... from the model's class module."""
    if model is None:
        return None
    root = type(model).__module__.split(".")[0]
    return {"lightning": "lightning", "pytorch_lightning": "lightning", "tf_keras": "keras",
            "deepxde": "deepxde"}.get(root, root)


def parameter_count(model: Any) -> int | None:
    """Trainable and frozen parameters of a PyTorch, Keras or DeepXDE model."""
    if model is None:
        return None
    net = getattr(model, "net", None)  # deepxde.Model wraps its network
    if net is not None and framework_of(model) == "deepxde":
        model = net
    count_params = getattr(model, "count_params", None)
    if callable(count_params):
        try:
            return int(count_params())
        except Exception:  # noqa: BLE001 - an unbuilt Keras model cannot count yet
            return None
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        return int(sum(p.numel() for p in parameters()))
    return None


def layer_count(model: Any) -> int | None:
    """Keras: ``len(model.layers)``; PyTorch: modules holding weights of their own (Linear,
    Conv2d, ...; not ReLU or containers)."""
    if model is None:
        return None
    net = getattr(model, "net", None)
    if net is not None and framework_of(model) == "deepxde":
        model = net
    layers = getattr(model, "layers", None)
    if isinstance(layers, (list, tuple)) and framework_of(model) == "keras":
        return len(layers)
    modules = getattr(model, "modules", None)
    if callable(modules):
        return sum(1 for m in modules() if any(True for _ in m.parameters(recurse=False)))
    if isinstance(layers, (list, tuple)):
        return len(layers)
    return None
