"""Sample-size rules against worked examples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.config import TaskType
from bench.samplesize import (
    max_cox_snell_r2,
    riley_max_parameters,
    riley_optimism_shrinkage,
    riley_risk_samples,
    riley_samples_per_parameter,
    sample_size_rules,
)


def test_riley_worked_example_samples_per_parameter():
    # S = 0.9 and R2cs = 0.3 need about 24.7 samples per parameter, so 100 samples support 4.
    assert riley_samples_per_parameter(0.9, 0.3) == pytest.approx(24.66, abs=0.01)
    assert math.floor(100 / riley_samples_per_parameter(0.9, 0.3)) == 4


def test_riley_matches_pmsampsize_formula():
    # pmsampsize criterion 1: n = ceil(P / ((S - 1) ln(1 - R2cs / S))); P = 20 and R2cs = 0.1 give 1699.
    n_required = math.ceil(20 * riley_samples_per_parameter(0.9, 0.1))
    assert n_required == math.ceil(20 / ((0.9 - 1) * math.log(1 - 0.1 / 0.9)))
    assert n_required == 1699


def test_max_cox_snell_r2_balanced_outcome():
    # phi = 0.5: 1 - exp(2 ln 0.5) = 0.75.
    assert max_cox_snell_r2(0.5) == pytest.approx(0.75)
    assert max_cox_snell_r2(0.1) < max_cox_snell_r2(0.5)
    with pytest.raises(ValueError, match=r"proportion=1 is invalid"):
        max_cox_snell_r2(1)


def test_riley_optimism_shrinkage_example():
    # R2cs = 0.1, max R2cs = 0.75, delta = 0.05: S = 0.1 / (0.1 + 0.0375).
    assert riley_optimism_shrinkage(0.1, 0.75) == pytest.approx(0.1 / 0.1375)


def test_riley_max_parameters_uses_stricter_criterion():
    # R2cs = 0.3, max 0.75: optimism S = 0.3 / 0.3375 = 0.889 < 0.9, so the shrinkage criterion binds.
    assert riley_max_parameters(1000, 0.3, 0.75) == pytest.approx(40.55, abs=0.01)
    # R2cs = 0.05, max 0.75: optimism S = 0.05 / 0.0875 = 0.571 < 0.9 as well.
    strict = riley_max_parameters(1000, 0.05, 0.75)
    assert strict == pytest.approx(1000 / riley_samples_per_parameter(0.9, 0.05))
    # With a large R2cs against its maximum the optimism criterion requires S > 0.9.
    assert riley_optimism_shrinkage(0.7, 0.72) > 0.9
    assert riley_max_parameters(1000, 0.7, 0.72) == pytest.approx(
        1000 / riley_samples_per_parameter(riley_optimism_shrinkage(0.7, 0.72), 0.7)
    )


@pytest.mark.parametrize("shrinkage, r2, message", [(1.2, 0.3, r"shrinkage=1.2 is invalid"),
                                                    (0.9, 0.95, r"r2=0.95 is invalid"),
                                                    (0.9, 0.0, r"r2=0.0 is invalid")])
def test_riley_samples_per_parameter_invalid(shrinkage, r2, message):
    with pytest.raises(ValueError, match=message):
        riley_samples_per_parameter(shrinkage, r2)


def test_riley_risk_samples_balanced():
    # (1.96 / 0.05)^2 * 0.25 = 384.16.
    assert riley_risk_samples(0.5) == pytest.approx(384.16)


def test_sample_size_rules_binary():
    y = np.array([0] * 30 + [1] * 70)
    rules = sample_size_rules(y, TaskType.BINARY, n_features=2000, n_effective_features=12.5)
    assert rules.n_events == 30
    assert rules.max_parameters_tenfold_cells == pytest.approx(100 * 2000 / 10)
    assert rules.max_parameters_tenfold_effective == pytest.approx(100 * 12.5 / 10)
    assert rules.max_parameters_epv == pytest.approx(3.0)
    assert rules.riley_r2 == pytest.approx(0.15 * max_cox_snell_r2(0.3))
    assert rules.max_parameters_riley == riley_max_parameters(100, rules.riley_r2, max_cox_snell_r2(0.3))
    assert rules.riley_risk_n_required == pytest.approx(riley_risk_samples(0.3))


def test_sample_size_rules_regression_and_given_r2():
    y = np.linspace(0, 1, 250)
    rules = sample_size_rules(y, TaskType.REGRESSION, n_features=10, n_effective_features=4, r2=0.3)
    assert rules.n_events == 250
    assert rules.max_parameters_riley == pytest.approx(250 / riley_samples_per_parameter(0.9, 0.3))
    assert rules.riley_risk_n_required is None


def test_sample_size_rules_too_few_samples():
    with pytest.raises(ValueError, match=r"y has 1 samples"):
        sample_size_rules(np.array([1.0]), TaskType.REGRESSION, 3, 2)
