"""scikit-learn transformers and Pipelines as preprocessing steps, recognised by duck typing
(scikit-learn is never imported here).

Each ``fit_transform``/``transform`` of a transformer is a task whose parameters are the
estimator's class and its plain ``get_params(deep=False)``. A Pipeline's steps are one task
each, in order, each using what the one before produced: the chain Q12 shows. They are fitted
in place, one after the other, as ``Pipeline.fit_transform`` does when it caches nothing, so
the Pipeline is fitted afterwards.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dlprov.capture.datasets import DEFAULT_LIMITS, Limits
from dlprov.capture.parameters import NOT_PLAIN, plain
from dlprov.capture.steps import Step, datasets_in, set_names
from dlprov.model.names import attribute_name
from dlprov.model.names import check_name

if TYPE_CHECKING:
    from dlprov.capture.run import Run

_MAX_GENERATED_NAME = 40  # room for the sets' i...dataset around a generated step name


def is_estimator(obj: Any) -> bool:
    """A scikit-learn-style transformer (an instance with get_params and a transform)."""
    return (not isinstance(obj, type) and callable(getattr(obj, "get_params", None))
            and (hasattr(obj, "fit_transform") or hasattr(obj, "transform")))


def is_pipeline(obj: Any) -> bool:
    return is_estimator(obj) and isinstance(getattr(obj, "steps", None), list)


def transformation_name(raw: str) -> str:
    """A Pipeline step's or an estimator class's name as a transformation name."""
    return attribute_name(raw)[:_MAX_GENERATED_NAME].rstrip("_")


class Transformer:
    """A transformer or Pipeline whose ``fit_transform`` and ``transform`` are recorded. Made by
    ``dlprov.step(estimator, ...)``; ``.estimator`` is the wrapped object."""

    def __init__(self, estimator: Any, name: str | None = None, *, run: "Run | None" = None,
                 outputs: Any = None, params_set: str | None = None,
                 inputs_set: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        if is_pipeline(estimator) and (outputs or params_set or inputs_set):
            raise ValueError("outputs, params_set and inputs_set name the sets of one task; a "
                             "Pipeline makes one task per step, named after the step")
        self.estimator = estimator
        self.name = None if name is None else check_name("transformation", name)
        self.run = run
        self.outputs = outputs
        self.params_set, self.inputs_set, self.limits = params_set, inputs_set, limits
        for transformation, _, _ in self.stages():
            set_names(transformation, params_set, inputs_set)  # refuse bad names now

    def stages(self) -> list[tuple[str, Any, str]]:
        """(transformation, estimator, fit-parameter prefix) of each task a call makes."""
        return list(_stages(self.estimator, self.name, ""))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit and transform ``X``, each Pipeline step as a task of its own."""
        return self._apply("fit_transform", X, y, fit_params)

    def transform(self, X: Any) -> Any:
        """Transform ``X`` with the fitted estimator, each Pipeline step as a task of its own."""
        return self._apply("transform", X, None, {})

    def _apply(self, method: str, X: Any, y: Any, fit_params: Mapping[str, Any]) -> Any:
        stages = self.stages()
        routed: dict[str, dict[str, Any]] = {prefix: {} for _, _, prefix in stages}
        for key, value in fit_params.items():
            prefix = next((p for p in routed if key.startswith(p) and "__" not in key[len(p):]),
                          None)
            if prefix is None:
                raise ValueError(f"fit parameter {key!r} names no step of the Pipeline: give "
                                 f"it as <step>__<parameter>")
            routed[prefix][key[len(prefix):]] = value
        for transformation, estimator, prefix in stages:
            X = self._stage(transformation, estimator, method, X, y, routed[prefix])
        return X

    def _stage(self, transformation: str, estimator: Any, method: str, X: Any, y: Any,
               fit_params: dict[str, Any]) -> Any:
        cls = type(estimator)
        params: dict[str, Any] = {"estimator": f"{cls.__module__}.{cls.__qualname__}"}
        for key, value in estimator.get_params(deep=False).items():
            value = plain(value)
            if value is not NOT_PLAIN and key != "estimator":
                params[key] = value
        inputs = list(datasets_in(X, "X"))
        if method == "fit_transform":
            if y is not None:
                inputs += datasets_in(y, "y")
            for key, value in fit_params.items():
                inputs += datasets_in(value, key)
        with Step(transformation, inputs, params, run=self.run, params_set=self.params_set,
                  inputs_set=self.inputs_set, limits=self.limits) as step:
            if method == "transform":
                result = estimator.transform(X)
            elif hasattr(estimator, "fit_transform"):
                result = estimator.fit_transform(X, y, **fit_params)
            else:
                result = estimator.fit(X, y, **fit_params).transform(X)
            step.outputs(result, self.outputs)
        return result

    def __repr__(self) -> str:
        return f"<dlprov Transformer {[t for t, _, _ in self.stages()]}: {self.estimator!r}>"


def _stages(estimator: Any, name: str | None, prefix: str) -> Iterator[tuple[str, Any, str]]:
    if not is_pipeline(estimator):
        yield name or transformation_name(type(estimator).__name__), estimator, prefix
        return
    for step_name, sub in estimator.steps:
        if sub is None or isinstance(sub, str):  # "passthrough", "drop"
            continue
        label = transformation_name(step_name)
        yield from _stages(sub, f"{name}_{label}" if name else label, f"{prefix}{step_name}__")
