"""k-nearest neighbours: non-parametric, so the stored training values are reported apart."""

from __future__ import annotations

from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from models.base import ParameterCount, Rung, Shape

N_NEIGHBORS = 5
COUNTING_RULE = (
    f"knn: no weights are fitted; n_parameters = n_train_samples / k (k = {N_NEIGHBORS}), the effective "
    "degrees of freedom of a k-nearest-neighbour fit (Hastie, Tibshirani, Friedman, ESL 2nd ed., "
    "sec. 7.6); the stored training values (n_train_samples x n_features) are reported apart"
)


def build(shape: Shape, seed: int):
    cls = KNeighborsClassifier if shape.task.is_classification else KNeighborsRegressor
    return cls(n_neighbors=N_NEIGHBORS)


def count(estimator, shape: Shape, X) -> ParameterCount:
    n_train = estimator.n_samples_fit_
    k = min(estimator.n_neighbors, n_train)
    effective = n_train / k
    detail = {"n_stored_values": int(n_train * X.shape[1]), "k": k}
    return ParameterCount(max(1, round(effective)), effective, detail)


RUNGS = [
    Rung("knn_5", "neighbors", build, count, estimate=lambda shape: shape.n_samples / N_NEIGHBORS,
         config={"n_neighbors": N_NEIGHBORS}),
]
