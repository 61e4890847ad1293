"""The demo's model: a small PyTorch MLP trained by a plain loop."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One candidate: its preprocessing sequence and hyperparameters."""

    name: str
    normalization: str
    pca_components: int | None
    optimizer_name: str
    learning_rate: float
    hidden_units: int
    num_layers: int
    batch_size: int = 64


def build_mlp(n_inputs: int, hidden_units: int, num_layers: int, n_classes: int = 10):
    import torch.nn as nn
    layers, width = [], n_inputs
    for _ in range(num_layers - 1):
        layers += [nn.Linear(width, hidden_units), nn.ReLU()]
        width = hidden_units
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def make_optimizer(name: str, parameters, learning_rate: float):
    import torch
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


def evaluate(model, x: np.ndarray, y_onehot: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on one-hot labelled data."""
    import torch
    import torch.nn.functional as F
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        target = torch.from_numpy(y_onehot)
        loss = F.cross_entropy(logits, target).item()
        accuracy = (logits.argmax(1) == target.argmax(1)).float().mean().item()
    model.train()
    return loss, accuracy


def train(model, candidate: Candidate, train_set, val_set, epochs: int, seed: int,
          on_epoch: Callable[[dict], None]) -> None:
    """Train with mini-batches; call ``on_epoch`` with the epoch's metrics."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    x, y = torch.from_numpy(train_set[0]), torch.from_numpy(train_set[1])
    optimizer = make_optimizer(candidate.optimizer_name, model.parameters(),
                               candidate.learning_rate)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(len(x))
        total_loss, correct = 0.0, 0
        for start in range(0, len(x), candidate.batch_size):
            batch = order[start:start + candidate.batch_size]
            logits = model(x[batch])
            loss = F.cross_entropy(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (logits.argmax(1) == y[batch].argmax(1)).sum().item()
        val_loss, val_accuracy = evaluate(model, *val_set)
        on_epoch({"epoch": epoch, "loss": total_loss / len(x), "accuracy": correct / len(x),
                  "val_loss": val_loss, "val_accuracy": val_accuracy,
                  "elapsed_time": time.perf_counter() - started})
