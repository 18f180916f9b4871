"""Tests of the metrics against sklearn.metrics oracles, and of the sign of the gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from bench.config import TaskType
from bench.metrics import EPS, NonFiniteError, score

# Our scores call sklearn.metrics themselves, so they may differ from the oracle only by float rounding.
TOLERANCE = 1e-12


def _binary_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=50)
    proba_positive = np.clip(y_true * 0.6 + rng.uniform(0, 0.4, size=50), 0, 1)
    proba = np.column_stack([1 - proba_positive, proba_positive])
    return y_true, (proba_positive > 0.5).astype(int), proba


def test_score_binary_matches_sklearn():
    y_true, prediction, proba = _binary_case()
    values, reasons = score(TaskType.BINARY, y_true, prediction, proba, n_classes=2)

    assert values["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, prediction), abs=TOLERANCE)
    assert values["balanced_accuracy"] == pytest.approx(
        metrics.balanced_accuracy_score(y_true, prediction), abs=TOLERANCE)
    assert values["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true, proba[:, 1]), abs=TOLERANCE)
    clipped = np.clip(proba, EPS, 1 - EPS)
    assert values["neg_log_loss"] == pytest.approx(-metrics.log_loss(y_true, clipped), abs=1e-9)
    assert reasons == {}


def test_score_multiclass_matches_sklearn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, size=60)
    proba = rng.dirichlet([1, 1, 1], size=60)
    prediction = proba.argmax(axis=1)
    values, reasons = score(TaskType.MULTICLASS, y_true, prediction, proba, n_classes=3)

    assert values["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, prediction), abs=TOLERANCE)
    assert values["neg_log_loss"] == pytest.approx(-metrics.log_loss(y_true, proba, labels=[0, 1, 2]), abs=1e-9)
    assert math.isnan(values["roc_auc"])
    assert reasons["roc_auc"] == "defined here for binary tasks only"


def test_score_regression_matches_sklearn():
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=30)
    prediction = y_true + rng.normal(scale=0.3, size=30)
    values, _ = score(TaskType.REGRESSION, y_true, prediction, None, n_classes=0)

    assert values["r2"] == pytest.approx(metrics.r2_score(y_true, prediction), abs=TOLERANCE)
    assert values["neg_rmse"] == pytest.approx(
        -math.sqrt(metrics.mean_squared_error(y_true, prediction)), abs=TOLERANCE)


def test_score_single_class_auc_nan_with_reason():
    y_true = np.zeros(4, dtype=int)
    proba = np.full((4, 2), 0.5)
    values, reasons = score(TaskType.BINARY, y_true, np.zeros(4, dtype=int), proba, n_classes=2)
    assert math.isnan(values["roc_auc"])
    assert reasons["roc_auc"] == "single class in y_true"


def test_score_confident_wrong_log_loss_bounded():
    values, _ = score(TaskType.BINARY, np.array([1]), np.array([0]), np.array([[1.0, 0.0]]), n_classes=2)
    assert values["neg_log_loss"] == pytest.approx(math.log(EPS), rel=1e-6)


@pytest.mark.parametrize("prediction, proba, message", [
    (np.array([0.0, np.nan]), None, "non-finite predictions"),
    (np.array([0, 1]), np.array([[0.5, 0.5], [np.inf, 0.0]]), "non-finite predicted probabilities"),
])
def test_score_non_finite_raises(prediction, proba, message):
    with pytest.raises(NonFiniteError, match=message):
        score(TaskType.BINARY, np.array([0, 1]), prediction, proba, n_classes=2)


@pytest.mark.parametrize("estimator", [KNeighborsClassifier(n_neighbors=1), DecisionTreeClassifier(random_state=0)])
def test_gap_sign_for_memorising_model(estimator):
    # Labels are pure noise: a model that memorises its training rows scores 1.0 there and
    # about 0.5 on new rows, so train_score - test_score is clearly positive.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, size=200)
    estimator.fit(X[:100], y[:100])

    train, _ = score(TaskType.BINARY, y[:100], estimator.predict(X[:100]), None, n_classes=2)
    test, _ = score(TaskType.BINARY, y[100:], estimator.predict(X[100:]), None, n_classes=2)
    gap = train["accuracy"] - test["accuracy"]

    assert train["accuracy"] == 1.0
    assert gap > 0.3
