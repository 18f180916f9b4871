"""A small graph neural network over a graph of the features, and its random-graph control.

Each sample is one graph: the nodes are the features, a node's input is the sample's value
of that feature, and the edges join each feature to the features it correlates with most
strongly in the training part. The control rung trains the same network on a random graph
with exactly the same degree sequence, so any gain of the first rung over the second comes
from the correlation structure and not from the network's shape.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.feature_selection import f_classif, f_regression

from models.base import NotApplicable, ParameterCount, Rung, Shape, split_validation
from models.training import DivergedError, EarlyStopping, check_training_loss

COUNTING_RULE = (
    "gnn: n_parameters = elements of all trainable tensors (the node layer shared by every "
    "feature and the readout head), so the count does not depend on the number of features; "
    "message passing averages over graph neighbours without weights, and the graph is fitted "
    "on the training part but not trained, so its edges are reported apart as n_edges"
)

GraphKind = Literal["correlation", "random"]

N_NEIGHBORS = 5
N_HOPS = 3
HIDDEN_SIZE = 8
HEAD_SIZE = 128
MAX_EPOCHS = 30
PATIENCE = 8
BATCH_SIZE = 32
LEARNING_RATE = 1e-2
# Feature columns per block when the correlation graph is computed, which bounds the
# block's memory at block x n_features float32 values (about 90 MB for 22,283 features).
CORRELATION_BLOCK_SIZE = 1024
# Rounds of double-edge swaps for the random control graph. Each round proposes one swap
# for every disjoint pair of edges. In the tests, fewer than 20 % of the original edges
# remain after 10 rounds.
N_SWAP_ROUNDS = 10
# Nodes of the graph: at most this many features, those with the largest univariate
# F statistic on the fit part. The correlation graph over all 22,283 features of the widest
# pack datasets took about 7 s per fit. Over 2,000 features it takes well under a second.
MAX_NODES = 2000
# Feature standard deviations on the fit part below this count as 1 when inputs are standardised.
MIN_FEATURE_SCALE = 1e-3


# ---- Graphs -------------------------------------------------------------------

def correlation_knn_graph(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Return the undirected k-nearest-neighbour graph of features by absolute Pearson correlation.

    Each feature is joined to the `n_neighbors` other features with the largest absolute
    correlation over the rows of X, and the union of these links is returned as unique
    edges (u, v) with u < v, shape (n_edges, 2). A constant feature correlates 0 with every
    other feature, so its neighbours are an arbitrary choice among those ties.
    """
    X = np.asarray(X, dtype=np.float32)
    n_features = X.shape[1]
    if n_features < 2:
        raise ValueError(f"a feature graph needs at least 2 features, got n_features={n_features}")
    k = min(n_neighbors, n_features - 1)

    centred = X - X.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    norms[norms == 0] = 1.0
    standardized = torch.from_numpy(np.ascontiguousarray(centred / norms))

    sources, targets = [], []
    for start in range(0, n_features, CORRELATION_BLOCK_SIZE):
        stop = min(start + CORRELATION_BLOCK_SIZE, n_features)
        correlation = (standardized[:, start:stop].T @ standardized).abs()
        correlation[torch.arange(stop - start), torch.arange(start, stop)] = -1.0
        neighbours = torch.topk(correlation, k, dim=1).indices.numpy()
        sources.append(np.repeat(np.arange(start, stop), k))
        targets.append(neighbours.ravel())
    return _unique_undirected(np.concatenate(sources), np.concatenate(targets))


def select_nodes(X: np.ndarray, target: np.ndarray, is_classification: bool, max_nodes: int | None) -> np.ndarray:
    """Return the sorted column indices of the graph's nodes: all features, or the `max_nodes`
    with the largest univariate F statistic (ANOVA for classes, regression F otherwise)."""
    n_features = X.shape[1]
    if max_nodes is None or n_features <= max_nodes:
        return np.arange(n_features)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # Constant features give a 0/0 F statistic; they rank last.
        warnings.simplefilter("ignore", RuntimeWarning)
        statistic, _ = f_classif(X, target) if is_classification else f_regression(X, target)
    statistic = np.nan_to_num(statistic, nan=-1.0, posinf=np.finfo(np.float64).max)
    # A stable sort keeps the lower column index first among equal statistics.
    return np.sort(np.argsort(-statistic, kind="stable")[:max_nodes])


def degree_matched_random_graph(edges: np.ndarray, n_nodes: int, seed: int) -> np.ndarray:
    """Return a random simple graph in which every node keeps its degree in `edges`.

    Repeated double-edge swaps replace edges (a, b), (c, d) by (a, d), (c, b). A swap is
    rejected when it would create a self-loop or an edge that already exists, so the
    result has no self-loops, no repeated edges and exactly the input degree of every node.
    """
    rng = np.random.default_rng(seed)
    edges = np.array(edges, dtype=np.int64, copy=True)
    n_edges = len(edges)
    if n_edges < 2:
        return edges

    for _ in range(N_SWAP_ROUNDS):
        order = rng.permutation(n_edges)
        first, second = order[: n_edges // 2], order[n_edges // 2: 2 * (n_edges // 2)]
        a, b = edges[first, 0], edges[first, 1]
        c, d = edges[second, 0], edges[second, 1]
        # Swap either (a, d), (c, b) or (a, c), (b, d), chosen per pair at random.
        flip = rng.random(len(first)) < 0.5
        new_first = np.where(flip[:, None], np.column_stack([a, c]), np.column_stack([a, d]))
        new_second = np.where(flip[:, None], np.column_stack([b, d]), np.column_stack([c, b]))

        existing = _edge_keys(edges, n_nodes)
        keys_first = _edge_keys(np.sort(new_first, axis=1), n_nodes)
        keys_second = _edge_keys(np.sort(new_second, axis=1), n_nodes)
        accept = (new_first[:, 0] != new_first[:, 1]) & (new_second[:, 0] != new_second[:, 1])
        accept &= keys_first != keys_second
        accept &= ~np.isin(keys_first, existing) & ~np.isin(keys_second, existing)
        # Two accepted pairs could propose the same new edge, so keep only the first proposal of each key.
        proposed = np.concatenate([keys_first[accept], keys_second[accept]])
        unique_keys, counts = np.unique(proposed, return_counts=True)
        duplicated = unique_keys[counts > 1]
        accept &= ~np.isin(keys_first, duplicated) & ~np.isin(keys_second, duplicated)

        edges[first[accept]] = np.sort(new_first[accept], axis=1)
        edges[second[accept]] = np.sort(new_second[accept], axis=1)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


def node_degrees(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """Return the degree of every node of an undirected edge list."""
    return np.bincount(np.asarray(edges).ravel(), minlength=n_nodes)


def _unique_undirected(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    pairs = np.sort(np.column_stack([sources, targets]).astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def _edge_keys(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    return edges[:, 0].astype(np.int64) * n_nodes + edges[:, 1].astype(np.int64)


def _mean_aggregation_matrix(edges: np.ndarray, n_nodes: int) -> torch.Tensor:
    """Return the sparse (n_nodes, n_nodes) matrix that averages each node's neighbours."""
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    columns = np.concatenate([edges[:, 1], edges[:, 0]])
    degrees = np.maximum(np.bincount(rows, minlength=n_nodes), 1).astype(np.float32)
    values = 1.0 / degrees[rows]
    indices = torch.from_numpy(np.vstack([rows, columns]))
    with torch.sparse.check_sparse_tensor_invariants(enable=True):
        matrix = torch.sparse_coo_tensor(indices, torch.from_numpy(values), (n_nodes, n_nodes))
    return matrix.coalesce()


def propagate(X: np.ndarray, aggregation: torch.Tensor, n_hops: int) -> torch.Tensor:
    """Return node inputs [x, Ax, ..., A^K x] of every sample, shape (n_samples, n_nodes, K + 1).

    A is the neighbour-averaging matrix, so hop j contains each feature's value averaged over the
    features j steps away in the graph. The propagation has no weights, so it is computed
    once per fit or predict instead of once per epoch.
    """
    hop = torch.from_numpy(np.ascontiguousarray(X.T))
    hops = [hop]
    for _ in range(n_hops):
        hop = torch.sparse.mm(aggregation, hop)
        hops.append(hop)
    return torch.stack(hops, dim=-1).permute(1, 0, 2).contiguous()


# ---- Network ------------------------------------------------------------------

class _FeatureGraphModule(torch.nn.Module):
    """A shared node layer over the propagated inputs, mean and max readout over nodes, and a head."""

    def __init__(self, n_hops: int, hidden_size: int, head_size: int, n_outputs: int):
        super().__init__()
        self.node_network = torch.nn.Sequential(torch.nn.Linear(n_hops + 1, hidden_size), torch.nn.ReLU())
        self.head = torch.nn.Sequential(
            torch.nn.Linear(2 * hidden_size, head_size), torch.nn.ReLU(), torch.nn.Linear(head_size, n_outputs)
        )

    def forward(self, node_inputs: torch.Tensor) -> torch.Tensor:
        states = self.node_network(node_inputs)
        pooled = torch.cat([states.mean(dim=1), states.amax(dim=1)], dim=-1)
        return self.head(pooled)


def gnn_parameter_count(n_hops: int, hidden_size: int, head_size: int, n_outputs: int) -> int:
    """Return the trainable parameters of the network, which do not depend on the feature count."""
    node_network = (n_hops + 1) * hidden_size + hidden_size
    head = 2 * hidden_size * head_size + head_size + head_size * n_outputs + n_outputs
    return node_network + head


class FeatureGraphNetwork(BaseEstimator):
    """A graph neural network whose graph is fitted on the training part only.

    Inputs are standardised with the fit part's mean and standard deviation, a regression
    target is standardised too and predictions are mapped back. Training uses Adam with
    early stopping on a validation part cut from the training data. On CPU, two fits with
    the same `random_state` gave bit-for-bit equal predictions in the tests, which use one
    torch thread. The network runs on CPU only, also where a GPU is present.

    The graph's nodes are at most `max_nodes` features, ranked by a univariate F statistic on
    the fit part. Over all 22,283 features of the widest pack datasets, the correlation graph
    took about 7 s of an 11 to 16 s fit on one thread of a shared 2-core machine.

    NOTE: every node shares the same weights and the readout pools over all nodes, so the
    network cannot tell which feature a node is except through the graph. On single
    splits of alon and chowdary its best validation epoch was 1 to 16 and its test accuracy
    stayed near the constant baseline. Its value is the comparison with the random-graph control.
    """

    def __init__(
        self,
        task: str = "binary",
        graph: GraphKind = "correlation",
        n_neighbors: int = N_NEIGHBORS,
        n_hops: int = N_HOPS,
        hidden_size: int = HIDDEN_SIZE,
        head_size: int = HEAD_SIZE,
        max_epochs: int = MAX_EPOCHS,
        max_nodes: int | None = MAX_NODES,
        patience: int = PATIENCE,
        batch_size: int = BATCH_SIZE,
        learning_rate: float = LEARNING_RATE,
        validation_fraction: float = 0.2,
        random_state: int = 0,
    ):
        self.task = task
        self.graph = graph
        self.n_neighbors = n_neighbors
        self.n_hops = n_hops
        self.hidden_size = hidden_size
        self.head_size = head_size
        self.max_epochs = max_epochs
        self.max_nodes = max_nodes
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X, y):
        # Start
        if self.graph not in ("correlation", "random"):
            raise ValueError(f"graph={self.graph!r} is invalid; use 'correlation' or 'random'")
        torch.manual_seed(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        X = np.asarray(X, dtype=np.float32)
        is_classification = self.task != "regression"

        # Data
        target, n_outputs = self._encode_target(y, is_classification)
        fit_index, validation_index = self._validation_split(target, is_classification)
        self.x_mean_ = X[fit_index].mean(axis=0)
        x_scale = X[fit_index].std(axis=0)
        # A feature almost constant on the fit part (float noise leaves a standard deviation
        # such as 1e-8 instead of 0) would blow up the other rows, so small scales count as 1.
        self.x_scale_ = np.where(x_scale > MIN_FEATURE_SCALE, x_scale, 1.0).astype(np.float32)
        X = self._standardize(X)

        # Graph: nodes and edges come from the fit part only, so neither the validation part
        # nor the test part shapes them.
        self.n_features_in_ = X.shape[1]
        self.nodes_ = select_nodes(X[fit_index], target[fit_index], is_classification, self.max_nodes)
        X = X[:, self.nodes_]
        edges = correlation_knn_graph(X[fit_index], self.n_neighbors)
        if self.graph == "random":
            edges = degree_matched_random_graph(edges, len(self.nodes_), self.random_state)
        self.edges_ = edges
        self.aggregation_ = _mean_aggregation_matrix(edges, len(self.nodes_))
        node_inputs = propagate(X, self.aggregation_, self.n_hops)

        # Model
        self.network_ = _FeatureGraphModule(self.n_hops, self.hidden_size, self.head_size, n_outputs)
        loss_function = _loss_function(is_classification, n_outputs)
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.learning_rate)
        X_fit, y_fit = node_inputs[fit_index], torch.from_numpy(target[fit_index])
        X_val, y_val = node_inputs[validation_index], torch.from_numpy(target[validation_index])

        # Training
        stopping = EarlyStopping(self.patience)
        n_fit = len(fit_index)
        for epoch in range(1, self.max_epochs + 1):
            self.network_.train()
            order = torch.randperm(n_fit, generator=generator)
            for start in range(0, n_fit, self.batch_size):
                rows = order[start:start + self.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_function(self.network_(X_fit[rows]).squeeze(-1), y_fit[rows])
                check_training_loss(loss, epoch)
                loss.backward()
                optimizer.step()

            if stopping.update(epoch, self._validation_loss(loss_function, X_val, y_val), self.network_):
                break

        # Finish
        stopping.restore(self.network_)
        self.network_.eval()
        self.n_epochs_, self.best_epoch_ = epoch, stopping.best_epoch
        return self

    def _encode_target(self, y, is_classification: bool) -> tuple[np.ndarray, int]:
        if is_classification:
            self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(f"classification needs at least 2 classes in y, got {len(self.classes_)}")
            n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
            return codes.astype(np.float32 if n_outputs == 1 else np.int64), n_outputs
        values = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
        return ((values - self.y_mean_) / self.y_scale_).astype(np.float32), 1

    def _validation_split(self, target: np.ndarray, is_classification: bool):
        return split_validation(target, is_classification, self.validation_fraction, self.random_state,
                                min_fit_samples=2)

    def _standardize(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_mean_) / self.x_scale_).astype(np.float32)

    @torch.no_grad()
    def _validation_loss(self, loss_function, X, y) -> float:
        self.network_.eval()
        return float(loss_function(self.network_(X).squeeze(-1), y))

    @torch.no_grad()
    def _raw_output(self, X) -> np.ndarray:
        X = self._standardize(np.asarray(X, dtype=np.float32))[:, self.nodes_]
        node_inputs = propagate(X, self.aggregation_, self.n_hops)
        outputs = [
            self.network_(node_inputs[start:start + self.batch_size])
            for start in range(0, len(node_inputs), self.batch_size)
        ]
        raw = torch.cat(outputs).numpy().astype(np.float64)
        if not np.all(np.isfinite(raw)):
            raise DivergedError(f"diverged: non-finite predictions after epoch {self.best_epoch_}")
        return raw

    def predict_proba(self, X) -> np.ndarray:
        logits = self._raw_output(X)
        if logits.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self._raw_output(X)[:, 0] * self.y_scale_ + self.y_mean_
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class FeatureGraphClassifier(ClassifierMixin, FeatureGraphNetwork):
    pass


class FeatureGraphRegressor(RegressorMixin, FeatureGraphNetwork):
    pass


def _loss_function(is_classification: bool, n_outputs: int):
    if not is_classification:
        return torch.nn.MSELoss()
    return torch.nn.BCEWithLogitsLoss() if n_outputs == 1 else torch.nn.CrossEntropyLoss()


# ---- Rungs --------------------------------------------------------------------

def count(estimator, shape: Shape, X) -> ParameterCount:
    n_parameters = sum(p.numel() for p in estimator.network_.parameters() if p.requires_grad)
    detail = {
        "graph": estimator.graph,
        "n_nodes": int(len(estimator.nodes_)),
        "n_edges": int(len(estimator.edges_)),
        "n_epochs": estimator.n_epochs_,
        "best_epoch": estimator.best_epoch_,
    }
    return ParameterCount(int(n_parameters), None, detail)


def flops_per_sample_epoch(shape: Shape) -> float:
    """Return the estimated training cost per sample and epoch, in floating-point operations.

    Each multiply-add counts 2 operations. Per epoch a sample passes every node through the
    shared node layer, (K + 1) -> H, then the readout and head. Backward costs about
    twice the forward, hence the factor 3. The propagation over the graph runs once per fit,
    not per epoch, so it is left out.
    """
    node_network = 2 * (N_HOPS + 1) * HIDDEN_SIZE
    head = 2 * (2 * HIDDEN_SIZE * HEAD_SIZE + HEAD_SIZE * shape.n_outputs)
    n_nodes = min(shape.n_features, MAX_NODES)
    return 3.0 * (n_nodes * (node_network + 2 * HIDDEN_SIZE) + head)


def _builder(graph: GraphKind):
    def build(shape: Shape, seed: int):
        if shape.n_features < 2:
            raise NotApplicable(f"a feature graph needs at least 2 features, got n_features={shape.n_features}")
        cls = FeatureGraphClassifier if shape.task.is_classification else FeatureGraphRegressor
        return cls(task=shape.task.value, graph=graph, random_state=seed)

    return build


def _estimate(shape: Shape) -> float:
    return gnn_parameter_count(N_HOPS, HIDDEN_SIZE, HEAD_SIZE, shape.n_outputs)


_CONFIG = {
    "n_neighbors": N_NEIGHBORS, "n_hops": N_HOPS, "hidden_size": HIDDEN_SIZE, "head_size": HEAD_SIZE,
    "max_epochs": MAX_EPOCHS, "max_nodes": MAX_NODES,
    "patience": PATIENCE, "batch_size": BATCH_SIZE, "optimizer": f"Adam(lr={LEARNING_RATE})",
}

RUNGS = [
    Rung("gnn_feature_graph", "gnn", _builder("correlation"), count, estimate=_estimate,
         config={"graph": "correlation k-nearest neighbours", **_CONFIG}, flops_per_sample_epoch=flops_per_sample_epoch),
    Rung("gnn_random_graph", "gnn", _builder("random"), count, estimate=_estimate,
         config={"graph": "degree-matched random", **_CONFIG}, flops_per_sample_epoch=flops_per_sample_epoch),
]
