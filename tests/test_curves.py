"""Learning curves, the plateau test and the inverse power-law extrapolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.config import load_config
from bench.curves import (
    fit_inverse_power_law,
    learning_curve,
    plateau_test,
    subsample_split,
    summarize_curve,
)
from bench.data import load_dataset
from bench.splits import Protocol, make_splits


def _curve(a: float, b: float, c: float, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = np.repeat([20, 40, 80, 160, 320, 640], 4).astype(float)
    scores = 1 - (a + b * n**-c) + noise * rng.standard_normal(len(n))
    return n, scores


def test_fit_inverse_power_law_recovers_parameters():
    n, scores = _curve(0.1, 0.8, 0.5, noise=0.002)
    fit = fit_inverse_power_law(n, scores)
    assert fit.a == pytest.approx(0.1, abs=0.02)
    assert fit.c == pytest.approx(0.5, abs=0.1)
    # Gain per doubling b c ln2 n^-c equals 0.01 at n = (0.8 * 0.5 * ln2 / 0.01)^2, about 769.
    expected = (0.8 * 0.5 * math.log(2) / 0.01) ** 2
    assert fit.plateau_n == pytest.approx(expected, rel=0.35)
    assert fit.plateau_n_lower <= fit.plateau_n <= fit.plateau_n_upper


def test_fit_inverse_power_law_too_few_sizes():
    with pytest.raises(ValueError, match=r"3 training sizes; the power-law fit needs at least 4"):
        fit_inverse_power_law([10, 20, 40, 40], [0.5, 0.6, 0.7, 0.7])


def test_plateau_test_flat_curve():
    rng = np.random.default_rng(1)
    n = np.repeat([100, 200, 400], 5).astype(float)
    result = plateau_test(n, 0.8 + 0.002 * rng.standard_normal(len(n)))
    assert result.state == "plateau"
    assert abs(result.gain_per_doubling) < 0.01


def test_plateau_test_rising_curve():
    rng = np.random.default_rng(2)
    n = np.repeat([100, 200, 400], 5).astype(float)
    scores = 0.5 + 0.05 * np.log2(n / 100) + 0.002 * rng.standard_normal(len(n))
    result = plateau_test(n, scores)
    assert result.state == "rising"
    assert result.gain_per_doubling == pytest.approx(0.05, abs=0.01)


def test_plateau_test_noisy_curve_undetermined():
    rng = np.random.default_rng(3)
    n = np.repeat([100, 200, 400], 2).astype(float)
    result = plateau_test(n, 0.7 + 0.1 * rng.standard_normal(len(n)))
    assert result.state == "undetermined"


def test_plateau_test_single_size():
    with pytest.raises(ValueError, match=r"1 training size\(s\)"):
        plateau_test([50, 50, 50], [0.1, 0.2, 0.3])


def test_subsample_split_keeps_test_and_classes(data_dir):
    dataset = load_dataset(load_config("datasets.yaml").select(["iris"])[0], data_dir)
    split = make_splits(dataset.y, dataset.task, Protocol(n_folds=2, n_repeats=1), dataset.name)[0]
    smaller = subsample_split(split, 0.2, dataset)
    assert len(smaller.train) == 15
    assert set(smaller.train) <= set(split.train)
    assert np.array_equal(smaller.test, split.test)
    assert smaller.seed != split.seed
    assert dataset.y.iloc[smaller.train].nunique() == 3
    assert subsample_split(split, 1.0, dataset) is split


def test_learning_curve_on_iris(data_dir):
    dataset = load_dataset(load_config("datasets.yaml").select(["iris"])[0], data_dir)
    splits = make_splits(dataset.y, dataset.task, Protocol(n_folds=2, n_repeats=1), dataset.name)
    rows = learning_curve(dataset, ["l2_linear"], splits, fractions=(0.1, 0.3, 0.6, 1.0))
    assert len(rows) == 8
    assert (rows["status"] == "ok").all()
    assert sorted(rows["n_train_samples"].unique()) == [8, 22, 45, 75]
    full = rows[rows["fraction"] == 1.0]["test_score"].mean()
    smallest = rows[rows["fraction"] == 0.1]["test_score"].mean()
    assert full >= smallest
    summary = summarize_curve(rows)
    assert summary.loc[0, "model"] == "l2_linear"
    assert summary.loc[0, "plateau_state"] in ("plateau", "rising", "undetermined")


def test_learning_curve_invalid_fractions(data_dir):
    dataset = load_dataset(load_config("datasets.yaml").select(["iris"])[0], data_dir)
    with pytest.raises(ValueError, match=r"fractions=\(0.0, 1.0\) is invalid"):
        learning_curve(dataset, ["constant"], [], fractions=(0.0, 1.0))


def test_double_descent_sweep_budgets_and_weight_decay(data_dir):
    from bench.sweep import double_descent_sweep, interpolation_threshold, summarize_sweep

    dataset = load_dataset(load_config("datasets.yaml").select(["iris"])[0], data_dir)
    splits = make_splits(dataset.y, dataset.task, Protocol(n_folds=2, n_repeats=1), dataset.name)[:1]
    rows = double_descent_sweep(dataset, splits, threshold_multiples=(1.0, 10.0), max_epochs=5)
    assert len(rows) == 4
    assert set(rows["weight_decay"]) == {0.0, 0.01}
    # 75 training samples, 60 fitted, 3 outputs: the threshold is 180 parameters.
    assert interpolation_threshold(60, 3) == 180
    assert rows["interpolation_threshold"].eq(180).all()
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 4
    # Widths are solved to within 5 % of the budget.
    assert np.allclose(ok["n_parameters"], ok["budget"], rtol=0.05)
    summary = summarize_sweep(rows)
    assert len(summary) == 4
    assert summary["params_per_sample"].max() == pytest.approx(1800 / 75, rel=0.05)


def test_double_descent_sweep_needs_splits(data_dir):
    from bench.sweep import double_descent_sweep

    dataset = load_dataset(load_config("datasets.yaml").select(["iris"])[0], data_dir)
    with pytest.raises(ValueError, match=r"splits is empty"):
        double_descent_sweep(dataset, [])
