"""Support vector machine with an RBF kernel; its support vectors are counted."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC, SVR
from sklearn.utils.metaestimators import available_if

from models.base import ParameterCount, Rung, Shape

COUNTING_RULE = (
    "svm: n_parameters = dual coefficients + intercepts (one per support vector and class pair), "
    "plus the 2 sigmoid parameters of each probability calibrator for classification; the "
    "support vectors are stored training samples, reported apart as n_support_vectors, which "
    "is also the effective count"
)
N_CALIBRATION_FOLDS = 5


class CalibratedSVC(ClassifierMixin, BaseEstimator):
    """An RBF SVC whose probabilities come from sigmoid calibration on cross-validated decision values.

    This is `CalibratedClassifierCV(SVC(), ensemble=False)`, the replacement that
    scikit-learn 1.9 recommends for the deprecated `SVC(probability=True)`: one SVC is fitted
    on the whole training part and used for prediction. The calibration folds are
    stratified and shrink to the size of the smallest class, down to 2. When a class has a
    single training sample the SVC is fitted without calibration and has no predict_proba.
    """

    def __init__(self, C: float = 1.0, gamma="scale", n_calibration_folds: int = N_CALIBRATION_FOLDS,
                 random_state: int = 0):
        self.C = C
        self.gamma = gamma
        self.n_calibration_folds = n_calibration_folds
        self.random_state = random_state

    def fit(self, X, y):
        classes, counts = np.unique(np.asarray(y), return_counts=True)
        svc = SVC(kernel="rbf", C=self.C, gamma=self.gamma, random_state=self.random_state)
        if counts.min() < 2:
            # Calibration folds need 2 samples of every class. Without them the SVC still
            # predicts classes, but it offers no probabilities, so the log loss is recorded
            # as missing with its reason instead of failing the whole run.
            self.calibrated_ = None
            self.uncalibrated_ = svc.fit(X, y)
            self.classes_ = self.uncalibrated_.classes_
            self.n_calibration_folds_ = 0
            self.calibration_note_ = (f"no probability calibration: class {classes[np.argmin(counts)]} has "
                                      f"{counts.min()} training sample")
            return self
        n_folds = int(min(self.n_calibration_folds, counts.min()))
        folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
        self.calibrated_ = CalibratedClassifierCV(svc, method="sigmoid", cv=folds, ensemble=False).fit(X, y)
        self.classes_ = self.calibrated_.classes_
        self.n_calibration_folds_ = n_folds
        self.calibration_note_ = None
        return self

    @property
    def svc_(self) -> SVC:
        """The SVC fitted on the whole training part."""
        if self.calibrated_ is None:
            return self.uncalibrated_
        return self.calibrated_.calibrated_classifiers_[0].estimator

    def decision_function(self, X):
        return self.svc_.decision_function(X)

    def predict(self, X):
        if self.calibrated_ is None:
            return self.uncalibrated_.predict(X)
        return self.calibrated_.predict(X)

    def _is_calibrated(self) -> bool:
        return getattr(self, "calibrated_", True) is not None

    @available_if(_is_calibrated)
    def predict_proba(self, X):
        return self.calibrated_.predict_proba(X)


def build(shape: Shape, seed: int):
    if shape.task.is_classification:
        return CalibratedSVC(C=1.0, gamma="scale", random_state=seed)
    return SVR(kernel="rbf", C=1.0, gamma="scale")


def count(estimator, shape: Shape, X) -> ParameterCount:
    svm = estimator.svc_ if isinstance(estimator, CalibratedSVC) else estimator
    n_support = int(svm.support_.size)
    n_parameters = int(svm.dual_coef_.size + svm.intercept_.size)
    detail = {"n_support_vectors": n_support, "n_stored_values": n_support * X.shape[1]}
    if isinstance(estimator, CalibratedSVC) and estimator.calibrated_ is None:
        detail["n_calibration_parameters"] = 0
        detail["calibration"] = estimator.calibration_note_
    elif isinstance(estimator, CalibratedSVC):
        calibrators = estimator.calibrated_.calibrated_classifiers_[0].calibrators
        n_calibration = 2 * len(calibrators)
        n_parameters += n_calibration
        detail["n_calibration_parameters"] = n_calibration
    return ParameterCount(n_parameters, float(n_support), detail)


def _estimate(shape: Shape) -> float:
    # Often about half the training samples become support vectors.
    return 0.5 * shape.n_samples * max(1, shape.n_classes - 1)


RUNGS = [
    Rung("svm_rbf", "svm", build, count, estimate=_estimate,
         config={"kernel": "rbf", "C": 1.0, "gamma": "scale", "probability": "sigmoid calibration, ensemble=False"}),
]
