"""Discriminant baselines of omics: nearest shrunken centroids and shrinkage LDA."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import NearestCentroid

from models.base import NotApplicable, ParameterCount, Rung, Shape

COUNTING_RULE = (
    "discriminant: nearest shrunken centroids store one centroid per class, n_parameters = "
    "n_classes x n_features; the effective count is the number of class-feature deviations "
    "from the overall centroid that survive soft thresholding (Tibshirani et al. 2002, PNAS 99:6567). "
    "Shrinkage LDA stores one coefficient per feature and an intercept per discriminant "
    "(1 for binary, n_classes for multiclass); it has no effective count"
)
# Shrink thresholds that the inner cross-validation tries. The threshold 0 is the plain nearest centroid.
SHRINK_THRESHOLDS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
N_INNER_FOLDS = 3
# Above this many features, shrinkage LDA uses the dual solver, which never forms the p x p
# covariance. scikit-learn's lsqr solver took 0.7 s at p = 500, 4 s at p = 1000 and 44 s at
# p = 2000 (80 samples, one shared CPU core, scikit-learn 1.9.1). The dual took 0.25 s at p = 22,283.
MAX_PRIMAL_LDA_FEATURES = 500


class ShrunkenCentroidClassifier(ClassifierMixin, BaseEstimator):
    """Nearest shrunken centroids with the shrink threshold chosen by inner cross-validation.

    The threshold with the best mean accuracy over `n_inner_folds` stratified folds of the
    training part wins, and ties go to the larger threshold, which keeps fewer features.
    When the smallest class has fewer members than `n_inner_folds`, no inner split is
    possible and the threshold 0 (plain nearest centroid) is used and recorded in
    `threshold_choice_`.
    """

    def __init__(self, shrink_thresholds=SHRINK_THRESHOLDS, n_inner_folds: int = N_INNER_FOLDS, random_state: int = 0):
        self.shrink_thresholds = shrink_thresholds
        self.n_inner_folds = n_inner_folds
        self.random_state = random_state

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        _, class_counts = np.unique(y, return_counts=True)
        if len(class_counts) < 2:
            raise ValueError(f"nearest shrunken centroids need at least 2 classes in y, got {len(class_counts)}")

        if class_counts.min() >= self.n_inner_folds:
            folds = StratifiedKFold(self.n_inner_folds, shuffle=True, random_state=self.random_state)
            mean_scores = [
                cross_val_score(_centroids(threshold), X, y, cv=folds).mean() for threshold in self.shrink_thresholds
            ]
            best = max(range(len(mean_scores)), key=lambda i: (mean_scores[i], self.shrink_thresholds[i]))
            self.shrink_threshold_ = float(self.shrink_thresholds[best])
            self.threshold_choice_ = f"inner {self.n_inner_folds}-fold cross-validation"
        else:
            self.shrink_threshold_ = 0.0
            self.threshold_choice_ = (
                f"0, because the smallest class has {class_counts.min()} sample(s), fewer than "
                f"n_inner_folds={self.n_inner_folds}"
            )

        self.estimator_ = _centroids(self.shrink_threshold_).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X):
        return self.estimator_.predict(np.asarray(X, dtype=np.float64))

    def predict_proba(self, X):
        return self.estimator_.predict_proba(np.asarray(X, dtype=np.float64))


def _centroids(threshold: float) -> NearestCentroid:
    return NearestCentroid(shrink_threshold=threshold if threshold > 0 else None)


def count_centroids(estimator, shape: Shape, X) -> ParameterCount:
    # deviations_ contains the standardised class-feature deviations after soft thresholding,
    # which sets a shrunk deviation to exactly 0.
    surviving = estimator.estimator_.deviations_ != 0
    n_parameters = int(estimator.estimator_.centroids_.size)
    detail = {
        "shrink_threshold": estimator.shrink_threshold_,
        "threshold_choice": estimator.threshold_choice_,
        "n_surviving_features": int(surviving.any(axis=0).sum()),
    }
    return ParameterCount(n_parameters, float(surviving.sum()), detail)


def build_centroids(shape: Shape, seed: int):
    if not shape.task.is_classification:
        raise NotApplicable("nearest shrunken centroids are a classifier, but this task is regression")
    return ShrunkenCentroidClassifier(random_state=seed)


class DualShrinkageLDA(ClassifierMixin, BaseEstimator):
    """Shrinkage LDA with Ledoit-Wolf shrinkage, solved without forming the p x p covariance.

    It fits the same model as `LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`
    in scikit-learn 1.9.1: each class is standardised, gets its own Ledoit-Wolf shrinkage,
    is scaled back, and the class covariances are averaged with the class priors. That
    average is a diagonal matrix plus a rank-n term, so the Woodbury identity solves it with
    an n x n system. The cost is O(p n^2) time and O(p n) memory, which suits p = 22,283.
    """

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"shrinkage LDA needs at least 2 classes in y, got {len(self.classes_)}")
        n_samples, n_features = X.shape
        self.priors_ = np.bincount(codes) / n_samples
        self.means_ = np.vstack([X[codes == k].mean(axis=0) for k in range(len(self.classes_))])

        # Covariance = diag(diagonal) + factor @ factor.T, accumulated class by class.
        diagonal = np.zeros(n_features)
        factors, self.shrinkage_ = [], []
        for k, prior in enumerate(self.priors_):
            scale, standardized, shrinkage, mu = _ledoit_wolf_parts(X[codes == k])
            diagonal += prior * shrinkage * mu * scale**2
            weight = np.sqrt(prior * (1.0 - shrinkage) / len(standardized))
            factors.append(weight * (standardized * scale).T)
            self.shrinkage_.append(shrinkage)
        if np.any(diagonal <= 0):
            raise ValueError(
                f"the shrunk covariance is singular: Ledoit-Wolf shrinkage is {self.shrinkage_} per class, "
                "so some feature has no diagonal term. Drop features that are constant in every class"
            )

        solved = _woodbury_solve(diagonal, np.hstack(factors), self.means_.T)
        coef = solved.T
        intercept = -0.5 * np.einsum("kj,kj->k", self.means_, coef) + np.log(self.priors_)
        if len(self.classes_) == 2:
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        self.coef_, self.intercept_ = coef, intercept
        return self

    def decision_function(self, X):
        scores = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _ledoit_wolf_parts(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Return (scale, standardised X, shrinkage, mu) of one class, as scikit-learn's `_cov` computes them.

    Ledoit-Wolf needs only sums over the n x n Gram matrix G = Z Z^T of the standardised
    rows z_i. The sum of squared covariance entries is ||G||_F^2 / n^2, and the sum of
    ||z_i||^4 is sum(diag(G)^2).
    """
    n_samples, n_features = X.shape
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    standardized = (X - X.mean(axis=0)) / scale
    if n_samples == 1:
        return scale, standardized, 0.0, float(np.sum(standardized**2) / n_features)

    gram = standardized @ standardized.T
    row_norms = np.diag(gram)
    trace = row_norms.sum() / n_samples
    mu = trace / n_features
    delta_sum = np.sum(gram**2) / n_samples**2
    beta = (np.sum(row_norms**2) / n_samples - delta_sum) / (n_features * n_samples)
    delta = (delta_sum - 2.0 * mu * trace + n_features * mu**2) / n_features
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    return scale, standardized, float(shrinkage), float(mu)


def _woodbury_solve(diagonal: np.ndarray, factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve (diag(diagonal) + factor factor^T) x = rhs through an (r x r) system, r = factor columns."""
    scaled_factor = factor / diagonal[:, None]
    scaled_rhs = rhs / diagonal[:, None]
    inner = np.eye(factor.shape[1]) + factor.T @ scaled_factor
    return scaled_rhs - scaled_factor @ np.linalg.solve(inner, factor.T @ scaled_rhs)


def build_lda(shape: Shape, seed: int):
    if not shape.task.is_classification:
        raise NotApplicable("shrinkage LDA is a classifier, but this task is regression")
    if shape.n_features > MAX_PRIMAL_LDA_FEATURES:
        return DualShrinkageLDA()
    # Ledoit-Wolf shrinkage keeps the covariance invertible when features outnumber samples.
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def count_lda(estimator, shape: Shape, X) -> ParameterCount:
    n_parameters = int(estimator.coef_.size + np.atleast_1d(estimator.intercept_).size)
    return ParameterCount(n_parameters, None, {"n_discriminants": int(estimator.coef_.shape[0])})


def _centroid_estimate(shape: Shape) -> float:
    return max(2, shape.n_classes) * shape.n_features


def _lda_estimate(shape: Shape) -> float:
    n_discriminants = shape.n_classes if shape.n_classes > 2 else 1
    return n_discriminants * (shape.n_features + 1)


RUNGS = [
    Rung("shrunken_centroids", "discriminant", build_centroids, count_centroids, estimate=_centroid_estimate,
         config={"shrink_thresholds": list(SHRINK_THRESHOLDS), "n_inner_folds": N_INNER_FOLDS}),
    Rung("shrinkage_lda", "discriminant", build_lda, count_lda, estimate=_lda_estimate,
         config={"solver": f"lsqr up to {MAX_PRIMAL_LDA_FEATURES} features, then dual (Woodbury)",
                 "shrinkage": "ledoit-wolf"}),
]
