"""Simulated omics-like data: the planted structure, and its recovery by the analyses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.config import TaskType
from bench.simulate import SimulationSpec, run_simulation, simulate, true_participation_ratio


def test_simulate_block_correlation_and_variance():
    spec = SimulationSpec(n_samples=2000, n_features=40, n_informative=2, block_size=10, correlation=0.6)
    X = simulate(spec).X.to_numpy(dtype=np.float64)
    correlation = np.corrcoef(X, rowvar=False)
    # Sampling error of a correlation from 2000 samples is about 0.02; the tolerance is 0.06.
    assert abs(correlation[0, 1] - 0.6) < 0.06
    assert abs(correlation[0, 10]) < 0.06
    assert np.allclose(X.var(axis=0), 1.0, atol=0.12)


def test_simulate_target_depends_on_informative_features():
    spec = SimulationSpec(n_samples=1000, n_features=200, n_informative=3, block_size=20, correlation=0.0,
                          noise=0.1, task=TaskType.REGRESSION)
    data = simulate(spec)
    X, y = data.X.to_numpy(dtype=np.float64), data.y.to_numpy()
    coefficients = np.linalg.lstsq(np.column_stack([np.ones(1000), X]), y, rcond=None)[0][1:]
    assert spec.informative_features() == [0, 20, 40]
    assert set(np.argsort(-np.abs(coefficients))[:3]) == {0, 20, 40}


def test_simulate_binary_labels_and_name():
    spec = SimulationSpec(n_samples=50, n_features=30, n_informative=1, block_size=10)
    data = simulate(spec)
    assert list(data.y.cat.categories) == ["0", "1"]
    assert spec.name == "sim-binary-n50-p30-k1-b10-rho0p8-noise0p5-s0"


def test_true_participation_ratio_independent_features():
    spec = SimulationSpec(n_samples=50, n_features=30, n_informative=1, block_size=10, correlation=0.0)
    assert true_participation_ratio(spec) == pytest.approx(30.0)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"n_informative": 11, "n_features": 100, "block_size": 10}, r"n_informative=11 is invalid"),
        ({"correlation": 1.0}, r"correlation=1.0 is invalid"),
        ({"n_samples": 5}, r"n_samples=5 is invalid"),
        ({"task": TaskType.MULTICLASS}, r"task=.* is invalid"),
    ],
)
def test_simulation_spec_invalid(fields, message):
    with pytest.raises(ValueError, match=message):
        SimulationSpec(**fields)


@pytest.mark.parametrize(
    "spec",
    [
        SimulationSpec(n_samples=100, n_features=2000, n_informative=5, task=TaskType.REGRESSION),
        SimulationSpec(n_samples=60, n_features=1000, n_informative=3, task=TaskType.BINARY),
    ],
    ids=["regression-n100-p2000-k5", "binary-n60-p1000-k3"],
)
def test_run_simulation_recovers_planted_answer(spec, tmp_path):
    outcome = run_simulation(spec, tmp_path, n_folds=5)

    # Corrected participation ratio within 20 % of the population value; the plain one is below it.
    truth = outcome.true_participation_ratio
    assert abs(outcome.dimension["participation_ratio_corrected"] - truth) < 0.2 * truth
    assert outcome.dimension["participation_ratio"] < truth
    # k: the lasso support touches every informative block and keeps k to 10 k features.
    assert outcome.n_informative_blocks_kept == spec.n_informative
    assert outcome.k_recovered
    # Best size: the one-standard-error model is the sparse linear rung, with (k + 1) / 10 to
    # 10 (k + 1) parameters.
    assert outcome.observed["one_se_model"] == "l1_linear"
    assert outcome.best_size_recovered
    assert (tmp_path / "results.sqlite").is_file()


def test_simulate_command_writes_csv(tmp_path, capsys):
    from bench.cli import main

    arguments = ["--quiet", "simulate", "--n-samples", "40", "--n-features", "200", "--n-informative", "2",
                 "--task", "regression", "--model", "constant", "l1_linear", "--folds", "3",
                 "--work-dir", str(tmp_path / "work"), "--reports", str(tmp_path / "reports")]
    assert main(arguments) == 0
    assert main(arguments[:-4] + ["--seed", "1", "--work-dir", str(tmp_path / "work"),
                                  "--reports", str(tmp_path / "reports")]) == 0
    table = pd.read_csv(tmp_path / "reports" / "simulations.csv")
    # The second call adds seed 1 and keeps the row of seed 0.
    assert len(table) == 2
    assert set(table["spec_seed"]) == {0, 1}
    assert "k recovered" in capsys.readouterr().out
