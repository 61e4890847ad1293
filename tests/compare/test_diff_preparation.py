"""B's data was prepared with an extra step: the first divergence is that step, on SQLite,
PostgreSQL and a dlprov server alike."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

import dlprov
from dlprov.compare import diff
from tests.paper_stores import fresh_postgresql_database

RAW = pd.DataFrame({"rooms": [3, 4, None, 2, 5, 3, 40],
                    "area": [70.0, 95.0, 80.0, 45.0, 130.0, 60.0, 900.0]})


@dlprov.step("dropna")
def drop_missing(df, how="any"):
    return df.dropna(how=how)


@dlprov.step("clipoutliers")
def clip(df, upper=200.0):
    return df.clip(upper=upper)


@dlprov.step("normalizedata")
def normalize(df, method="minmax"):
    return (df - df.min()) / (df.max() - df.min())


def _train(store: str, name: str, extra_step: bool, learning_rate: float = 0.01) -> None:
    with dlprov.run("housing", store=store, capture_environment=False) as run, \
            dlprov.use_run(run):
        df = drop_missing(RAW)
        if extra_step:
            df = clip(df)
        features = normalize(df)
        with dlprov.prepare("train", features, params={"learning_rate": learning_rate}) as step:
            for epoch in (1, 2):
                step.task.output("otrain", epoch=epoch, loss=float(features.sum().sum()) / epoch)
            np.save(f"{name}.npy", features.to_numpy())
            step.task.model(f"{name}.npy", name=name)


@contextmanager
def _store(backend: str, tmp_path) -> Iterator[str]:
    if backend == "sqlite":
        yield str(tmp_path / "prep.db")
    else:  # a database of its own: the dataflow "housing" is a schema of the whole database
        with fresh_postgresql_database() as url:
            yield url


def _check(found: dict) -> None:
    assert [r["name"] for r in found["sections"]["hyperparameters"]
            if r["status"] != "same"] == []
    [divergence] = found["divergence"]
    assert divergence["set"] == "onormalizedata" and divergence["first"] == "clipoutliers"
    assert divergence["text"] == ("train used onormalizedata different ← normalizedata same "
                                  "parameters, uses oclipoutliers only in B ← clipoutliers "
                                  "only in B")
    steps = {r["name"]: r["status"] for r in found["sections"]["preparation"]}
    assert steps == {"dropna": "same", "normalizedata": "changed", "clipoutliers": "only in B"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_extra_step_is_the_first_divergence(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with _store(backend, tmp_path) as store:
        _train(store, "plain", extra_step=False)
        _train(store, "clipped", extra_step=True)
        _check(diff("plain", "clipped", store=store))
        # a changed parameter of a step is a divergence too
        assert diff("plain", "plain", store=store)["identical"]


def test_server_store_gives_the_same_diff(tmp_path, monkeypatch):
    pytest.importorskip("uvicorn")
    from dlprov.errors import NotFound
    from dlprov.server.background import serve_in_thread
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "served.db")
    _train(store, "plain", extra_step=False)
    _train(store, "clipped", extra_step=True)
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(store) as url:
        found = diff("plain", "clipped", store=url)
        with pytest.raises(NotFound, match="knows no model 'nothing'"):
            diff("plain", "nothing", store=url)
    _check(found)
    assert found["sections"] == diff("plain", "clipped", store=store)["sections"]

