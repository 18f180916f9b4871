"""Scores of a fitted model on one part of a split, all oriented higher-is-better."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn import metrics

from bench.config import TaskType

# The primary metric per task type; train_score, test_score and gap use it.
PRIMARY_METRIC = {
    TaskType.BINARY: "accuracy",
    TaskType.MULTICLASS: "accuracy",
    TaskType.REGRESSION: "r2",
}
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "neg_log_loss", "roc_auc")
REGRESSION_METRICS = ("r2", "neg_rmse")
# Probabilities are clipped to [EPS, 1 - EPS] before the log loss, so a
# confident wrong answer costs at most -log(EPS) = 34.5 nats.
EPS = 1e-15


class NonFiniteError(FloatingPointError):
    """Raised when a model predicts NaN or infinity."""


def metric_names(task: TaskType) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task.is_classification else REGRESSION_METRICS


def score(task: TaskType, y_true: np.ndarray, prediction: np.ndarray, proba: np.ndarray | None, n_classes: int) -> tuple[dict[str, float], dict[str, str]]:
    """Return every metric of the task, and the reason for each one that is NaN.

    For classification `y_true` and `prediction` are class codes 0..n_classes-1 and
    `proba` has one column per class code.
    """
    if not np.all(np.isfinite(prediction if prediction.dtype.kind == "f" else prediction.astype(float))):
        raise NonFiniteError("non-finite predictions")
    if proba is not None and not np.all(np.isfinite(proba)):
        raise NonFiniteError("non-finite predicted probabilities")

    if not task.is_classification:
        return {
            "r2": float(metrics.r2_score(y_true, prediction)) if len(y_true) > 1 else math.nan,
            "neg_rmse": -float(np.sqrt(metrics.mean_squared_error(y_true, prediction))),
        }, ({} if len(y_true) > 1 else {"r2": "fewer than 2 samples"})

    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    values["accuracy"] = float(metrics.accuracy_score(y_true, prediction))
    with warnings.catch_warnings():
        # A test part without some class triggers "y_pred contains classes not in y_true".
        warnings.simplefilter("ignore", UserWarning)
        values["balanced_accuracy"] = float(metrics.balanced_accuracy_score(y_true, prediction))
    if proba is None:
        values["neg_log_loss"] = math.nan
        reasons["neg_log_loss"] = "model has no predict_proba"
    else:
        clipped = np.clip(proba, EPS, 1 - EPS)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        values["neg_log_loss"] = -float(metrics.log_loss(y_true, clipped, labels=np.arange(n_classes)))

    values["roc_auc"] = math.nan
    if task is not TaskType.BINARY:
        reasons["roc_auc"] = "defined here for binary tasks only"
    elif len(np.unique(y_true)) < 2:
        reasons["roc_auc"] = "single class in y_true"
    elif proba is None:
        reasons["roc_auc"] = "model has no predict_proba"
    else:
        values["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
    return values, reasons
