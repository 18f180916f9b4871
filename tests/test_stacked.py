"""Tests of stacked training: the runs of one rung on one dataset trained as one batched model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import DatasetSpec, TaskType, load_config
from bench.runs import RunTask, _cached_dataset, _cached_splits, execute_run
from bench.splits import Protocol
from bench.stacked import execute_stacked_runs, train_stacked
from models import get_rungs
from models.mlp import TorchMLPClassifier, TorchMLPRegressor
from tests.conftest import REPOSITORY_ROOT

# Stacked and one-at-a-time training differ only by float32 rounding, because the batched
# matmuls sum in another order and Adam runs as plain tensor operations instead of the fused
# kernel. Measured with torch 2.13 CPU on one thread after 15 to 30 epochs, the weights
# differed by at most 2e-6, except 7.5e-4 for one binary 1e4 network where Adam divides by tiny
# second moments. Predictions differed by at most 6e-5. Counting one Adam step too many for a
# run without a mini-batch moved the weights by 4e-3.
WEIGHT_TOLERANCE = 2e-3
PROBABILITY_TOLERANCE = 1e-3
REGRESSION_TOLERANCE = 1e-3  # in target standard deviations
N_RUNS = 4


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _synthetic(task: str, n_samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 6)).astype(np.float32)
    if task == "regression":
        return X, 3 * X[:, 0] + rng.normal(size=n_samples)
    if task == "binary":
        return X, (X[:, 0] + 0.3 * rng.normal(size=n_samples) > 0).astype(int)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)


def _train_both(task: str, n_samples: int, budget: float, max_epochs: int = 30, patience: int = 16,
                fold_sizes: list[int] | None = None):
    X, y = _synthetic(task, n_samples)
    rng = np.random.default_rng(1)
    fold_sizes = fold_sizes or [int(0.8 * n_samples) - run for run in range(N_RUNS)]
    folds = [np.sort(rng.choice(n_samples, size, replace=False)) for size in fold_sizes]
    estimator_class = TorchMLPRegressor if task == "regression" else TorchMLPClassifier
    settings = dict(budget=budget, task=task, max_epochs=max_epochs, patience=patience)

    alone = [estimator_class(random_state=seed, **settings) for seed in range(N_RUNS)]
    for estimator, fold in zip(alone, folds):
        estimator.fit(X[fold], y[fold])

    stacked = [estimator_class(random_state=seed, **settings) for seed in range(N_RUNS)]
    parts = [estimator.prepare_training(X[fold], y[fold]) for estimator, fold in zip(stacked, folds)]
    errors = train_stacked(stacked, parts)
    return X, y, alone, stacked, errors


def _max_weight_difference(first, second) -> float:
    pairs = zip(first.network_.parameters(), second.network_.parameters())
    return max(float((a - b).detach().abs().max()) for a, b in pairs)


def _max_difference(task: str, y, first, second, X) -> float:
    if task == "regression":
        return float(np.abs(first.predict(X) - second.predict(X)).max() / np.std(y))
    return float(np.abs(first.predict_proba(X) - second.predict_proba(X)).max())


@pytest.mark.parametrize("budget", [1e2, 1e3, 1e4])
@pytest.mark.parametrize("task, n_samples", [("binary", 90), ("multiclass", 100), ("regression", 80)])
def test_stacked_matches_one_at_a_time(task, n_samples, budget):
    X, y, alone, stacked, errors = _train_both(task, n_samples, budget)
    tolerance = REGRESSION_TOLERANCE if task == "regression" else PROBABILITY_TOLERANCE

    assert errors == [None] * N_RUNS
    for first, second in zip(alone, stacked):
        assert first.best_epoch_ == second.best_epoch_
        assert first.n_epochs_ == second.n_epochs_
        assert _max_weight_difference(first, second) <= WEIGHT_TOLERANCE
        assert _max_difference(task, y, first, second, X) <= tolerance


def test_stacked_mini_batches_match_one_at_a_time():
    # After the validation cut the runs have 160, 136, 120 and 96 fit rows. With a batch size
    # of 128 the first two take two mini-batches per epoch and the last two train full-batch,
    # so the second step of each epoch updates only the first two runs.
    X, y, alone, stacked, errors = _train_both("binary", 250, 1e3, max_epochs=15, fold_sizes=[200, 170, 150, 120])

    assert errors == [None] * N_RUNS
    for first, second in zip(alone, stacked):
        assert first.best_epoch_ == second.best_epoch_
        assert _max_weight_difference(first, second) <= WEIGHT_TOLERANCE
        assert _max_difference("binary", y, first, second, X) <= PROBABILITY_TOLERANCE


def test_stacked_early_stopping_per_run():
    # Noise-only targets make the validation loss stop improving at different epochs per run.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = rng.normal(size=60)
    settings = dict(budget=1e3, task="regression", max_epochs=200, patience=3)
    alone = [TorchMLPRegressor(random_state=seed, **settings).fit(X, y) for seed in range(N_RUNS)]
    stacked = [TorchMLPRegressor(random_state=seed, **settings) for seed in range(N_RUNS)]
    train_stacked(stacked, [estimator.prepare_training(X, y) for estimator in stacked])

    assert len({estimator.n_epochs_ for estimator in alone}) > 1
    assert [estimator.n_epochs_ for estimator in stacked] == [estimator.n_epochs_ for estimator in alone]
    assert [estimator.best_epoch_ for estimator in stacked] == [estimator.best_epoch_ for estimator in alone]
    assert max(estimator.n_epochs_ for estimator in alone) < 200


def test_stacked_divergence_fails_only_its_run():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = X[:, 0] * 2.0
    X_overflow = X.copy()
    X_overflow[:, 1] = 3e38  # float32 overflow in the first layer of this run only
    estimators = [TorchMLPRegressor(budget=1e2, task="regression", max_epochs=10, random_state=seed)
                  for seed in range(3)]
    parts = [estimators[0].prepare_training(X, y), estimators[1].prepare_training(X_overflow, y),
             estimators[2].prepare_training(X, y)]

    errors = train_stacked(estimators, parts)

    assert errors[0] is None
    assert errors[2] is None
    assert str(errors[1]) == "diverged: non-finite training loss at epoch 1"
    assert np.isfinite(estimators[0].predict(X)).all()


def test_stacked_different_settings_raise():
    X, y = _synthetic("binary", 40)
    estimators = [TorchMLPClassifier(budget=1e2, patience=16), TorchMLPClassifier(budget=1e2, patience=5)]
    parts = [estimator.prepare_training(X, y) for estimator in estimators]
    with pytest.raises(ValueError, match=r"stacked runs need the same training settings; got \{'patience': 5\}"):
        train_stacked(estimators, parts)


# ---- Result rows on a dataset of the pack ---------------------------------------------

def _task(name: str, data_dir, model: str, **overrides) -> RunTask:
    spec = load_config(REPOSITORY_ROOT / "datasets.yaml").select([name])[0]
    protocol = Protocol(n_folds=2, n_repeats=2, seed=0)
    splits = tuple((repeat, fold) for repeat in range(2) for fold in range(2))
    return RunTask(spec, model, splits, protocol, data_dir, None, **overrides)


def _dataset_and_splits(task: RunTask):
    dataset = _cached_dataset(task.spec, task.data_dir, task.cache_dir, task.max_samples, task.protocol.seed)
    splits = list(_cached_splits(task.spec, task.data_dir, task.cache_dir, task.max_samples, task.protocol))
    return dataset, splits


@pytest.mark.parametrize("name, model", [("iris", "mlp_1e3"), ("sleep", "mlp_1e2")])
def test_stacked_rows_match_execute_run(data_dir, name, model):
    task = _task(name, data_dir, model)
    rung = get_rungs([model])[0]
    dataset, splits = _dataset_and_splits(task)

    stacked_rows = execute_stacked_runs(task, rung, dataset, splits)
    single_rows = [execute_run(task, rung, dataset, split) for split in splits]

    assert [row["run_id"] for row in stacked_rows] == [row["run_id"] for row in single_rows]
    for stacked, single in zip(stacked_rows, single_rows):
        assert stacked["status"] == single["status"] == "ok"
        assert set(stacked) == set(single)
        assert stacked["n_parameters"] == single["n_parameters"]
        assert stacked["params_per_sample"] == single["params_per_sample"]
        assert stacked["test_score"] == pytest.approx(single["test_score"], abs=0.05)
        assert json.loads(stacked["parameter_detail"])["n_stacked_runs"] == len(splits)
        assert json.loads(single["parameter_detail"])["n_stacked_runs"] == 1


def test_stacked_rows_record_compute_budget_skip(data_dir):
    task = _task("iris", data_dir, "mlp_1e3", compute_budget=1.0)
    rung = get_rungs(["mlp_1e3"])[0]
    dataset, splits = _dataset_and_splits(task)

    rows = execute_stacked_runs(task, rung, dataset, splits)

    assert [row["status"] for row in rows] == ["skipped"] * len(splits)
    assert all(row["error_kind"] == "compute_budget" for row in rows)
    assert rows[0]["error"].startswith("not run: compute budget (estimated ")


def test_stacked_time_limit_names_runs(data_dir):
    task = _task("sonar", data_dir, "mlp_1e4", time_limit_s=0.001)
    rung = get_rungs(["mlp_1e4"])[0]
    dataset, splits = _dataset_and_splits(task)

    rows = execute_stacked_runs(task, rung, dataset, splits)

    assert [row["error_kind"] for row in rows] == ["time_limit"] * len(splits)
    assert rows[0]["error"] == ("TimeLimitError: time limit of 0.001 s per run exceeded: 4 runs trained together "
                                "(r0/f0, r0/f1, r1/f0, r1/f1) did not finish in 0.004 s")


def test_stacked_rows_record_not_applicable(data_dir):
    task = _task("alon", data_dir, "mlp_1e2")
    rung = get_rungs(["mlp_1e2"])[0]
    dataset, splits = _dataset_and_splits(task)

    rows = execute_stacked_runs(task, rung, dataset, splits)

    assert [row["status"] for row in rows] == ["skipped"] * len(splits)
    assert all(row["error"].startswith("not applicable: no MLP width") for row in rows)


def test_stacked_same_seed_bit_identical():
    X, y = _synthetic("binary", 60)

    def probabilities(seed: int) -> list[bytes]:
        estimators = [TorchMLPClassifier(budget=1e3, max_epochs=10, random_state=seed + run) for run in range(3)]
        train_stacked(estimators, [estimator.prepare_training(X, y) for estimator in estimators])
        return [estimator.predict_proba(X).tobytes() for estimator in estimators]

    assert probabilities(0) == probabilities(0)
    assert probabilities(0) != probabilities(10)


def test_stacked_unscaled_regression_rows_finite(cases_dir, tmp_path):
    # The pack's loader reads tabular/<name>.parquet with the target in a column named `target`.
    table = pd.read_csv(cases_dir / "C21-unscaled_regression.csv").rename(columns={"yield": "target"})
    (tmp_path / "tabular").mkdir()
    table.to_parquet(tmp_path / "tabular" / "unscaled.parquet")
    spec = DatasetSpec(name="unscaled", task=TaskType.REGRESSION)
    protocol = Protocol(n_folds=2, n_repeats=1, seed=0)
    task = RunTask(spec, "mlp_1e3", ((0, 0), (0, 1)), protocol, tmp_path, None)
    dataset, splits = _dataset_and_splits(task)

    rows = execute_stacked_runs(task, get_rungs(["mlp_1e3"])[0], dataset, splits)

    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert all(np.isfinite(row["test_score"]) for row in rows)
    assert all(np.isfinite(row["train_score"]) for row in rows)
