"""The rung of the ladder: a named model, its family and its counting rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import train_test_split

from bench.config import TaskType


@dataclass(frozen=True)
class Shape:
    """The shape of the training data a model is built for."""

    task: TaskType
    n_features: int
    n_classes: int
    n_samples: int

    @property
    def n_outputs(self) -> int:
        """Return the output width of a network: 1 for regression and binary, else the classes."""
        if self.task is TaskType.MULTICLASS:
            return self.n_classes
        return 1


@dataclass
class ParameterCount:
    """Parameters of a fitted model: the raw count, an effective count where defined, and details."""

    n_parameters: int
    n_effective_parameters: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class NotApplicable(Exception):
    """Raised by a rung's builder when the model does not apply to this task or shape."""


@dataclass(frozen=True)
class Rung:
    """One model on the ladder.

    Args:
        build: returns an unfitted estimator for a shape and a seed; raises NotApplicable
            when the model does not apply.
        count: returns the ParameterCount of the fitted estimator, given the
            preprocessed training matrix it was fitted on.
        estimate: returns the expected raw parameter count for a shape before training.
        flops_per_sample_epoch: training cost in floating-point operations per sample and epoch;
            only set for gradient-trained networks, whose runs are gated by the compute budget.
    """

    name: str
    family: str
    build: Callable[[Shape, int], Any]
    count: Callable[[Any, Shape, Any], ParameterCount]
    estimate: Callable[[Shape], float]
    config: dict[str, Any] = field(default_factory=dict)
    flops_per_sample_epoch: Callable[[Shape], float] | None = None


def estimator_rung(
    name: str,
    family: str,
    estimator: Any,
    count: Callable[[Any, Any], int | ParameterCount],
    estimate: Callable[[Shape], float] | float,
    config: dict[str, Any] | None = None,
) -> Rung:
    """Return a rung that fits a clone of any scikit-learn estimator.

    Args:
        estimator: an unfitted estimator, cloned for every run and given
            `random_state=seed` when it has that parameter. A classifier raises
            NotApplicable on regression tasks and a regressor on classification tasks.
        count: returns the raw parameter count, or a full ParameterCount, of the fitted
            estimator given the training matrix X. Its rule belongs in the COUNTING_RULE
            of the family module whose RUNGS list the new rung.
        estimate: expected raw parameter count for a shape, or a constant.

    Example:
        estimator_rung("lda_svd", "discriminant", LinearDiscriminantAnalysis(),
                       count=lambda fitted, X: fitted.coef_.size + fitted.intercept_.size,
                       estimate=lambda shape: shape.n_features + 1)
    """
    def build(shape: Shape, seed: int):
        if shape.task.is_classification and is_regressor(estimator):
            raise NotApplicable(f"{type(estimator).__name__} is a regressor, but this task is {shape.task.value}")
        if not shape.task.is_classification and is_classifier(estimator):
            raise NotApplicable(f"{type(estimator).__name__} is a classifier, but this task is regression")
        fresh = clone(estimator)
        if "random_state" in fresh.get_params(deep=False):
            fresh.set_params(random_state=seed)
        return fresh

    def count_fitted(fitted, shape: Shape, X) -> ParameterCount:
        counted = count(fitted, X)
        if isinstance(counted, ParameterCount):
            return counted
        return ParameterCount(int(counted))

    estimate_for_shape = estimate if callable(estimate) else (lambda shape: float(estimate))
    params = {k: v for k, v in estimator.get_params(deep=False).items() if isinstance(v, (int, float, str, bool))}
    return Rung(name, family, build, count_fitted, estimate=estimate_for_shape,
                config={"estimator": type(estimator).__name__, **params, **(config or {})})


def split_validation(target: np.ndarray, is_classification: bool, validation_fraction: float, random_state: int,
                     min_fit_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (fit, validation) row indices that cut a seeded validation part from training data.

    The cut is stratified when every class has 2 samples and the validation part has room for
    one sample of each class. Otherwise it is a plain random cut.
    """
    n_validation = max(1, int(round(validation_fraction * len(target))))
    if len(target) - n_validation < min_fit_samples:
        raise ValueError(
            f"too few training samples ({len(target)}) to cut a validation part of {n_validation} "
            f"and keep {min_fit_samples} to fit; use at least {n_validation + min_fit_samples} samples"
        )
    stratify = None
    if is_classification:
        _, counts = np.unique(target, return_counts=True)
        if counts.min() >= 2 and n_validation >= len(counts):
            stratify = target
    fit_index, validation_index = train_test_split(
        np.arange(len(target)), test_size=n_validation, random_state=random_state, stratify=stratify
    )
    return np.sort(fit_index), np.sort(validation_index)
