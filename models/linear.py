"""Linear models: L2 (logistic or ridge) and L1-sparse (logistic or lasso)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LassoCV, LogisticRegression, RidgeCV
from sklearn.multiclass import OneVsRestClassifier

from models.base import ParameterCount, Rung, Shape

COUNTING_RULE = (
    "linear: n_parameters = coefficients + intercepts (one set per class for multiclass); "
    "for L1 models only non-zero coefficients count. Effective parameters: ridge uses "
    "df = sum_j d_j^2 / (d_j^2 + alpha) over the singular values d_j of the centred training "
    "matrix (Hastie, Tibshirani, Friedman, ESL 2nd ed., sec. 3.4.1); lasso uses the number of "
    "non-zero coefficients (Zou, Hastie, Tibshirani 2007); L2 logistic has none."
)
# Ridge penalties tried by leave-one-out cross-validation on the training part.
RIDGE_ALPHAS = np.logspace(-3, 4, 15)


def build_l2(shape: Shape, seed: int):
    if shape.task.is_classification:
        return LogisticRegression(C=1.0, max_iter=2000)
    return RidgeCV(alphas=RIDGE_ALPHAS)


def build_l1(shape: Shape, seed: int):
    if shape.task.is_classification:
        # liblinear is fast at large p but binary only, so multiclass runs one-vs-rest.
        binary = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=1.0, random_state=seed)
        return binary if shape.n_classes == 2 else OneVsRestClassifier(binary)
    return LassoCV(cv=5, alphas=30, random_state=seed, max_iter=5000)


def coefficients(estimator) -> tuple[np.ndarray, np.ndarray]:
    """Return (coefficients, intercepts) of a fitted linear model or one-vs-rest wrapper."""
    if isinstance(estimator, OneVsRestClassifier):
        coef = np.vstack([inner.coef_ for inner in estimator.estimators_])
        intercept = np.concatenate([np.atleast_1d(inner.intercept_) for inner in estimator.estimators_])
        return coef, intercept
    return np.atleast_2d(estimator.coef_), np.atleast_1d(estimator.intercept_)


def count_l2(estimator, shape: Shape, X) -> ParameterCount:
    coef, intercept = coefficients(estimator)
    effective = None
    if isinstance(estimator, RidgeCV):
        effective = ridge_effective_parameters(X, estimator.alpha_) + 1  # + intercept
    return ParameterCount(coef.size + intercept.size, effective, {"penalty": "l2"})


def count_l1(estimator, shape: Shape, X) -> ParameterCount:
    coef, intercept = coefficients(estimator)
    n_nonzero = int(np.count_nonzero(coef))
    return ParameterCount(n_nonzero + intercept.size, float(n_nonzero), {"n_nonzero_coefficients": n_nonzero})


def ridge_effective_parameters(X: np.ndarray, alpha: float) -> float:
    """Return the ridge degrees of freedom sum d^2 / (d^2 + alpha) of the centred matrix X."""
    centred = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    singular_values = np.linalg.svd(centred, compute_uv=False)
    squared = singular_values**2
    return float(np.sum(squared / (squared + alpha)))


def _linear_size(shape: Shape) -> int:
    per_output = shape.n_features + 1
    return per_output * (shape.n_classes if shape.n_classes > 2 else 1)


RUNGS = [
    Rung("l1_linear", "linear", build_l1, count_l1, estimate=lambda shape: min(_linear_size(shape), shape.n_samples),
         config={"penalty": "l1", "C": 1.0, "regression": "LassoCV(cv=5)"}),
    Rung("l2_linear", "linear", build_l2, count_l2, estimate=_linear_size,
         config={"penalty": "l2", "C": 1.0, "regression": "RidgeCV(leave-one-out)"}),
]
