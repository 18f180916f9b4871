"""Effective dimension of a feature matrix: how many independent variables the samples span.

Every estimator works on the n x n Gram matrix of the centred samples, whose non-zero
eigenvalues are those of the p x p covariance, so the cost grows with n^2 p, not p^2.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LassoCV

from bench.config import TaskType

# Share of the total variance that `n_components_for_variance` explains by default.
VARIANCE_SHARE = 0.90
# Eigenvalues below this fraction of the largest are rounding noise of the Gram matrix.
RELATIVE_EIGENVALUE_FLOOR = 1e-10
# Penalties tried by the cross-validated lasso, from alpha_max down to alpha_max * LASSO_EPS, and
# its folds. Weaker penalties than alpha_max / 100 made coordinate descent about 10 times slower
# on arrhythmia (361 x 340, 13 classes: 77 s against 7 s on one core) without being chosen there.
LASSO_N_ALPHAS = 30
LASSO_EPS = 1e-2
LASSO_N_FOLDS = 5


@dataclass(frozen=True)
class EffectiveDimension:
    """Effective dimension estimates of one feature matrix.

    Attributes:
        participation_ratio: (sum lambda)^2 / sum lambda^2 of the sample covariance spectrum.
        participation_ratio_corrected: the same ratio from unbiased estimates of its numerator
            and denominator (see `participation_ratio_corrected`).
        hard_threshold_rank: singular values above the Gavish-Donoho threshold.
        n_components_90: principal components needed for 90 % of the variance.
        n_lasso_features: features with a non-zero coefficient in a cross-validated lasso;
            None when no target was given.
    """

    n_samples: int
    n_features: int
    participation_ratio: float
    participation_ratio_corrected: float
    hard_threshold_rank: int
    n_components_90: int
    n_lasso_features: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_dimension(X: np.ndarray, y: np.ndarray | None = None, task: TaskType | None = None,
                       seed: int = 0) -> EffectiveDimension:
    """Estimate every effective dimension of a preprocessed training matrix.

    Args:
        X: samples x features, already imputed, encoded and scaled.
        y: the target of the same samples; the lasso count needs it and is None without it.
        task: the task type of `y`; classes are coded one-vs-rest for the lasso.
    """
    X = _checked_matrix(X)
    eigenvalues = covariance_eigenvalues(X)
    n_lasso = None
    if y is not None:
        if task is None:
            raise ValueError("task is None but y was given; pass the task type so the lasso can code the target")
        n_lasso = lasso_feature_count(X, y, task, seed)
    return EffectiveDimension(
        n_samples=X.shape[0],
        n_features=X.shape[1],
        participation_ratio=participation_ratio(eigenvalues),
        participation_ratio_corrected=participation_ratio_corrected(X),
        hard_threshold_rank=hard_threshold_rank(X),
        n_components_90=n_components_for_variance(eigenvalues, VARIANCE_SHARE),
        n_lasso_features=n_lasso,
    )


def _checked_matrix(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d samples x features matrix, got shape {X.shape}")
    if X.shape[0] < 3 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}; effective dimension needs at least 3 samples and 1 feature")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values; impute and scale it first (bench.preprocess.Preprocessor)")
    return X


def centred_gram(X: np.ndarray) -> np.ndarray:
    """Return the n x n Gram matrix X_c X_c^T of the column-centred samples."""
    centred = X - X.mean(axis=0)
    return centred @ centred.T


def covariance_eigenvalues(X: np.ndarray) -> np.ndarray:
    """Return the non-zero eigenvalues of the sample covariance (divisor n - 1), largest first.

    They are computed from the n x n Gram matrix, which has the same non-zero eigenvalues
    as the p x p covariance times n - 1.
    """
    X = _checked_matrix(X)
    eigenvalues = np.linalg.eigvalsh(centred_gram(X))[::-1] / (X.shape[0] - 1)
    if eigenvalues[0] <= 0:
        return np.zeros(0)
    return eigenvalues[eigenvalues > eigenvalues[0] * RELATIVE_EIGENVALUE_FLOOR]


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """Return (sum lambda)^2 / sum lambda^2, or 0 for an empty or all-zero spectrum."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    denominator = float(np.sum(eigenvalues**2))
    if denominator == 0:
        return 0.0
    return float(np.sum(eigenvalues) ** 2 / denominator)


def participation_ratio_corrected(X: np.ndarray) -> float:
    """Return the participation ratio from unbiased estimates of tr(C)^2 and tr(C^2).

    The plain ratio of sample eigenvalues cannot exceed about n and is biased low when n is
    small. For independent samples x_i with mean zero and covariance C,
    E[|x_i|^2 |x_j|^2] = tr(C)^2 and E[(x_i . x_j)^2] = tr(C^2) for i != j, so averaging over
    distinct pairs (i, j) of the Gram matrix G = X X^T gives unbiased estimates of both.
    This is the row (sample) correction of Chun, Canatar, Chung and Lee, "Estimating
    Dimensionality of Neural Representations from Finite Samples" (ICLR 2026; PyPI package
    `dimensionality`), where the ratio of the two averages estimates the dimension.

    NOTE: the samples are centred with their own mean first, which makes pairs weakly
    dependent; the remaining bias is of order 1/n and was not corrected.
    """
    X = _checked_matrix(X)
    gram = centred_gram(X)
    norms = np.diag(gram)
    n_pairs = X.shape[0] * (X.shape[0] - 1)
    trace_squared = (np.sum(norms) ** 2 - np.sum(norms**2)) / n_pairs
    trace_of_square = (np.sum(gram**2) - np.sum(norms**2)) / n_pairs
    if trace_of_square <= 0:
        return 0.0
    return float(trace_squared / trace_of_square)


def gavish_donoho_omega(beta: float) -> float:
    """Return omega(beta) ~ 0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43 for aspect ratio beta <= 1.

    The threshold for unknown noise is omega(beta) times the median singular value (Gavish and
    Donoho, "The optimal hard threshold for singular values is 4/sqrt(3)", IEEE Trans. Inf.
    Theory 60(8), 2014); omega(1) is about 2.858.
    """
    if not 0 < beta <= 1:
        raise ValueError(f"beta={beta} is invalid; the aspect ratio min(n, p) / max(n, p) lies in (0, 1]")
    return 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43


def gavish_donoho_lambda(beta: float) -> float:
    """Return lambda*(beta), the threshold factor for known noise: tau = lambda*(beta) sqrt(n) sigma.

    lambda*(1) = 4/sqrt(3) (Gavish and Donoho 2014).
    """
    if not 0 < beta <= 1:
        raise ValueError(f"beta={beta} is invalid; the aspect ratio min(n, p) / max(n, p) lies in (0, 1]")
    return math.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + math.sqrt(beta**2 + 14 * beta + 1)))


def hard_threshold_rank(X: np.ndarray, noise_sigma: float | None = None) -> int:
    """Return how many singular values of the centred X exceed the Gavish-Donoho threshold.

    With `noise_sigma` None the noise level is unknown and the threshold is
    omega(beta) * median singular value; otherwise it is lambda*(beta) * sqrt(max(n, p)) * sigma.
    Centring removes one dimension, so the matrix is treated as (n - 1) x p. The median is a
    noise estimate only when the rank is small against min(n, p): at rank 30 of 59 non-zero
    singular values it pushes the threshold up and the rank comes out low (tested).
    """
    X = _checked_matrix(X)
    n_rows = X.shape[0] - 1
    n_short, n_long = min(n_rows, X.shape[1]), max(n_rows, X.shape[1])
    beta = n_short / n_long
    eigenvalues = np.clip(np.linalg.eigvalsh(centred_gram(X))[::-1], 0, None)
    singular_values = np.sqrt(eigenvalues[:n_short])
    if noise_sigma is None:
        threshold = gavish_donoho_omega(beta) * float(np.median(singular_values))
    else:
        threshold = gavish_donoho_lambda(beta) * math.sqrt(n_long) * noise_sigma
    return int(np.sum(singular_values > threshold))


def n_components_for_variance(eigenvalues: np.ndarray, share: float = VARIANCE_SHARE) -> int:
    """Return the fewest principal components whose eigenvalues sum to `share` of the total."""
    if not 0 < share <= 1:
        raise ValueError(f"share={share} is invalid; use a fraction in (0, 1], such as 0.9")
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    total = float(np.sum(eigenvalues))
    if total == 0:
        return 0
    cumulative = np.cumsum(eigenvalues) / total
    return int(np.searchsorted(cumulative, share - 1e-12) + 1)


def lasso_feature_count(X: np.ndarray, y: np.ndarray, task: TaskType, seed: int = 0) -> int:
    """Return how many features a cross-validated lasso keeps (see `lasso_feature_support`)."""
    return int(lasso_feature_support(X, y, task, seed).sum())


def lasso_feature_support(X: np.ndarray, y: np.ndarray, task: TaskType, seed: int = 0) -> np.ndarray:
    """Return a boolean mask of the features with a non-zero coefficient in a cross-validated lasso.

    Classification targets are coded one-vs-rest as 0/1 columns (one column for binary), a
    lasso is fitted to each, and a feature counts when any column keeps it. The penalty is
    the one with the least 5-fold cross-validated squared error. That penalty is chosen for
    prediction, so on correlated features the lasso keeps several times more features than
    the target depends on (measured on the simulated blocks of `bench.simulate`).

    NOTE: for classes this is a linear probability model, not an L1 logistic regression,
    because LassoCV takes seconds at p = 22,000 where L1 logistic CV takes minutes.
    """
    X = _checked_matrix(X)
    targets = _lasso_targets(np.asarray(y), task)
    n_folds = min(LASSO_N_FOLDS, X.shape[0])
    kept = np.zeros(X.shape[1], dtype=bool)
    for target in targets:
        if np.ptp(target) == 0:
            continue
        model = LassoCV(alphas=LASSO_N_ALPHAS, eps=LASSO_EPS, cv=n_folds, random_state=seed, max_iter=2000,
                        tol=1e-3)
        with warnings.catch_warnings():
            # A path that stops early at the weakest penalties still ranks the penalties it tried.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, target)
        kept |= model.coef_ != 0
    return kept


def _lasso_targets(y: np.ndarray, task: TaskType) -> list[np.ndarray]:
    if task is TaskType.REGRESSION:
        return [y.astype(np.float64)]
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"y has a single class {classes.tolist()}; the lasso count needs at least 2 classes")
    if len(classes) == 2:
        return [(y == classes[1]).astype(np.float64)]
    return [(y == label).astype(np.float64) for label in classes]


def dataset_dimension(dataset, protocol=None, n_splits: int = 1, seed: int = 0) -> dict:
    """Estimate the effective dimension on the preprocessed training parts of a dataset's splits.

    Each spectral estimate is averaged over the first `n_splits` splits of `protocol` (by
    default one repeat of 5-fold cross-validation), so it uses the rows that the models are
    fitted on. The lasso count, which costs seconds per split, comes from the first split only.

    Returns:
        The `EffectiveDimension` fields averaged over the splits, plus `n_splits`.
    """
    from bench.preprocess import Preprocessor
    from bench.splits import Protocol, make_splits

    protocol = protocol or Protocol(n_folds=5, n_repeats=1, seed=seed)
    splits = make_splits(dataset.y, dataset.task, protocol, dataset.name)
    if not 1 <= n_splits <= len(splits):
        raise ValueError(f"n_splits={n_splits} is invalid; the protocol has {len(splits)} splits")

    y = dataset.y.cat.codes.to_numpy() if dataset.task.is_classification else dataset.y.to_numpy(dtype=np.float64)
    estimates = []
    for index, split in enumerate(splits[:n_splits]):
        train = dataset.X.iloc[split.train]
        X_train = Preprocessor().fit(train).transform(train)
        target = y[split.train] if index == 0 else None
        estimates.append(estimate_dimension(X_train, target, dataset.task, seed).as_dict())
    spectral_keys = [key for key in estimates[0] if key != "n_lasso_features"]
    averaged = {key: float(np.mean([estimate[key] for estimate in estimates])) for key in spectral_keys}
    averaged["n_lasso_features"] = float(estimates[0]["n_lasso_features"])
    averaged["n_splits"] = n_splits
    return averaged
