"""Discriminant baselines of omics: nearest shrunken centroids and shrinkage LDA."""

from __future__ import annotations

import numpy as np
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
# Shrinkage LDA builds and solves a p x p covariance, so its fit time grows as p^3. Measured
# with scikit-learn 1.9.1 on one shared CPU core and 80 samples: 0.7 s at p = 500, 4 s at
# p = 1000, 44 s at p = 2000. Wider inputs are not applicable rather than slow.
MAX_LDA_FEATURES = 1000


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


def build_lda(shape: Shape, seed: int):
    if not shape.task.is_classification:
        raise NotApplicable("shrinkage LDA is a classifier, but this task is regression")
    if shape.n_features > MAX_LDA_FEATURES:
        raise NotApplicable(
            f"shrinkage LDA needs a {shape.n_features} x {shape.n_features} covariance, so it runs only up to "
            f"n_features={MAX_LDA_FEATURES}"
        )
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
         config={"solver": "lsqr", "shrinkage": "ledoit-wolf", "max_features": MAX_LDA_FEATURES}),
]
