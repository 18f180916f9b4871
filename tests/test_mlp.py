"""Tests of the torch MLP rungs: widths against budgets, divergence, determinism, precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import TaskType
from bench.preprocess import Preprocessor
from models import NotApplicable, Shape
from models.mlp import (
    BUDGET_TOLERANCE, BUDGETS, RUNGS, DivergedError, TorchMLPClassifier, TorchMLPRegressor, bfloat16_is_faster,
    is_stackable, mlp_parameter_count, solve_width,
)

INPUT_WIDTHS = (1, 4, 30, 200, 2_000, 20_000)
OUTPUT_WIDTHS = (1, 3, 20)
# Widths searched by brute force to show that NotApplicable means no width fits the budget.
MAX_SEARCHED_WIDTH = 12_000


@pytest.fixture(autouse=True)
def one_thread():
    # The project's workers train with one thread each; one thread also keeps CPU results bit-stable.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _closest_relative_error(budget: float, n_inputs: int, n_outputs: int) -> float:
    widths = np.arange(1, MAX_SEARCHED_WIDTH + 1, dtype=np.float64)
    one_layer = n_inputs * widths + widths + widths * n_outputs + n_outputs
    two_layers = one_layer + widths * widths + widths
    counts = np.concatenate([one_layer, two_layers])
    return float(np.min(np.abs(counts - budget)) / budget)


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("n_inputs", INPUT_WIDTHS)
@pytest.mark.parametrize("n_outputs", OUTPUT_WIDTHS)
def test_solve_width_within_budget_or_not_applicable(budget, n_inputs, n_outputs):
    try:
        width, n_hidden = solve_width(budget, n_inputs, n_outputs)
    except NotApplicable as error:
        assert "no MLP width comes within 5%" in str(error)
        assert _closest_relative_error(budget, n_inputs, n_outputs) > BUDGET_TOLERANCE
        return
    n_parameters = mlp_parameter_count(n_inputs, width, n_hidden, n_outputs)
    assert abs(n_parameters - budget) / budget <= BUDGET_TOLERANCE


@pytest.mark.parametrize("rung", RUNGS[:4], ids=lambda rung: rung.name)
@pytest.mark.parametrize("task, n_classes", [(TaskType.BINARY, 2), (TaskType.MULTICLASS, 5), (TaskType.REGRESSION, 0)])
def test_mlp_network_counts_match_formula(rung, task, n_classes):
    shape = Shape(task, n_features=12, n_classes=n_classes, n_samples=80)
    estimator = rung.build(shape, 0)
    network = estimator._network(shape.n_features, shape.n_outputs)
    n_parameters = sum(p.numel() for p in network.parameters())

    assert n_parameters == mlp_parameter_count(shape.n_features, estimator.width_, estimator.n_hidden_, shape.n_outputs)
    assert abs(n_parameters - rung.config["budget"]) / rung.config["budget"] <= BUDGET_TOLERANCE


def test_mlp_rung_not_applicable_for_wide_input():
    shape = Shape(TaskType.BINARY, n_features=20_000, n_classes=2, n_samples=60)
    with pytest.raises(NotApplicable, match="budget 1e\\+02 for 20000 inputs"):
        RUNGS[0].build(shape, 0)


# ---- Divergence (unscaled regression) ------------------------------------------------

@pytest.fixture
def unscaled_regression(cases_dir):
    table = pd.read_csv(cases_dir / "C21-unscaled_regression.csv")
    return table.drop(columns="yield"), table["yield"].to_numpy()


def test_mlp_unscaled_regression_finite_or_diverged(unscaled_regression):
    X, y = unscaled_regression
    estimator = TorchMLPRegressor(budget=1e3, task="regression", max_epochs=40, random_state=0)
    try:
        prediction = estimator.fit(X.to_numpy(), y).predict(X.to_numpy())
    except DivergedError as error:
        assert "diverged: non-finite" in str(error)
        assert "epoch" in str(error)
        return
    assert np.isfinite(prediction).all()


def test_mlp_unscaled_regression_large_step_diverges(unscaled_regression):
    X, y = unscaled_regression
    estimator = TorchMLPRegressor(budget=1e3, task="regression", learning_rate=1e3, max_epochs=40)
    with pytest.raises(DivergedError, match=r"diverged: non-finite (training|validation) loss at epoch 1$"):
        estimator.fit(X.to_numpy(), y)


def test_mlp_scaled_regression_finite(unscaled_regression):
    X, y = unscaled_regression
    X_scaled = Preprocessor().fit(X).transform(X)
    estimator = TorchMLPRegressor(budget=1e3, task="regression", max_epochs=40).fit(X_scaled, y)
    prediction = estimator.predict(X_scaled)

    assert np.isfinite(prediction).all()
    # The target is area / 1e4, so a fitted model explains most of its variance.
    assert np.corrcoef(prediction, y)[0, 1] > 0.9


def test_mlp_non_finite_prediction_raises():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    estimator = TorchMLPRegressor(budget=1e2, task="regression", max_epochs=5).fit(X, X[:, 0])
    with torch.no_grad():
        estimator.network_[0].weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"non-finite predictions from the weights of epoch \d+"):
        estimator.predict(X)


# ---- Determinism --------------------------------------------------------------------

@pytest.fixture
def determinism_case(cases_dir):
    table = pd.read_csv(cases_dir / "C23-determinism.csv")
    X = Preprocessor().fit(table.drop(columns="label")).transform(table.drop(columns="label"))
    return X, table["label"].to_numpy()


def _probabilities(X, y, seed: int) -> np.ndarray:
    estimator = TorchMLPClassifier(budget=1e3, task="binary", max_epochs=30, random_state=seed)
    return estimator.fit(X, y).predict_proba(X)


def test_mlp_same_seed_bit_identical_on_cpu(determinism_case):
    X, y = determinism_case
    first = _probabilities(X, y, seed=7)
    second = _probabilities(X, y, seed=7)
    assert first.tobytes() == second.tobytes()


def test_mlp_other_seed_changes_predictions(determinism_case):
    X, y = determinism_case
    assert not np.array_equal(_probabilities(X, y, seed=7), _probabilities(X, y, seed=8))


# ---- Precision and stacking ---------------------------------------------------------

def test_mlp_precision_invalid_raises():
    X = np.zeros((10, 2), dtype=np.float32)
    estimator = TorchMLPClassifier(budget=1e2, precision="float16")
    with pytest.raises(ValueError, match="precision='float16' is invalid; use one of float32, bfloat16, auto"):
        estimator.fit(X, np.arange(10) % 2)


def test_mlp_precision_auto_follows_probe():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    estimator = TorchMLPClassifier(budget=1e2, precision="auto", max_epochs=2).fit(X, X[:, 0] > 0)
    expected = "bfloat16" if bfloat16_is_faster("cpu") else "float32"
    assert estimator.precision_ == expected


def test_mlp_bfloat16_autocast_trains_finite():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    estimator = TorchMLPClassifier(budget=1e3, precision="bfloat16", max_epochs=5).fit(X, X[:, 0] > 0)
    assert estimator.precision_ == "bfloat16"
    assert np.isfinite(estimator.predict_proba(X)).all()


@pytest.mark.parametrize("rung", RUNGS, ids=lambda rung: rung.name)
def test_mlp_stackable_only_small_rungs(rung):
    assert is_stackable(rung) == (rung.config["budget"] <= 1e5)


def test_mlp_restore_best_off_keeps_last_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=80)
    options = dict(budget=1e5, task="binary", max_epochs=40, patience=40, random_state=0)
    restored = TorchMLPClassifier(**options).fit(X, y)
    last = TorchMLPClassifier(**options, restore_best=False).fit(X, y)
    assert restored.n_epochs_ == 40
    assert last.n_epochs_ == 40
    # On random labels a wide network overfits, so the validation loss bottoms out early.
    assert restored.best_epoch_ < 40
    assert not np.array_equal(restored.predict_proba(X), last.predict_proba(X))
