"""The observed answer per dataset (how many parameters scored best) and its fit across datasets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# The gap (train_score - test_score) above which a model counts as overfitting, in units
# of the task metric (accuracy, balanced accuracy or R^2 all lie in [0, 1]).
GAP_THRESHOLD = 0.10
# Confidence level of the coefficient intervals of the cross-dataset fit.
CONFIDENCE = 0.95
# Minimum number of datasets for the cross-dataset fit: three coefficients plus one residual degree.
MIN_DATASETS_FOR_FIT = 4

OBSERVED_COLUMNS = (
    "dataset", "n_models", "best_model", "best_test_score", "best_test_score_se", "best_n_parameters",
    "one_se_model", "one_se_test_score", "one_se_n_parameters", "gap_threshold", "gap_exceeded_model",
    "gap_exceeded_n_parameters", "n_train_samples",
)


def model_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (dataset, model) whose every run finished ok: mean scores, gap,
    parameter count and the standard error of the mean test score over repeats and folds."""
    from bench.runs import OK  # imported here: bench.runs pulls in every model family

    required = {"dataset", "model", "status", "test_score", "train_score", "gap", "n_parameters", "n_train_samples"}
    missing = sorted(required - set(frame.columns))
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; pass ResultsStore.frame() output")

    rows = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=True):
        if not (group["status"] == OK).all():
            continue
        test_scores = group["test_score"].astype(float)
        n_runs = len(group)
        rows.append({
            "dataset": dataset,
            "model": model,
            "n_runs": n_runs,
            "test_score": float(test_scores.mean()),
            "test_score_se": float(test_scores.std(ddof=1) / math.sqrt(n_runs)) if n_runs > 1 else math.nan,
            "train_score": float(group["train_score"].astype(float).mean()),
            "gap": float(group["gap"].astype(float).mean()),
            "n_parameters": float(group["n_parameters"].astype(float).mean()),
            "n_train_samples": float(group["n_train_samples"].astype(float).mean()),
        })
    return pd.DataFrame(rows, columns=["dataset", "model", "n_runs", "test_score", "test_score_se", "train_score",
                                       "gap", "n_parameters", "n_train_samples"])


def observed_answer(frame: pd.DataFrame, gap_threshold: float = GAP_THRESHOLD) -> pd.DataFrame:
    """Return, per dataset, the parameter counts that the results point to.

    - best: the model with the highest mean test score;
    - one standard error: the model with the fewest parameters whose mean test score is within
      one standard error of the best one's (the one-standard-error rule of Hastie, Tibshirani
      and Friedman, The Elements of Statistical Learning, 2nd ed., section 7.10);
    - gap exceeded: the model with the fewest parameters whose mean gap exceeds `gap_threshold`,
      or none.

    Only models whose every run finished ok take part, so a failed run never moves the answer.
    """
    summary = model_summary(frame)
    rows = []
    for dataset, models in summary.groupby("dataset", sort=True):
        by_size = models.sort_values(["n_parameters", "model"], kind="stable")
        best = models.loc[models["test_score"].idxmax()]
        best_se = 0.0 if math.isnan(best["test_score_se"]) else best["test_score_se"]
        within = by_size[by_size["test_score"] >= best["test_score"] - best_se]
        one_se = within.iloc[0]
        exceeded = by_size[by_size["gap"] > gap_threshold]
        first_exceeded = exceeded.iloc[0] if len(exceeded) else None
        rows.append({
            "dataset": dataset,
            "n_models": len(models),
            "best_model": best["model"],
            "best_test_score": best["test_score"],
            "best_test_score_se": best["test_score_se"],
            "best_n_parameters": best["n_parameters"],
            "one_se_model": one_se["model"],
            "one_se_test_score": one_se["test_score"],
            "one_se_n_parameters": one_se["n_parameters"],
            "gap_threshold": gap_threshold,
            "gap_exceeded_model": None if first_exceeded is None else first_exceeded["model"],
            "gap_exceeded_n_parameters": math.nan if first_exceeded is None else first_exceeded["n_parameters"],
            "n_train_samples": float(models["n_train_samples"].mean()),
        })
    return pd.DataFrame(rows, columns=list(OBSERVED_COLUMNS))


def predicted_vs_observed(predicted: pd.DataFrame, observed: pd.DataFrame) -> pd.DataFrame:
    """Join the rule predictions and the observed answer on `dataset`, adding log10 ratios
    observed / predicted for each rule (positive: the data supported more than the rule allows)."""
    joined = predicted.merge(observed, on="dataset", how="left")
    for column in [c for c in predicted.columns if c.startswith("max_parameters_")]:
        rule = column.removeprefix("max_parameters_")
        with np.errstate(divide="ignore", invalid="ignore"):
            joined[f"log10_best_over_{rule}"] = np.log10(
                joined["best_n_parameters"].astype(float) / joined[column].astype(float)
            )
    return joined


@dataclass(frozen=True)
class LogLogFit:
    """Least-squares fit log(best count) = a + b log(n) + c log(p_eff), natural logarithms.

    `coefficients`, `standard_errors` and the interval bounds are ordered (a, b, c).
    """

    n_datasets: int
    coefficients: tuple[float, float, float]
    standard_errors: tuple[float, float, float]
    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    r_squared: float
    residual_std: float
    confidence: float = CONFIDENCE

    def as_rows(self) -> list[dict]:
        names = ("intercept", "log_n_samples", "log_p_eff")
        return [
            {"term": name, "estimate": self.coefficients[i], "standard_error": self.standard_errors[i],
             f"ci{int(self.confidence * 100)}_low": self.lower[i], f"ci{int(self.confidence * 100)}_high": self.upper[i]}
            for i, name in enumerate(names)
        ]


def fit_log_log(best_n_parameters, n_samples, p_eff, confidence: float = CONFIDENCE) -> LogLogFit:
    """Fit log(best count) on log(n) and log(p_eff) by ordinary least squares.

    Standard errors come from sigma^2 (X^T X)^-1 with the residual variance sigma^2, and the
    intervals from Student's t with n_datasets - 3 degrees of freedom.

    Raises:
        ValueError: when fewer than 4 datasets have positive, finite values of all three.
    """
    from scipy import stats

    values = np.column_stack([np.asarray(best_n_parameters, float), np.asarray(n_samples, float),
                              np.asarray(p_eff, float)])
    usable = np.all(np.isfinite(values) & (values > 0), axis=1)
    values = values[usable]
    if len(values) < MIN_DATASETS_FOR_FIT:
        raise ValueError(
            f"{len(values)} dataset(s) have a positive best count, n and p_eff; the log-log fit needs at least "
            f"{MIN_DATASETS_FOR_FIT}: add datasets or results"
        )

    logs = np.log(values)
    response = logs[:, 0]
    design = np.column_stack([np.ones(len(logs)), logs[:, 1], logs[:, 2]])
    coefficients, _, rank, _ = np.linalg.lstsq(design, response, rcond=None)
    if rank < 3:
        raise ValueError("log(n) and log(p_eff) are collinear over these datasets; the fit cannot separate them")

    residuals = response - design @ coefficients
    degrees = len(logs) - 3
    residual_variance = float(residuals @ residuals) / degrees
    covariance = residual_variance * np.linalg.inv(design.T @ design)
    errors = np.sqrt(np.diag(covariance))
    quantile = stats.t.ppf(0.5 + confidence / 2, degrees)
    total = float(np.sum((response - response.mean()) ** 2))
    r_squared = 1 - float(residuals @ residuals) / total if total > 0 else math.nan
    return LogLogFit(
        n_datasets=len(logs),
        coefficients=tuple(float(c) for c in coefficients),
        standard_errors=tuple(float(e) for e in errors),
        lower=tuple(float(c - quantile * e) for c, e in zip(coefficients, errors)),
        upper=tuple(float(c + quantile * e) for c, e in zip(coefficients, errors)),
        r_squared=r_squared,
        residual_std=math.sqrt(residual_variance),
        confidence=confidence,
    )
