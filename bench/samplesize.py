"""Sample-size rules: the largest parameter count that a dataset's samples afford."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bench.config import TaskType

# The tenfold rule: data values per parameter.
DATA_VALUES_PER_PARAMETER = 10
# Events per variable (Peduzzi et al., J Clin Epidemiol 1996).
EVENTS_PER_VARIABLE = 10
# Riley et al. defaults: target shrinkage, allowed optimism in Nagelkerke's R^2, and the
# margin of error of the overall outcome proportion with its 95 % normal quantile.
TARGET_SHRINKAGE = 0.9
OPTIMISM_DELTA = 0.05
RISK_MARGIN = 0.05
NORMAL_QUANTILE_95 = 1.96
# With no prior model, Riley et al. (BMJ 2020) suggest an anticipated Cox-Snell R^2 of 15 % of
# its maximum for a binary outcome; the same share of the maximum R^2 (1) is used for
# regression.
ANTICIPATED_R2_SHARE = 0.15


@dataclass(frozen=True)
class SampleSizeRules:
    """The largest parameter count each rule allows for one dataset.

    Attributes:
        max_parameters_tenfold_cells: n * p / 10, every table cell counted as a data value.
        max_parameters_tenfold_effective: n * p_eff / 10, with p_eff an effective dimension.
        max_parameters_epv: events / 10, events being the smallest class count (n for regression).
        max_parameters_riley: the largest P meeting Riley et al.'s shrinkage and optimism criteria,
            not rounded.
        riley_r2: the anticipated (Cox-Snell) R^2 the Riley criteria used.
        riley_samples_per_parameter: n / P at the binding Riley criterion.
        riley_risk_n_required: samples needed to estimate the overall outcome proportion within
            0.05; None for regression.
    """

    n_samples: int
    n_features: int
    n_effective_features: float
    n_events: int
    max_parameters_tenfold_cells: float
    max_parameters_tenfold_effective: float
    max_parameters_epv: float
    max_parameters_riley: float
    riley_r2: float
    riley_samples_per_parameter: float
    riley_risk_n_required: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def sample_size_rules(y, task: TaskType, n_features: int, n_effective_features: float,
                      r2: float | None = None) -> SampleSizeRules:
    """Apply every sample-size rule to a dataset with target `y`.

    Args:
        n_features: p, the feature count after preprocessing.
        n_effective_features: p_eff from `bench.dimension`.
        r2: anticipated Cox-Snell R^2 (R^2 for regression); by default 15 % of its maximum.
    """
    y = np.asarray(y)
    n_samples = len(y)
    if n_samples < 2:
        raise ValueError(f"y has {n_samples} samples; the sample-size rules need at least 2")

    if task is TaskType.REGRESSION:
        n_events, proportion, max_r2 = n_samples, None, 1.0
    else:
        # NOTE: a multiclass target is treated as its smallest class against the rest; Riley
        # et al. define the criteria for binary outcomes only.
        _, counts = np.unique(y, return_counts=True)
        n_events = int(counts.min())
        proportion = n_events / n_samples
        max_r2 = max_cox_snell_r2(proportion)
    if r2 is None:
        r2 = ANTICIPATED_R2_SHARE * max_r2

    max_riley = riley_max_parameters(n_samples, r2, max_r2)
    return SampleSizeRules(
        n_samples=n_samples,
        n_features=int(n_features),
        n_effective_features=float(n_effective_features),
        n_events=n_events,
        max_parameters_tenfold_cells=n_samples * n_features / DATA_VALUES_PER_PARAMETER,
        max_parameters_tenfold_effective=n_samples * n_effective_features / DATA_VALUES_PER_PARAMETER,
        max_parameters_epv=n_events / EVENTS_PER_VARIABLE,
        max_parameters_riley=max_riley,
        riley_r2=float(r2),
        riley_samples_per_parameter=n_samples / max_riley if max_riley > 0 else math.inf,
        riley_risk_n_required=None if proportion is None else riley_risk_samples(proportion),
    )


def max_cox_snell_r2(proportion: float) -> float:
    """Return the largest Cox-Snell R^2 of a binary outcome: 1 - exp(2 lnL_null / n).

    lnL_null / n = phi ln(phi) + (1 - phi) ln(1 - phi) for outcome proportion phi (Riley et al.,
    Statistics in Medicine 2019, Part II).
    """
    if not 0 < proportion < 1:
        raise ValueError(f"proportion={proportion} is invalid; the outcome proportion lies in (0, 1)")
    log_likelihood_per_sample = proportion * math.log(proportion) + (1 - proportion) * math.log(1 - proportion)
    return 1 - math.exp(2 * log_likelihood_per_sample)


def riley_samples_per_parameter(shrinkage: float, r2: float) -> float:
    """Return n / P from Riley et al.'s shrinkage criterion n = P / ((S - 1) ln(1 - R2cs / S)).

    S = 0.9 and R2cs = 0.3 give about 24.7 samples per parameter. The same form holds for
    continuous outcomes with R^2 in place of R2cs (Riley et al. 2019, Parts I and II; R and
    Stata package pmsampsize).
    """
    if not 0 < shrinkage < 1:
        raise ValueError(f"shrinkage={shrinkage} is invalid; the target shrinkage lies in (0, 1), such as 0.9")
    if not 0 < r2 < shrinkage:
        raise ValueError(
            f"r2={r2} is invalid with shrinkage={shrinkage}; the anticipated R^2 must lie in (0, shrinkage)"
        )
    return 1.0 / ((shrinkage - 1) * math.log(1 - r2 / shrinkage))


def riley_optimism_shrinkage(r2: float, max_r2: float, delta: float = OPTIMISM_DELTA) -> float:
    """Return the shrinkage S = R2cs / (R2cs + delta * max_R2cs) that keeps the optimism of
    Nagelkerke's R^2 below delta."""
    return r2 / (r2 + delta * max_r2)


def riley_max_parameters(n_samples: int, r2: float, max_r2: float, shrinkage: float = TARGET_SHRINKAGE,
                         delta: float = OPTIMISM_DELTA) -> float:
    """Return the largest P that both Riley criteria allow with `n_samples`.

    The shrinkage and optimism criteria share one form, so the stricter is the one with the
    larger target shrinkage; P = n / (n / P) of that criterion. The value is not rounded down,
    because on small datasets it is often below 1 and its size still compares datasets.
    """
    binding = max(shrinkage, riley_optimism_shrinkage(r2, max_r2, delta))
    if r2 >= binding:
        raise ValueError(f"r2={r2} is invalid; the anticipated R^2 must be below the target shrinkage {binding:.3f}")
    return n_samples / riley_samples_per_parameter(binding, r2)


def riley_risk_samples(proportion: float, margin: float = RISK_MARGIN) -> float:
    """Return n = (1.96 / margin)^2 phi (1 - phi), the samples that estimate the outcome
    proportion phi within +-margin (Riley et al. 2019, Part II)."""
    return (NORMAL_QUANTILE_95 / margin) ** 2 * proportion * (1 - proportion)
