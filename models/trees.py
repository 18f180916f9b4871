"""Trees and ensembles: a decision tree, random forests, extra trees, gradient boosting."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from models.base import ParameterCount, Rung, Shape

COUNTING_RULE = (
    "trees: n_parameters = nodes of all trees (a split node stores a feature and a threshold, a "
    "leaf stores its prediction); split nodes and leaves are reported apart, and the leaves "
    "are the effective count (one fitted value per leaf)"
)


def _tree_nodes(estimator) -> tuple[int, int]:
    """Return (split nodes, leaves) summed over all trees of a fitted estimator."""
    # NOTE: HistGradientBoosting exposes its trees only through the private `_predictors`
    # (scikit-learn 1.9.1), so a scikit-learn upgrade may break this branch.
    if hasattr(estimator, "_predictors"):
        leaves = splits = 0
        for iteration in estimator._predictors:
            for predictor in iteration:
                is_leaf = predictor.nodes["is_leaf"].astype(bool)
                leaves += int(is_leaf.sum())
                splits += int((~is_leaf).sum())
        return splits, leaves
    trees = estimator.estimators_ if hasattr(estimator, "estimators_") else [estimator]
    leaves = splits = 0
    for tree in np.ravel(trees):
        structure = tree.tree_
        is_leaf = structure.children_left == -1
        leaves += int(is_leaf.sum())
        splits += int((~is_leaf).sum())
    return splits, leaves


def count(estimator, shape: Shape, X) -> ParameterCount:
    splits, leaves = _tree_nodes(estimator)
    detail = {"n_split_nodes": splits, "n_leaves": leaves}
    if hasattr(estimator, "n_iter_"):
        detail["n_iterations"] = int(estimator.n_iter_)
    if hasattr(estimator, "early_stopping_rule_"):
        detail["early_stopping_rule"] = estimator.early_stopping_rule_
    return ParameterCount(splits + leaves, float(leaves), detail)


def _build_tree(shape: Shape, seed: int):
    cls = DecisionTreeClassifier if shape.task.is_classification else DecisionTreeRegressor
    return cls(random_state=seed)


def _forest_builder(kind: str, n_estimators: int, max_depth: int | None):
    classes = {
        "random_forest": (RandomForestClassifier, RandomForestRegressor),
        "extra_trees": (ExtraTreesClassifier, ExtraTreesRegressor),
    }[kind]

    def build(shape: Shape, seed: int):
        cls = classes[0] if shape.task.is_classification else classes[1]
        return cls(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1)

    return build


class BoostingClassifier(HistGradientBoostingClassifier):
    """HistGradientBoostingClassifier whose early stopping adapts to small, many-class training parts.

    scikit-learn cuts the validation part with a stratified split, which fails when the
    validation part has fewer samples than there are classes, or when a class has a single
    training sample. The validation fraction is then raised to hold one sample per class;
    when a class has one sample, early stopping is switched off and `max_iter` is capped at
    NO_EARLY_STOPPING_MAX_ITER. The rule applied is stored in `early_stopping_rule_`.
    """

    NO_EARLY_STOPPING_MAX_ITER = 100

    def fit(self, X, y, sample_weight=None):
        _, counts = np.unique(y, return_counts=True)
        saved = (self.early_stopping, self.validation_fraction, self.max_iter)
        self.early_stopping_rule_ = "validation fraction as set"
        if self.early_stopping and counts.min() < 2:
            self.early_stopping, self.max_iter = False, min(self.max_iter, self.NO_EARLY_STOPPING_MAX_ITER)
            self.early_stopping_rule_ = f"no early stopping (a class has 1 training sample), max_iter={self.max_iter}"
        elif self.early_stopping and self.validation_fraction * len(y) < len(counts):
            self.validation_fraction = min(0.5, (len(counts) + 0.5) / len(y))
            self.early_stopping_rule_ = f"validation fraction raised to {self.validation_fraction:.3f} for {len(counts)} classes"
        try:
            return super().fit(X, y, sample_weight=sample_weight)
        finally:
            self.early_stopping, self.validation_fraction, self.max_iter = saved


# Above this many features each split considers a random tenth of them. With 63 bins instead
# of 255 this cut one early-stopped fit on gordon (145 x 12,533) from 22 s to 6 s on one core,
# with the same number of iterations within 10 %.
BOOSTING_WIDE_FEATURES = 1000
BOOSTING_MAX_BINS = 63


def _build_boosting(shape: Shape, seed: int):
    # Early stopping on 10 % of the training part keeps the number of iterations data-driven.
    max_features = 0.1 if shape.n_features > BOOSTING_WIDE_FEATURES else 1.0
    options = dict(max_iter=300, early_stopping=True, validation_fraction=0.1, n_iter_no_change=10,
                   max_bins=BOOSTING_MAX_BINS, max_features=max_features, random_state=seed)
    if shape.task.is_classification:
        return BoostingClassifier(**options)
    return HistGradientBoostingRegressor(**options)


def _full_tree_estimate(shape: Shape, n_trees: int = 1, bootstrap_fraction: float = 1.0) -> float:
    # An unpruned tree has about one leaf per distinct training sample, so 2n - 1 nodes.
    return n_trees * max(1.0, 2 * shape.n_samples * bootstrap_fraction - 1)


def _depth_limited_estimate(shape: Shape, n_trees: int, max_depth: int) -> float:
    return n_trees * min(2 ** (max_depth + 1) - 1, max(1, 2 * shape.n_samples - 1))


RUNGS = [
    Rung("decision_tree", "tree", _build_tree, count, estimate=_full_tree_estimate, config={"max_depth": None}),
    Rung("random_forest_16_d3", "forest", _forest_builder("random_forest", 16, 3), count,
         estimate=lambda shape: _depth_limited_estimate(shape, 16, 3), config={"n_estimators": 16, "max_depth": 3}),
    Rung("random_forest_100", "forest", _forest_builder("random_forest", 100, None), count,
         estimate=lambda shape: _full_tree_estimate(shape, 100, 0.632), config={"n_estimators": 100, "max_depth": None}),
    Rung("extra_trees_100", "forest", _forest_builder("extra_trees", 100, None), count,
         estimate=lambda shape: _full_tree_estimate(shape, 100), config={"n_estimators": 100, "max_depth": None}),
    Rung("hist_gradient_boosting", "boosting", _build_boosting, count,
         estimate=lambda shape: 31 * 2 * 50 * max(1, shape.n_outputs),
         config={"max_iter": 300, "early_stopping": True, "max_leaf_nodes": 31, "max_bins": BOOSTING_MAX_BINS,
                 "max_features": f"0.1 above {BOOSTING_WIDE_FEATURES} features, else 1.0"}),
]
