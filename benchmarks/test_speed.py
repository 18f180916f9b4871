"""Speed benchmarks of the MLP rungs, measured in one session so that their ratios compare.

Run with `python -m pytest benchmarks --benchmark-only --benchmark-json=speed.json` and
summarise the file with `python -m benchmarks.summarize speed.json`. Each benchmark takes the
fastest of a few rounds, because one round takes seconds and the minimum is the statistic
least disturbed by other work on a shared machine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from bench.config import load_config
from bench.runs import RunTask, _cached_dataset, _cached_splits, _prepared_split, execute_run
from bench.splits import Protocol
from bench.stacked import execute_stacked_runs, train_stacked
from models import NotApplicable, Shape, get_rungs, ladder
from models.mlp import RUNGS, TorchMLPClassifier, is_stackable
from tests.conftest import REPOSITORY_ROOT

N_ROUNDS = 3
SMALL_RUNGS = [rung for rung in RUNGS if is_stackable(rung)]
LARGE_RUNGS = [rung for rung in RUNGS if rung.config["budget"] >= 1e6]
# Stacked against per-fold training: iris under the default protocol (5 folds x 2 repeats).
# Both sides train a fixed number of epochs (patience above the cap), so they do equal work.
STACKED_DATASET = "iris"
STACKED_EPOCHS = 50
# Large rungs: one full batch of 128 rows and 2,000 inputs, the size of a small omics study.
LARGE_BATCH_ROWS = 128
LARGE_INPUTS = 2_000
LARGE_EPOCHS = 3
# The whole ladder runs on this omics dataset with one repeat of 5 folds.
LADDER_DATASET = "alon"
LADDER_PROTOCOL = Protocol(n_folds=5, n_repeats=1, seed=0)


def _task(name: str, model: str, protocol: Protocol, data_dir) -> RunTask:
    spec = load_config(REPOSITORY_ROOT / "datasets.yaml").select([name])[0]
    splits = tuple((repeat, fold) for repeat in range(protocol.n_repeats) for fold in range(protocol.n_folds))
    return RunTask(spec, model, splits, protocol, data_dir, None)


def _dataset_and_splits(task: RunTask):
    dataset = _cached_dataset(task.spec, task.data_dir, task.cache_dir, task.max_samples, task.protocol.seed)
    splits = list(_cached_splits(task.spec, task.data_dir, task.cache_dir, task.max_samples, task.protocol))
    return dataset, splits


def _estimators_and_data(rung, data_dir):
    """Return unfitted estimators of a rung and the preprocessed train parts of every split."""
    task = _task(STACKED_DATASET, rung.name, Protocol(), data_dir)
    dataset, splits = _dataset_and_splits(task)
    estimators, train_parts = [], []
    for seed, split in enumerate(splits):
        X_train, _, y_train, _, _ = _prepared_split(task, dataset, split)
        shape = Shape(dataset.task, X_train.shape[1], dataset.n_classes, len(y_train))
        estimator = rung.build(shape, seed)
        estimator.set_params(max_epochs=STACKED_EPOCHS, patience=STACKED_EPOCHS + 1, device="cpu")
        estimators.append(estimator)
        train_parts.append((X_train, y_train))
    return estimators, train_parts


# ---- Stacked against per-fold training of the small rungs ------------------------------

@pytest.mark.parametrize("rung", SMALL_RUNGS, ids=lambda rung: rung.name)
@pytest.mark.parametrize("mode", ["per_fold", "stacked"])
def test_small_rung_training(benchmark, data_dir, rung, mode):
    benchmark.group = f"small rungs: {rung.name}"
    try:
        _estimators_and_data(rung, data_dir)
    except NotApplicable as error:
        pytest.skip(f"{rung.name} does not apply to {STACKED_DATASET}: {error}")

    def train():
        estimators, train_parts = _estimators_and_data(rung, data_dir)
        if mode == "per_fold":
            for estimator, (X, y) in zip(estimators, train_parts):
                estimator.fit(X, y)
        else:
            parts = [estimator.prepare_training(X, y) for estimator, (X, y) in zip(estimators, train_parts)]
            train_stacked(estimators, parts)
        return len(estimators)

    n_runs = benchmark.pedantic(train, rounds=N_ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(mode=mode, n_runs=n_runs, epochs=STACKED_EPOCHS, dataset=STACKED_DATASET)


# ---- Throughput of the large rungs against a plain matmul ------------------------------

def _layer_shapes(estimator) -> list[tuple[int, int]]:
    return [(module.in_features, module.out_features) for module in estimator.network_
            if isinstance(module, torch.nn.Linear)]


def _matmul_flops_per_step(layer_shapes, n_rows: int) -> float:
    # Forward, input gradient and weight gradient: three matmuls of 2 x rows x in x out each.
    return sum(6.0 * n_rows * n_in * n_out for n_in, n_out in layer_shapes)


@pytest.mark.parametrize("rung", LARGE_RUNGS, ids=lambda rung: rung.name)
@pytest.mark.parametrize("mode", ["mlp_training", "plain_matmul"])
def test_large_rung_throughput(benchmark, rung, mode):
    benchmark.group = f"large rungs: {rung.name}"
    rng = np.random.default_rng(0)
    # The validation part is 20 % of the training rows, so 160 rows leave a fit batch of 128.
    n_train = int(LARGE_BATCH_ROWS / 0.8)
    X = rng.normal(size=(n_train, LARGE_INPUTS)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    estimator = TorchMLPClassifier(budget=rung.config["budget"], task="binary", max_epochs=LARGE_EPOCHS,
                                   patience=LARGE_EPOCHS + 1, batch_size=LARGE_BATCH_ROWS, device="cpu")
    estimator.prepare_training(X, y)
    layer_shapes = _layer_shapes(estimator)
    flops = _matmul_flops_per_step(layer_shapes, LARGE_BATCH_ROWS) * LARGE_EPOCHS
    if mode == "mlp_training":
        # Training also runs one forward pass over the validation rows per epoch.
        n_validation_rows = n_train - LARGE_BATCH_ROWS
        flops += sum(2.0 * n_validation_rows * n_in * n_out for n_in, n_out in layer_shapes) * LARGE_EPOCHS

    if mode == "mlp_training":
        run = lambda: estimator.fit(X, y)  # noqa: E731
    else:
        inputs = [torch.randn(LARGE_BATCH_ROWS, n_in) for n_in, _ in layer_shapes]
        weights = [torch.randn(n_in, n_out) for n_in, n_out in layer_shapes]
        outputs = [torch.randn(LARGE_BATCH_ROWS, n_out) for _, n_out in layer_shapes]

        def run():
            for _ in range(LARGE_EPOCHS):
                for x, w, gradient in zip(inputs, weights, outputs):
                    x @ w
                    gradient @ w.T
                    x.T @ gradient

    benchmark.pedantic(run, rounds=N_ROUNDS, iterations=1, warmup_rounds=1)
    elapsed_s = benchmark.stats.stats.min
    benchmark.extra_info.update(
        mode=mode, layer_shapes=layer_shapes, batch_rows=LARGE_BATCH_ROWS, epochs=LARGE_EPOCHS,
        matmul_gflop=flops / 1e9, gflop_per_s=flops / 1e9 / elapsed_s,
    )


# ---- The whole ladder on one omics dataset ---------------------------------------------

def test_ladder_on_omics_dataset(benchmark, data_dir):
    benchmark.group = f"ladder: {LADDER_DATASET}"
    times_s: dict[str, float] = {}
    statuses: dict[str, list[str]] = {}

    def run_ladder():
        for rung in ladder():
            task = _task(LADDER_DATASET, rung.name, LADDER_PROTOCOL, data_dir)
            dataset, splits = _dataset_and_splits(task)
            started = time.perf_counter()
            if is_stackable(rung):
                rows = execute_stacked_runs(task, rung, dataset, splits)
            else:
                rows = [execute_run(task, get_rungs([rung.name])[0], dataset, split) for split in splits]
            times_s[rung.name] = round(time.perf_counter() - started, 3)
            statuses[rung.name] = sorted({row["status"] for row in rows})

    benchmark.pedantic(run_ladder, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(dataset=LADDER_DATASET, n_folds=LADDER_PROTOCOL.n_folds,
                                n_repeats=LADDER_PROTOCOL.n_repeats, rung_time_s=times_s, rung_status=statuses)
