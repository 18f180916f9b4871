"""Effective dimension estimators on simulated data whose dimension is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.config import TaskType, load_config
from bench.data import load_dataset
from bench.dimension import (
    covariance_eigenvalues,
    dataset_dimension,
    estimate_dimension,
    gavish_donoho_lambda,
    gavish_donoho_omega,
    hard_threshold_rank,
    lasso_feature_count,
    n_components_for_variance,
    participation_ratio,
    participation_ratio_corrected,
)
from bench.simulate import SimulationSpec, simulate, true_participation_ratio


def _subspace_data(n_samples: int, n_features: int, rank: int, noise: float, seed: int = 0) -> np.ndarray:
    """Return samples spread equally over a random `rank`-dimensional subspace, plus white noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((n_features, rank)))[0].T
    signal = 3.0 * rng.standard_normal((n_samples, rank)) @ basis
    return signal + noise * rng.standard_normal((n_samples, n_features))


def test_eigenvalues_match_covariance_spectrum():
    X = _subspace_data(30, 12, 4, 0.5)
    expected = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    computed = covariance_eigenvalues(X)
    np.testing.assert_allclose(computed, expected[: len(computed)], rtol=1e-9)
    assert len(computed) == 12


def test_participation_ratio_equal_eigenvalues():
    assert participation_ratio(np.ones(7)) == pytest.approx(7.0)
    assert participation_ratio(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert participation_ratio(np.zeros(3)) == 0.0


@pytest.mark.parametrize("n_samples, n_features, rank", [(40, 2000, 10), (60, 500, 30)])
def test_participation_ratio_corrected_reduces_bias(n_samples, n_features, rank):
    # An equal-variance subspace of dimension `rank` has participation ratio `rank`.
    estimates_plain, estimates_corrected = [], []
    for seed in range(5):
        X = _subspace_data(n_samples, n_features, rank, noise=0.0, seed=seed)
        estimates_plain.append(participation_ratio(covariance_eigenvalues(X)))
        estimates_corrected.append(participation_ratio_corrected(X))
    plain, corrected = np.mean(estimates_plain), np.mean(estimates_corrected)
    assert plain < 0.8 * rank
    assert abs(corrected - rank) < 0.15 * rank


def test_participation_ratio_corrected_on_blocks():
    spec = SimulationSpec(n_samples=80, n_features=600, n_informative=3, block_size=20, correlation=0.7, seed=1)
    X = simulate(spec).X.to_numpy()
    truth = true_participation_ratio(spec)
    assert abs(participation_ratio_corrected(X) - truth) < 0.2 * truth
    assert participation_ratio(covariance_eigenvalues(X)) < truth


def test_gavish_donoho_constants():
    assert gavish_donoho_omega(1.0) == pytest.approx(2.86, abs=0.01)
    assert gavish_donoho_lambda(1.0) == pytest.approx(4 / math.sqrt(3), rel=1e-12)
    # For beta -> 0 the known-noise factor tends to sqrt(2) (1 + beta)^(1/2) -> sqrt(2).
    assert gavish_donoho_lambda(1e-9) == pytest.approx(math.sqrt(2), rel=1e-6)


@pytest.mark.parametrize("beta", [0.0, -0.1, 1.5])
def test_gavish_donoho_omega_invalid_beta(beta):
    with pytest.raises(ValueError, match=r"beta=.* is invalid"):
        gavish_donoho_omega(beta)


@pytest.mark.parametrize("n_samples, n_features, rank", [(40, 2000, 10), (100, 300, 5), (60, 500, 30)])
def test_hard_threshold_rank_recovers_planted_rank(n_samples, n_features, rank):
    X = _subspace_data(n_samples, n_features, rank, noise=0.1)
    assert hard_threshold_rank(X, noise_sigma=0.1) == rank


@pytest.mark.parametrize("n_samples, n_features, rank", [(40, 2000, 5), (100, 300, 5), (100, 2000, 20)])
def test_hard_threshold_rank_unknown_noise(n_samples, n_features, rank):
    # The median singular value serves as the noise estimate, and with rank at most a quarter
    # of min(n, p) the estimate is within 20 % of the planted rank.
    X = _subspace_data(n_samples, n_features, rank, noise=0.1)
    assert abs(hard_threshold_rank(X) - rank) <= max(1, 0.2 * rank)


def test_hard_threshold_rank_unknown_noise_high_rank_underestimates():
    # Rank 30 of at most 59 non-zero singular values pushes the median, and so the threshold, up.
    X = _subspace_data(60, 500, 30, noise=0.1)
    assert hard_threshold_rank(X) < 30


def test_n_components_for_variance_counts():
    assert n_components_for_variance(np.array([5.0, 3.0, 1.0, 1.0]), 0.9) == 3
    assert n_components_for_variance(np.array([5.0, 3.0, 1.0, 1.0]), 0.8) == 2
    assert n_components_for_variance(np.array([1.0, 1.0, 1.0, 1.0]), 1.0) == 4
    with pytest.raises(ValueError, match=r"share=1.5 is invalid"):
        n_components_for_variance(np.ones(3), 1.5)


@pytest.mark.parametrize("task", [TaskType.REGRESSION, TaskType.BINARY])
def test_lasso_feature_count_finds_informative_features(task):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 300))
    signal = X[:, :4] @ np.array([2.0, -2.0, 1.5, 1.5])
    y = signal + 0.5 * rng.standard_normal(120)
    if task is TaskType.BINARY:
        y = (y > 0).astype(int)
    n_kept = lasso_feature_count(X, y, task)
    # Cross-validated lasso keeps every informative feature and some noise features.
    assert 4 <= n_kept <= 40


def test_lasso_feature_count_multiclass_unions_classes():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((150, 50))
    y = np.argmax(X[:, :3], axis=1)
    assert 3 <= lasso_feature_count(X, y, TaskType.MULTICLASS) <= 30


def test_lasso_feature_count_single_class():
    with pytest.raises(ValueError, match=r"single class"):
        lasso_feature_count(np.ones((10, 3)) + np.arange(30).reshape(10, 3), np.zeros(10), TaskType.BINARY)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.ones(5), r"2-d samples x features matrix"),
        (np.ones((2, 4)), r"at least 3 samples"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [2.0, 2.0]]), r"NaN or infinite"),
    ],
)
def test_estimate_dimension_invalid_input(X, message):
    with pytest.raises(ValueError, match=message):
        estimate_dimension(X)


def test_estimate_dimension_needs_task_with_target():
    with pytest.raises(ValueError, match=r"task is None but y was given"):
        estimate_dimension(np.random.default_rng(0).standard_normal((10, 3)), np.zeros(10))


def test_dataset_dimension_on_pack_dataset(data_dir):
    spec = load_config("datasets.yaml").select(["labor"])[0]
    dataset = load_dataset(spec, data_dir)
    estimates = dataset_dimension(dataset, n_splits=2)
    assert estimates["n_splits"] == 2
    # 57 samples in 5 folds: 45 or 46 training samples; one-hot encoding widens the 16 columns.
    assert 45 <= estimates["n_samples"] <= 46
    assert estimates["n_features"] > 16
    assert 1 <= estimates["participation_ratio"] <= estimates["n_features"]
    assert 0 <= estimates["n_lasso_features"] <= estimates["n_features"]
    with pytest.raises(ValueError, match=r"n_splits=9 is invalid"):
        dataset_dimension(dataset, n_splits=9)
