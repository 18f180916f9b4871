"""Support vector machine with an RBF kernel; its support vectors are counted."""

from __future__ import annotations

from sklearn.svm import SVC, SVR

from models.base import ParameterCount, Rung, Shape

COUNTING_RULE = (
    "svm: n_parameters = dual coefficients + intercepts (one per support vector and class pair); "
    "the support vectors are stored training samples, reported apart as n_support_vectors"
)


def build(shape: Shape, seed: int):
    if shape.task.is_classification:
        return SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=seed)
    return SVR(kernel="rbf", C=1.0, gamma="scale")


def count(estimator, shape: Shape, X) -> ParameterCount:
    n_support = int(estimator.support_.size)
    n_parameters = int(estimator.dual_coef_.size + estimator.intercept_.size)
    detail = {"n_support_vectors": n_support, "n_stored_values": n_support * X.shape[1]}
    return ParameterCount(n_parameters, float(n_support), detail)


def _estimate(shape: Shape) -> float:
    # Often about half the training samples become support vectors.
    return 0.5 * shape.n_samples * max(1, shape.n_classes - 1)


RUNGS = [
    Rung("svm_rbf", "svm", build, count, estimate=_estimate, config={"kernel": "rbf", "C": 1.0, "gamma": "scale"}),
]
