"""Tests of the ladder: counting rules against hand-computed values, rung interfaces, the graph network."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import Lasso, LogisticRegression, RidgeCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeClassifier

from bench.config import TaskType
from bench.runs import DEFAULT_COMPUTE_BUDGET, estimated_flops
from models import COUNTING_RULES, FAMILY_MODULES, NotApplicable, ParameterCount, Shape, estimator_rung, get_rungs, ladder
from models import baseline, discriminant, gnn, linear, neighbors, svm, trees
from models.discriminant import DualShrinkageLDA, ShrunkenCentroidClassifier
from models.gnn import (
    FeatureGraphClassifier,
    FeatureGraphRegressor,
    correlation_knn_graph,
    degree_matched_random_graph,
    gnn_parameter_count,
    node_degrees,
)
from models.svm import CalibratedSVC

BINARY = Shape(TaskType.BINARY, n_features=4, n_classes=2, n_samples=20)
MULTICLASS = Shape(TaskType.MULTICLASS, n_features=4, n_classes=3, n_samples=30)
REGRESSION = Shape(TaskType.REGRESSION, n_features=4, n_classes=0, n_samples=20)
OMICS = Shape(TaskType.BINARY, n_features=10_000, n_classes=2, n_samples=100)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # The machine is shared, and one thread also makes the bit-for-bit comparisons meaningful.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _blobs(n_per_class: int, n_classes: int, n_features: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(3.0 * k, 1.0, size=(n_per_class, n_features)) for k in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


# ---- Ladder -------------------------------------------------------------------

def test_ladder_has_fourteen_rungs_or_more():
    names = [rung.name for rung in ladder()]
    assert len(names) >= 14
    assert len(set(names)) == len(names)


def test_ladder_ordered_by_omics_estimate():
    estimates = [rung.estimate(OMICS) for rung in ladder()]
    assert estimates == sorted(estimates)


@pytest.mark.parametrize("decade", range(7))
def test_ladder_covers_decade_on_omics_shape(decade):
    low, high = 10.0**decade, 10.0 ** (decade + 1)
    in_decade = [rung.name for rung in ladder() if low <= rung.estimate(OMICS) < high]
    assert in_decade, f"no rung estimated in [{low:g}, {high:g}) parameters on the omics shape"


def test_ladder_reaches_pretrained_size():
    assert max(rung.estimate(OMICS) for rung in ladder()) >= 2e7


def test_ladder_required_families_present():
    families = {rung.family for rung in ladder()}
    expected = {"baseline", "linear", "discriminant", "neighbors", "tree", "forest", "boosting", "svm", "gnn", "mlp"}
    assert expected <= families


def test_counting_rules_cover_every_module():
    assert set(COUNTING_RULES) == {module.__name__.split(".")[-1] for module in FAMILY_MODULES}
    for name, rule in COUNTING_RULES.items():
        assert "n_parameters" in rule, f"the {name} rule does not define n_parameters"


def test_get_rungs_unknown_name_raises():
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['no_such_rung'\]"):
        get_rungs(["no_such_rung"])


@pytest.mark.parametrize("shape", [BINARY, MULTICLASS, REGRESSION], ids=lambda shape: shape.task.value)
def test_rungs_are_sklearn_estimators(shape):
    for rung in ladder():
        try:
            estimator = rung.build(shape, 0)
        except NotApplicable:
            continue
        assert callable(getattr(estimator, "fit", None)), rung.name
        assert callable(getattr(estimator, "predict", None)), rung.name
        assert isinstance(clone(estimator).get_params(), dict), rung.name
        if shape.task.is_classification:
            assert callable(getattr(estimator, "predict_proba", None)), rung.name


# ---- Baseline, linear, neighbours ------------------------------------------------

def test_constant_count_classes_minus_one():
    X, y = _blobs(5, 3)
    fitted = DummyClassifier(strategy="prior").fit(X, y)
    assert baseline.count(fitted, MULTICLASS, X).n_parameters == 2
    assert baseline.count(fitted, REGRESSION, X).n_parameters == 1


def test_ridge_effective_matches_hat_trace():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 5))
    alpha = 3.0
    centred = X - X.mean(axis=0)
    hat = centred @ np.linalg.solve(centred.T @ centred + alpha * np.eye(5), centred.T)
    assert linear.ridge_effective_parameters(X, alpha) == pytest.approx(np.trace(hat), rel=1e-10)


def test_ridge_count_adds_intercept():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 6))
    y = X @ np.arange(6.0) + rng.normal(size=30)
    fitted = RidgeCV(alphas=[10.0]).fit(X, y)
    counted = linear.count_l2(fitted, REGRESSION, X)
    assert counted.n_parameters == 7
    assert counted.n_effective_parameters == pytest.approx(linear.ridge_effective_parameters(X, 10.0) + 1)


def test_lasso_count_orthogonal_design():
    # Columns of a Hadamard matrix: centred, orthogonal, X^T X / n = I, so the lasso solution
    # is the soft-thresholded least-squares one: (3, -2, 0.05, 0) minus 0.1 keeps 2 coefficients.
    hadamard = np.array([[1, 1], [1, -1]])
    for _ in range(2):
        hadamard = np.kron(hadamard, np.array([[1, 1], [1, -1]]))
    X = hadamard[:, 1:5].astype(float)
    y = X @ np.array([3.0, -2.0, 0.05, 0.0])
    fitted = Lasso(alpha=0.1).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, [2.9, -1.9, 0.0, 0.0], atol=1e-6)
    counted = linear.count_l1(fitted, REGRESSION, X)
    assert counted.n_parameters == 3
    assert counted.n_effective_parameters == 2


def test_l1_count_one_vs_rest_intercepts():
    X, y = _blobs(10, 3)
    binary = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=1.0)
    fitted = OneVsRestClassifier(binary).fit(X, y)
    n_nonzero = sum(int(np.count_nonzero(inner.coef_)) for inner in fitted.estimators_)
    counted = linear.count_l1(fitted, MULTICLASS, X)
    assert counted.n_parameters == n_nonzero + 3
    assert counted.detail["n_nonzero_coefficients"] == n_nonzero


def test_knn_count_n_over_k():
    X, y = _blobs(10, 2, n_features=3)
    fitted = KNeighborsClassifier(n_neighbors=5).fit(X, y)
    counted = neighbors.count(fitted, BINARY, X)
    assert counted.n_parameters == 4
    assert counted.n_effective_parameters == 4.0
    assert counted.detail["n_stored_values"] == 60


# ---- Trees ----------------------------------------------------------------------

def test_tree_count_four_separable_points():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    counted = trees.count(DecisionTreeClassifier(random_state=0).fit(X, y), BINARY, X)
    assert counted.n_parameters == 3
    assert counted.detail == {"n_split_nodes": 1, "n_leaves": 2}
    assert counted.n_effective_parameters == 2


def test_forest_count_sums_trees():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    # Without bootstrap every tree is fitted on all 4 points, so each has 1 split and 2 leaves.
    fitted = RandomForestClassifier(n_estimators=5, bootstrap=False, random_state=0).fit(X, y)
    counted = trees.count(fitted, BINARY, X)
    assert counted.detail == {"n_split_nodes": 5, "n_leaves": 10}
    assert counted.n_parameters == 15


def test_forest_count_matches_node_counts():
    X, y = _blobs(20, 3)
    fitted = RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y)
    counted = trees.count(fitted, MULTICLASS, X)
    assert counted.n_parameters == sum(tree.tree_.node_count for tree in fitted.estimators_)
    assert counted.detail["n_leaves"] == sum(tree.tree_.n_leaves for tree in fitted.estimators_)


def test_boosting_count_one_more_leaf_per_tree():
    X, y = _blobs(30, 3)
    fitted = HistGradientBoostingClassifier(max_iter=5, early_stopping=False, random_state=0).fit(X, y)
    counted = trees.count(fitted, MULTICLASS, X)
    n_trees = fitted.n_iter_ * fitted.n_trees_per_iteration_
    assert n_trees == 15
    assert counted.detail["n_leaves"] == counted.detail["n_split_nodes"] + n_trees
    assert counted.detail["n_iterations"] == 5


# ---- SVM --------------------------------------------------------------------------

def test_svm_count_binary_dual_coefficients():
    X, y = _blobs(10, 2)
    fitted = svm.build(BINARY, 0).fit(X, y)
    n_support = fitted.svc_.support_.size
    counted = svm.count(fitted, BINARY, X)
    # One dual coefficient per support vector, 1 intercept, and a sigmoid (a, b) calibrator.
    assert counted.n_parameters == n_support + 1 + 2
    assert counted.n_effective_parameters == n_support
    assert counted.detail["n_stored_values"] == n_support * 4


def test_svm_count_multiclass_dual_coefficients():
    X, y = _blobs(10, 3)
    fitted = svm.build(MULTICLASS, 0).fit(X, y)
    n_support = fitted.svc_.support_.size
    # K - 1 = 2 dual coefficients per support vector, K(K-1)/2 = 3 intercepts, 3 calibrators.
    assert svm.count(fitted, MULTICLASS, X).n_parameters == 2 * n_support + 3 + 6


def test_svm_count_regression():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(25, 4))
    fitted = SVR().fit(X, X[:, 0])
    assert svm.count(fitted, REGRESSION, X).n_parameters == fitted.support_.size + 1


def test_svm_fit_emits_no_future_warning():
    X, y = _blobs(10, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        fitted = svm.build(BINARY, 0).fit(X, y)
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (fitted.predict(X) == y).mean() == 1.0


def test_svm_singleton_class_skips_calibration():
    X, y = _blobs(5, 2)
    y[0] = 2
    fitted = CalibratedSVC().fit(X, y)
    assert not hasattr(fitted, "predict_proba")
    assert "class 2 has 1 training sample" in fitted.calibration_note_
    assert set(fitted.predict(X)) <= {0, 1, 2}
    counted = svm.count(fitted, Shape(TaskType.MULTICLASS, X.shape[1], 3, len(y)), X)
    assert counted.detail["n_calibration_parameters"] == 0
    assert counted.n_parameters == fitted.svc_.dual_coef_.size + fitted.svc_.intercept_.size


# ---- Discriminant ------------------------------------------------------------------

def test_shrunken_centroids_keep_informative_feature():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 6))
    y = np.repeat([0, 1], 20)
    X[y == 1, 0] += 6.0
    fitted = ShrunkenCentroidClassifier(shrink_thresholds=(3.0,)).fit(X, y)
    counted = discriminant.count_centroids(fitted, BINARY, X)
    assert counted.n_parameters == 2 * 6
    # Only feature 0 survives the threshold, with one deviation per class.
    assert counted.n_effective_parameters == 2
    assert counted.detail["n_surviving_features"] == 1
    assert counted.detail["shrink_threshold"] == 3.0


def test_shrunken_centroids_small_class_uses_zero():
    X, y = _blobs(4, 2)
    y[:3] = 1
    fitted = ShrunkenCentroidClassifier(n_inner_folds=3).fit(X, y)
    assert fitted.shrink_threshold_ == 0.0
    assert "smallest class has 1 sample(s)" in fitted.threshold_choice_


def test_shrunken_centroids_inner_cv_prefers_larger_tie():
    X, y = _blobs(12, 2)
    fitted = ShrunkenCentroidClassifier(shrink_thresholds=(0.0, 0.25)).fit(X, y)
    # Well separated blobs: both thresholds classify every inner fold perfectly.
    assert fitted.shrink_threshold_ == 0.25
    assert fitted.predict_proba(X).shape == (24, 2)


@pytest.mark.parametrize("shape, n_expected", [(BINARY, 5), (MULTICLASS, 15)], ids=["binary", "multiclass"])
def test_lda_count_coefficients_intercepts(shape, n_expected):
    X, y = _blobs(10, shape.n_classes)
    fitted = discriminant.build_lda(shape, 0).fit(X, y)
    assert discriminant.count_lda(fitted, shape, X).n_parameters == n_expected


@pytest.mark.parametrize("name", ["shrunken_centroids", "shrinkage_lda"])
def test_discriminant_regression_not_applicable(name):
    rung = get_rungs([name])[0]
    with pytest.raises(NotApplicable, match=r"(is|are) a classifier, but this task is regression"):
        rung.build(REGRESSION, 0)


@pytest.mark.parametrize(
    "n_classes, n_samples, n_features",
    [(2, 30, 60), (3, 40, 80), (2, 200, 20), (3, 30, 10)],
    ids=["binary_wide", "multiclass_wide", "binary_tall", "multiclass_tall"],
)
def test_dual_lda_matches_sklearn_lsqr(n_classes, n_samples, n_features):
    rng = np.random.default_rng(n_features)
    X = rng.normal(size=(n_samples, n_features))
    y = rng.integers(0, n_classes, n_samples)
    X[:, 3] = 1.0
    X[y == 1, 0] += 2.0
    primal = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, y)
    dual = DualShrinkageLDA().fit(X, y)
    np.testing.assert_allclose(dual.coef_, primal.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dual.intercept_, primal.intercept_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dual.predict_proba(X), primal.predict_proba(X), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(dual.predict(X), primal.predict(X))


def test_lda_wide_input_uses_dual_solver():
    wide = Shape(TaskType.BINARY, n_features=22_283, n_classes=2, n_samples=100)
    assert isinstance(discriminant.build_lda(wide, 0), DualShrinkageLDA)
    narrow = Shape(TaskType.BINARY, n_features=50, n_classes=2, n_samples=100)
    assert isinstance(discriminant.build_lda(narrow, 0), LinearDiscriminantAnalysis)


def test_dual_lda_single_class_raises():
    with pytest.raises(ValueError, match=r"at least 2 classes in y, got 1"):
        DualShrinkageLDA().fit(np.ones((4, 3)), np.zeros(4))


# ---- Any scikit-learn estimator as a rung ---------------------------------------------

def test_estimator_rung_counts_and_seeds():
    rung = estimator_rung(
        "forest_3", "forest", RandomForestClassifier(n_estimators=3),
        count=lambda fitted, X: sum(tree.tree_.node_count for tree in fitted.estimators_),
        estimate=lambda shape: 3 * (2 * shape.n_samples - 1),
    )
    estimator = rung.build(BINARY, 42)
    assert estimator.get_params()["random_state"] == 42
    X, y = _blobs(10, 2)
    counted = rung.count(estimator.fit(X, y), BINARY, X)
    assert isinstance(counted, ParameterCount)
    assert counted.n_parameters == sum(tree.tree_.node_count for tree in estimator.estimators_)
    assert rung.estimate(BINARY) == 117
    assert rung.config["estimator"] == "RandomForestClassifier"


def test_estimator_rung_classifier_on_regression():
    rung = estimator_rung("lda_svd", "discriminant", LinearDiscriminantAnalysis(),
                          count=lambda fitted, X: fitted.coef_.size, estimate=5)
    with pytest.raises(NotApplicable, match=r"LinearDiscriminantAnalysis is a classifier, but this task is regression"):
        rung.build(REGRESSION, 0)
    assert rung.estimate(REGRESSION) == 5.0


def test_estimator_rung_regressor_on_classification():
    rung = estimator_rung("svr", "svm", SVR(), count=lambda fitted, X: fitted.dual_coef_.size + 1, estimate=10)
    with pytest.raises(NotApplicable, match=r"SVR is a regressor, but this task is binary"):
        rung.build(BINARY, 0)


# ---- Graph network ---------------------------------------------------------------------

def test_correlation_graph_joins_correlated_pairs():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(50, 2))
    noise = 0.01 * rng.normal(size=(50, 4))
    # Features 0 and 1 follow base[:, 0]. Features 2 and 3 follow base[:, 1] with opposite signs.
    X = np.column_stack([base[:, 0], base[:, 0], base[:, 1], -base[:, 1]]) + noise
    edges = correlation_knn_graph(X, n_neighbors=1)
    np.testing.assert_array_equal(edges, [[0, 1], [2, 3]])


def test_correlation_graph_one_feature_raises():
    with pytest.raises(ValueError, match=r"at least 2 features, got n_features=1"):
        correlation_knn_graph(np.ones((5, 1)), n_neighbors=3)


def test_random_graph_same_degree_sequence():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(30, 300))
    edges = correlation_knn_graph(X, n_neighbors=5)
    shuffled = degree_matched_random_graph(edges, 300, seed=0)
    np.testing.assert_array_equal(node_degrees(shuffled, 300), node_degrees(edges, 300))
    assert np.all(shuffled[:, 0] < shuffled[:, 1]), "self-loops or unsorted edges"
    assert len(np.unique(shuffled, axis=0)) == len(shuffled), "repeated edges"
    kept = {tuple(edge) for edge in edges.tolist()} & {tuple(edge) for edge in shuffled.tolist()}
    assert len(kept) < 0.2 * len(edges)


def test_random_graph_seeded():
    rng = np.random.default_rng(7)
    edges = correlation_knn_graph(rng.normal(size=(20, 100)), n_neighbors=3)
    np.testing.assert_array_equal(degree_matched_random_graph(edges, 100, 1), degree_matched_random_graph(edges, 100, 1))


@pytest.mark.parametrize("graph", ["correlation", "random"])
def test_gnn_fit_bit_for_bit_reproducible(graph):
    X, y = _blobs(15, 2, n_features=12)
    first = FeatureGraphClassifier(graph=graph, max_epochs=5, random_state=3).fit(X, y).predict_proba(X)
    second = FeatureGraphClassifier(graph=graph, max_epochs=5, random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_gnn_count_trainable_elements():
    X, y = _blobs(10, 3, n_features=8)
    fitted = FeatureGraphClassifier(task="multiclass", max_epochs=2).fit(X, y)
    counted = gnn.count(fitted, MULTICLASS, X)
    # Node layer (3 + 1) x 8 + 8 = 40, head 16 x 128 + 128 = 2176, then 128 x 3 + 3 = 387.
    assert counted.n_parameters == 40 + 2176 + 387
    assert counted.n_parameters == gnn_parameter_count(3, 8, 128, 3)
    assert counted.detail["n_edges"] == len(fitted.edges_)
    assert counted.detail["n_nodes"] == 8


def test_gnn_control_same_parameters_and_degrees():
    X, y = _blobs(15, 2, n_features=40)
    correlation = FeatureGraphClassifier(graph="correlation", max_epochs=2).fit(X, y)
    control = FeatureGraphClassifier(graph="random", max_epochs=2).fit(X, y)
    assert gnn.count(correlation, BINARY, X).n_parameters == gnn.count(control, BINARY, X).n_parameters
    np.testing.assert_array_equal(node_degrees(correlation.edges_, 40), node_degrees(control.edges_, 40))


def test_gnn_non_finite_loss_names_epoch():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(30, 6))
    y = X[:, 0] * 1e3
    network = FeatureGraphRegressor(task="regression", learning_rate=1e30, max_epochs=5)
    with pytest.raises(FloatingPointError, match=r"diverged: non-finite (training|validation) loss at epoch \d+"):
        network.fit(X, y)


def test_gnn_invalid_graph_raises():
    X, y = _blobs(10, 2)
    with pytest.raises(ValueError, match=r"graph='grid' is invalid; use 'correlation' or 'random'"):
        FeatureGraphClassifier(graph="grid").fit(X, y)


def test_gnn_single_class_raises():
    X, _ = _blobs(10, 2)
    with pytest.raises(ValueError, match=r"at least 2 classes in y, got 1"):
        FeatureGraphClassifier().fit(X, np.zeros(20))


def test_gnn_one_feature_not_applicable():
    shape = Shape(TaskType.BINARY, n_features=1, n_classes=2, n_samples=20)
    with pytest.raises(NotApplicable, match=r"at least 2 features, got n_features=1"):
        get_rungs(["gnn_feature_graph"])[0].build(shape, 0)


def test_gnn_regression_predicts_target_scale():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(40, 6))
    y = 100.0 + 10.0 * X[:, 0]
    prediction = FeatureGraphRegressor(task="regression", max_epochs=30).fit(X, y).predict(X)
    assert np.all(np.isfinite(prediction))
    assert abs(prediction.mean() - 100.0) < 5.0


def test_gnn_omics_budget_allows_widest_dataset():
    shape = Shape(TaskType.BINARY, n_features=22_283, n_classes=2, n_samples=100)
    rung = get_rungs(["gnn_feature_graph"])[0]
    flops = estimated_flops(rung, shape, shape.n_samples)
    assert flops is not None
    assert flops < DEFAULT_COMPUTE_BUDGET


def test_gnn_fits_alon_omics(data_dir):
    frame = pd.read_parquet(data_dir / "omics" / "alon.parquet")
    y = frame.pop("target").cat.codes.to_numpy()
    X = frame.to_numpy(dtype=np.float32)
    fitted = FeatureGraphClassifier(random_state=0, max_epochs=5).fit(X, y)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(y), 2)
    assert np.all(np.isfinite(proba))
    counted = gnn.count(fitted, Shape(TaskType.BINARY, X.shape[1], 2, len(y)), X)
    assert counted.detail["n_nodes"] == 2000
    # Each feature links to its 5 most correlated features, so the union has 5 p to 10 p edges.
    assert 5 * 2000 // 2 <= counted.detail["n_edges"] <= 5 * 2000
    assert math.isclose(counted.n_parameters, gnn_parameter_count(3, 8, 128, 1))


# ---- Fault case: far more features than samples ------------------------------------------

def test_rungs_finish_on_collinear_wide_case(cases_dir):
    # 20 samples, 200 features of rank 20 (exact copies and differences) and a label with
    # no signal. Every rung below 1e6 parameters must finish and report a count.
    from sklearn.model_selection import train_test_split

    from bench.preprocess import Preprocessor

    frame = pd.read_parquet(cases_dir / "C17-p_much_greater_n.parquet")
    y = frame.pop("class").astype("category").cat.codes.to_numpy()
    train, test = train_test_split(np.arange(len(y)), test_size=4, stratify=y, random_state=0)
    preprocessor = Preprocessor().fit(frame.iloc[train])
    X_train, X_test = preprocessor.transform(frame.iloc[train]), preprocessor.transform(frame.iloc[test])
    shape = Shape(TaskType.BINARY, X_train.shape[1], 2, len(train))
    assert shape.n_features == 200
    assert shape.n_samples == 16

    for rung in ladder():
        if rung.estimate(OMICS) >= 1e6:
            continue
        try:
            estimator = rung.build(shape, 0)
        except NotApplicable:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X_train, y[train])
        proba = estimator.predict_proba(X_test)
        assert np.all(np.isfinite(proba)), rung.name
        counted = rung.count(estimator, shape, X_train)
        assert counted.n_parameters >= 1, rung.name


@pytest.mark.parametrize("labels, expected_rule", [
    ([0] * 40 + [1] * 30 + list(range(2, 12)) * 2, "validation fraction raised"),
    ([0] * 40 + [1] * 30 + [2], "no early stopping"),
])
def test_boosting_early_stopping_small_classes(labels, expected_rule):
    from models.trees import BoostingClassifier

    rng = np.random.default_rng(0)
    y = np.array(labels)
    X = rng.normal(size=(len(y), 3)) + y[:, None]
    estimator = BoostingClassifier(early_stopping=True, validation_fraction=0.1, random_state=0).fit(X, y)
    assert expected_rule in estimator.early_stopping_rule_
    assert estimator.early_stopping is True
    assert estimator.validation_fraction == 0.1


def test_gnn_nodes_limited_to_max_nodes():
    from models.gnn import FeatureGraphClassifier

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 50)).astype(np.float32)
    X[:, 7] += 3 * y  # the one informative feature must be among the nodes
    estimator = FeatureGraphClassifier(max_nodes=10, max_epochs=2, random_state=0).fit(X, y)
    assert len(estimator.nodes_) == 10
    assert 7 in estimator.nodes_
    assert estimator.predict_proba(X).shape == (60, 2)


def test_gnn_near_constant_feature_stays_finite():
    from models.gnn import FeatureGraphRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6)).astype(np.float32)
    # Constant up to float noise in training, as a scaled column whose one non-zero value
    # falls outside the fit part; that value then arrives at prediction time.
    X[:, 0] = np.float32(1e-9) * rng.normal(size=50)
    y = X[:, 1] * 2.0 + rng.normal(scale=0.1, size=50)
    estimator = FeatureGraphRegressor(task="regression", max_epochs=5, random_state=0).fit(X, y)
    X_new = X.copy()
    X_new[3, 0] = 7.0
    prediction = estimator.predict(X_new)
    assert np.all(np.isfinite(prediction))
    assert np.abs(prediction - y.mean()).max() < 100 * y.std()
