"""Constant baseline: the class frequencies or the mean of the training target."""

from __future__ import annotations

from sklearn.dummy import DummyClassifier, DummyRegressor

from models.base import ParameterCount, Rung, Shape

COUNTING_RULE = (
    "constant: classification stores the class frequencies of the training part, which sum to 1, "
    "so n_parameters = n_classes - 1; regression stores the training mean, n_parameters = 1"
)


def build(shape: Shape, seed: int):
    if shape.task.is_classification:
        return DummyClassifier(strategy="prior")
    return DummyRegressor(strategy="mean")


def count(estimator, shape: Shape, X) -> ParameterCount:
    return ParameterCount(n_parameters=_count(shape))


def _count(shape: Shape) -> int:
    return shape.n_classes - 1 if shape.task.is_classification else 1


RUNGS = [
    Rung("constant", "baseline", build, count, estimate=lambda shape: _count(shape), config={"strategy": "prior|mean"}),
]
