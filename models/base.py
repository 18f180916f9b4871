"""What every rung of the ladder is: a named model, its family and its counting rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
