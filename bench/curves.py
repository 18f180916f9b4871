"""Learning curves: test score against training size, a plateau test and an extrapolated plateau.

A curve subsamples the training part of each split to a range of sizes, fits the rung on the
subsample, and scores it on the full test part, so every point of one split shares its test
samples. The error 1 - test_score is modelled by the inverse power law
error(n) = a + b n^(-c) (Figueroa et al., BMC Medical Informatics and Decision Making 12:8, 2012).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.splits import Split, derive_seed

# Fractions of the training part at which the curve is measured.
DEFAULT_FRACTIONS = (0.2, 0.35, 0.5, 0.7, 0.85, 1.0)
# A curve is flat when its test score gains less than this per doubling of the samples.
PLATEAU_GAIN_PER_DOUBLING = 0.01
# Training sizes, counted from the largest, used by the plateau test.
N_LAST_SIZES = 3
# Draws from the fitted parameters' normal approximation that give the plateau interval.
N_PARAMETER_DRAWS = 2000
CONFIDENCE = 0.95


def learning_curve(dataset, model_names: list[str], splits: list[Split], fractions=DEFAULT_FRACTIONS,
                   seed: int = 0) -> pd.DataFrame:
    """Run every model at every training fraction of every split; return one result row per run.

    The rows are those of `bench.runs.execute_run` plus `fraction`. A failed run keeps its row
    with status failed, so the caller can count it.
    """
    from bench.config import DatasetSpec
    from bench.runs import RunTask, execute_run
    from bench.splits import Protocol
    from models import get_rungs

    if not fractions or min(fractions) <= 0 or max(fractions) > 1:
        raise ValueError(f"fractions={fractions} is invalid; use fractions in (0, 1], such as {DEFAULT_FRACTIONS}")
    spec = DatasetSpec(name=dataset.name, task=dataset.task, domain=dataset.domain)
    rows = []
    for rung in get_rungs(list(model_names)):
        task = RunTask(spec, rung.name, (), Protocol(n_folds=2, n_repeats=1, seed=seed), None, None)
        for split in splits:
            for fraction in sorted(fractions):
                subsplit = subsample_split(split, fraction, dataset)
                row = execute_run(task, rung, dataset, subsplit)
                row.update(fraction=fraction, repeat=split.repeat, fold=split.fold)
                rows.append(row)
    return pd.DataFrame(rows)


def subsample_split(split: Split, fraction: float, dataset) -> Split:
    """Return `split` with its train part cut to `fraction`, stratified for classes, keeping the test part.

    The subsample gets its own seed, derived from the split's seed and its size, because
    `bench.runs` caches prepared splits by (repeat, fold, seed) and must not reuse the full one.
    """
    n_keep = max(2, int(round(fraction * len(split.train))))
    if n_keep >= len(split.train):
        return split
    seed = derive_seed(split.seed, "subsample", n_keep)
    rng = np.random.default_rng(seed)
    if dataset.task.is_classification:
        labels = dataset.y.cat.codes.to_numpy()[split.train]
        keep = _stratified_choice(labels, n_keep, rng)
    else:
        keep = rng.choice(len(split.train), size=n_keep, replace=False)
    return Split(split.repeat, split.fold, seed, np.sort(split.train[keep]), split.test)


def _stratified_choice(labels: np.ndarray, n_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Return `n_keep` positions with class shares as in `labels` and at least one sample per class."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * n_keep).astype(int))
    while quota.sum() < n_keep:
        quota[np.argmax(counts - quota)] += 1
    chosen = [rng.choice(np.flatnonzero(labels == label), size=min(q, c), replace=False)
              for label, q, c in zip(classes, quota, counts)]
    return np.concatenate(chosen)


@dataclass(frozen=True)
class PlateauTest:
    """Slope of the test score per doubling of the training size over the largest sizes.

    Attributes:
        state: `plateau` when the upper interval bound of the gain is below the threshold,
            `rising` when the lower bound is above it, else `undetermined`.
    """

    gain_per_doubling: float
    standard_error: float
    lower: float
    upper: float
    threshold: float
    state: str


def plateau_test(n_train_samples, test_scores, n_last: int = N_LAST_SIZES,
                 threshold: float = PLATEAU_GAIN_PER_DOUBLING, confidence: float = CONFIDENCE) -> PlateauTest:
    """Fit test_score = a + g log2(n) to the runs at the `n_last` largest sizes and test g against `threshold`."""
    from scipy import stats

    n_train_samples = np.asarray(n_train_samples, dtype=float)
    test_scores = np.asarray(test_scores, dtype=float)
    sizes = np.unique(n_train_samples)
    if len(sizes) < 2:
        raise ValueError(f"the curve has {len(sizes)} training size(s); the plateau test needs at least 2")
    keep = n_train_samples >= sizes[-min(n_last, len(sizes))]
    x, y = np.log2(n_train_samples[keep]), test_scores[keep]
    if len(x) < 3:
        raise ValueError(f"{len(x)} runs at the largest sizes; the plateau test needs at least 3")

    design = np.column_stack([np.ones(len(x)), x])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coefficients
    degrees = len(x) - 2
    variance = float(residuals @ residuals) / degrees
    error = math.sqrt(variance * np.linalg.inv(design.T @ design)[1, 1])
    quantile = stats.t.ppf(0.5 + confidence / 2, degrees)
    gain = float(coefficients[1])
    lower, upper = gain - quantile * error, gain + quantile * error
    if upper < threshold:
        state = "plateau"
    elif lower > threshold:
        state = "rising"
    else:
        state = "undetermined"
    return PlateauTest(gain, error, lower, upper, threshold, state)


@dataclass(frozen=True)
class PowerLawFit:
    """error(n) = a + b n^(-c) fitted to 1 - test_score, with the plateau size it implies.

    Attributes:
        plateau_n: the n where the score gains `threshold` per doubling: b c ln(2) n^(-c) = threshold.
        plateau_n_lower, plateau_n_upper: an interval from draws of (a, b, c) from the normal
            approximation of the fit; None when the fit cannot tell.
    """

    a: float
    b: float
    c: float
    covariance: np.ndarray
    plateau_n: float
    plateau_n_lower: float | None
    plateau_n_upper: float | None
    threshold: float


def fit_inverse_power_law(n_train_samples, test_scores, threshold: float = PLATEAU_GAIN_PER_DOUBLING,
                          seed: int = 0) -> PowerLawFit:
    """Fit error = a + b n^(-c) to 1 - test_score and extrapolate where the curve flattens.

    Raises:
        ValueError: with fewer than 4 distinct training sizes, or when the fit does not converge.
    """
    from scipy.optimize import curve_fit

    n = np.asarray(n_train_samples, dtype=float)
    error = 1 - np.asarray(test_scores, dtype=float)
    if len(np.unique(n)) < 4:
        raise ValueError(f"the curve has {len(np.unique(n))} training sizes; the power-law fit needs at least 4")

    start = (max(float(error.min()) - 0.01, 0.0), max(float(np.ptp(error)), 0.01) * float(n.min()) ** 0.5, 0.5)
    try:
        parameters, covariance = curve_fit(_power_law, n, error, p0=start, bounds=([0, 0, 0.01], [np.inf, np.inf, 3]),
                                           maxfev=20000)
    except RuntimeError as failure:
        raise ValueError(f"the inverse power law did not converge on this curve: {failure}") from failure
    a, b, c = (float(value) for value in parameters)
    plateau_n = _plateau_n(b, c, threshold)

    lower = upper = None
    if np.all(np.isfinite(covariance)):
        draws = np.random.default_rng(seed).multivariate_normal(parameters, covariance, N_PARAMETER_DRAWS,
                                                               check_valid="ignore")
        valid = draws[(draws[:, 1] > 0) & (draws[:, 2] > 0.01)]
        if len(valid) >= N_PARAMETER_DRAWS // 2:
            sizes = np.array([_plateau_n(b_draw, c_draw, threshold) for _, b_draw, c_draw in valid])
            lower, upper = (float(q) for q in np.quantile(sizes, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]))
    return PowerLawFit(a, b, c, covariance, plateau_n, lower, upper, threshold)


def _power_law(n, a, b, c):
    return a + b * np.power(n, -c)


def _plateau_n(b: float, c: float, threshold: float) -> float:
    gain_at_one = b * c * math.log(2)
    if gain_at_one <= threshold:
        return 1.0
    return float((gain_at_one / threshold) ** (1 / c))


def summarize_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Return, per (dataset, model), the plateau test and the power-law plateau size of its curve."""
    summaries = []
    for (dataset, model), group in rows[rows["status"] == "ok"].groupby(["dataset", "model"], sort=True):
        n, scores = group["n_train_samples"].to_numpy(float), group["test_score"].to_numpy(float)
        summary = {"dataset": dataset, "model": model, "max_n_train_samples": float(n.max()),
                   "test_score_at_max": float(scores[n == n.max()].mean())}
        try:
            test = plateau_test(n, scores)
            summary.update(gain_per_doubling=test.gain_per_doubling, gain_lower=test.lower, gain_upper=test.upper,
                           plateau_state=test.state)
        except ValueError as error:
            summary.update(plateau_state=f"not tested: {error}")
        try:
            fit = fit_inverse_power_law(n, scores)
            summary.update(power_law_a=fit.a, power_law_b=fit.b, power_law_c=fit.c, plateau_n=fit.plateau_n,
                           plateau_n_lower=fit.plateau_n_lower, plateau_n_upper=fit.plateau_n_upper)
        except ValueError as error:
            summary.update(power_law_note=str(error))
        summaries.append(summary)
    return pd.DataFrame(summaries)
