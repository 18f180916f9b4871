"""Omics-like datasets with a planted structure, and a check that the analyses recover it.

A simulated dataset has p features in blocks of `block_size` correlated features. Feature j
of block b is sqrt(rho) f_b + sqrt(1 - rho) e_j with independent standard normal f_b and e_j.
So every feature has variance 1, and features of one block have correlation rho. The target
depends linearly on k informative features, the first feature of each of the first k blocks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import DatasetSpec, TaskType
from bench.data import TARGET, load_dataset

logger = logging.getLogger(__name__)

# Rungs run on simulated data by default: cheap ones that span 1 to about n * p parameters.
DEFAULT_MODELS = ("constant", "l1_linear", "l2_linear", "knn_5", "random_forest_16_d3", "svm_rbf")
# A recovered count lies within this factor of the planted one, in either direction: one
# decade, the spacing of the network rungs on the ladder.
RECOVERY_FACTOR = 10.0


@dataclass(frozen=True)
class SimulationSpec:
    """The planted structure of one simulated dataset.

    Attributes:
        noise: standard deviation of the noise added to the standardised linear signal; for a
            binary task the label is 1 where signal + noise > 0.
    """

    n_samples: int = 100
    n_features: int = 2000
    n_informative: int = 5
    block_size: int = 20
    correlation: float = 0.8
    noise: float = 0.5
    task: TaskType = TaskType.BINARY
    seed: int = 0

    def __post_init__(self):
        checks = [
            (self.n_samples >= 10, f"n_samples={self.n_samples} is invalid; simulate at least 10 samples"),
            (self.n_features >= 1, f"n_features={self.n_features} is invalid; use 1 or more features"),
            (1 <= self.block_size <= self.n_features,
             f"block_size={self.block_size} is invalid; use 1 to n_features={self.n_features}"),
            (0 <= self.correlation < 1, f"correlation={self.correlation} is invalid; use a value in [0, 1)"),
            (self.noise >= 0, f"noise={self.noise} is invalid; use a standard deviation of 0 or more"),
            (1 <= self.n_informative <= self.n_blocks,
             f"n_informative={self.n_informative} is invalid; use 1 to the number of blocks ({self.n_blocks})"),
        ]
        for valid, message in checks:
            if not valid:
                raise ValueError(message)
        if not isinstance(self.task, TaskType) or self.task is TaskType.MULTICLASS:
            raise ValueError(f"task={self.task!r} is invalid; simulate TaskType.BINARY or TaskType.REGRESSION")

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_features / self.block_size)

    @property
    def name(self) -> str:
        rho = f"{self.correlation:g}".replace(".", "p")
        noise = f"{self.noise:g}".replace(".", "p")
        return (f"sim-{self.task.value}-n{self.n_samples}-p{self.n_features}-k{self.n_informative}"
                f"-b{self.block_size}-rho{rho}-noise{noise}-s{self.seed}")

    def informative_features(self) -> list[int]:
        return [block * self.block_size for block in range(self.n_informative)]


@dataclass
class SimulatedData:
    X: pd.DataFrame
    y: pd.Series
    spec: SimulationSpec


def simulate(spec: SimulationSpec) -> SimulatedData:
    """Draw one dataset with the planted structure of `spec`."""
    rng = np.random.default_rng(spec.seed)
    block_of_feature = np.arange(spec.n_features) // spec.block_size
    factors = rng.standard_normal((spec.n_samples, spec.n_blocks))
    noise_part = rng.standard_normal((spec.n_samples, spec.n_features))
    X = math.sqrt(spec.correlation) * factors[:, block_of_feature] + math.sqrt(1 - spec.correlation) * noise_part

    # Effects alternate in sign and share one size; the signal is scaled to variance 1.
    effects = np.where(np.arange(spec.n_informative) % 2 == 0, 1.0, -1.0)
    signal = X[:, spec.informative_features()] @ effects
    signal = (signal - signal.mean()) / signal.std()
    outcome = signal + spec.noise * rng.standard_normal(spec.n_samples)
    if spec.task is TaskType.BINARY:
        y = pd.Series(np.where(outcome > 0, "1", "0"), name=TARGET).astype("category")
    else:
        y = pd.Series(outcome, name=TARGET)
    columns = [f"g{j:05d}" for j in range(spec.n_features)]
    return SimulatedData(pd.DataFrame(X.astype(np.float32), columns=columns), y, spec)


def true_participation_ratio(spec: SimulationSpec) -> float:
    """Return the participation ratio of the population covariance of `spec`'s features.

    A block of s features has one eigenvalue s rho + 1 - rho and s - 1 eigenvalues 1 - rho,
    and the trace is p.
    """
    sizes = [min(spec.block_size, spec.n_features - b * spec.block_size) for b in range(spec.n_blocks)]
    rho = spec.correlation
    trace_of_square = sum((s * rho + 1 - rho) ** 2 + (s - 1) * (1 - rho) ** 2 for s in sizes)
    return spec.n_features**2 / trace_of_square


@dataclass
class SimulationOutcome:
    """Estimates and the observed best model on one simulated dataset, next to the planted values.

    Attributes:
        planted_best_n_parameters: k + 1, a linear model on the informative features plus its
            intercept, which is the model that generated the target.
        n_informative_blocks_kept: informative blocks with at least one feature in the lasso support.
        k_recovered: the lasso support touches all k informative blocks and keeps between
            k / 10 and 10 k features.
        best_size_recovered: the one-standard-error model has between (k + 1) / 10 and
            10 (k + 1) parameters.
    """

    name: str
    spec: dict
    planted_k: int
    planted_n_blocks: int
    true_participation_ratio: float
    planted_best_n_parameters: int
    n_informative_blocks_kept: int
    dimension: dict
    observed: dict
    k_recovered: bool
    best_size_recovered: bool
    leaderboard: list[dict] = field(default_factory=list)

    def as_row(self) -> dict:
        row = {"dataset": self.name, **{f"spec_{k}": v for k, v in self.spec.items()}}
        row.update(planted_k=self.planted_k, planted_n_blocks=self.planted_n_blocks,
                   true_participation_ratio=self.true_participation_ratio,
                   planted_best_n_parameters=self.planted_best_n_parameters,
                   n_informative_blocks_kept=self.n_informative_blocks_kept)
        row.update({f"estimated_{k}": v for k, v in self.dimension.items()})
        row.update({f"observed_{k}": v for k, v in self.observed.items() if k != "dataset"})
        row.update(k_recovered=self.k_recovered, best_size_recovered=self.best_size_recovered)
        return row


def run_simulation(spec: SimulationSpec, work_dir: Path, models: tuple[str, ...] = DEFAULT_MODELS,
                   n_folds: int = 5, n_repeats: int = 1, results_path: Path | None = None) -> SimulationOutcome:
    """Simulate a dataset, run the ladder `models` on it, and compare the analyses with the truth.

    The dataset is written to `work_dir/data/<name>.parquet` and read back through the
    benchmark's own loader, and every run goes through `bench.runs.execute_task`, so the
    simulated datasets take the same path as the data pack.
    """
    from bench.answer import model_summary, observed_answer
    from bench.dimension import dataset_dimension
    from bench.results import ResultsStore
    from bench.runs import RunTask, execute_task
    from bench.splits import Protocol
    from models import get_rungs

    # Data
    data_dir = Path(work_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    simulated = simulate(spec)
    frame = simulated.X.assign(**{TARGET: simulated.y})
    frame.to_parquet(data_dir / f"{spec.name}.parquet", index=False)
    dataset_spec = DatasetSpec(name=spec.name, task=spec.task, domain="omics", tags=("simulated",))
    protocol = Protocol(n_folds=n_folds, n_repeats=n_repeats, seed=spec.seed)

    # Runs
    rungs = get_rungs(list(models))
    all_splits = tuple((repeat, fold) for repeat in range(n_repeats) for fold in range(n_folds))
    rows = []
    for rung in rungs:
        task = RunTask(dataset_spec, rung.name, all_splits, protocol, data_dir, None)
        rows.extend(execute_task(task))
        logger.info("simulate %s: %s done", spec.name, rung.name)
    frame = pd.DataFrame(rows)
    with ResultsStore(results_path or Path(work_dir) / "results.sqlite") as store:
        store.add(rows)

    # Analyses
    dataset = load_dataset(dataset_spec, data_dir)
    dimension = dataset_dimension(dataset, protocol, n_splits=1, seed=spec.seed)
    n_blocks_kept = _informative_blocks_kept(dataset, spec, protocol)
    observed = observed_answer(frame)
    if observed.empty:
        raise RuntimeError(f"simulation {spec.name}: no model finished every run ok; see the results in {work_dir}")
    observed_row = observed.iloc[0].to_dict()

    planted_best = spec.n_informative + 1
    return SimulationOutcome(
        name=spec.name,
        spec={**asdict(spec), "task": spec.task.value},
        planted_k=spec.n_informative,
        planted_n_blocks=spec.n_blocks,
        true_participation_ratio=true_participation_ratio(spec),
        planted_best_n_parameters=planted_best,
        n_informative_blocks_kept=n_blocks_kept,
        dimension=dimension,
        observed=observed_row,
        k_recovered=(n_blocks_kept == spec.n_informative
                     and _within_factor(dimension["n_lasso_features"], spec.n_informative)),
        best_size_recovered=_within_factor(observed_row["one_se_n_parameters"], planted_best),
        leaderboard=model_summary(frame).to_dict("records"),
    )


def _informative_blocks_kept(dataset, spec: SimulationSpec, protocol) -> int:
    """Return how many informative blocks the lasso support touches.

    The lasso is fitted on the training part of the first split, as in `dataset_dimension`,
    so its support has `n_lasso_features` features.
    """
    from bench.dimension import lasso_feature_support
    from bench.preprocess import Preprocessor
    from bench.splits import make_splits

    train = make_splits(dataset.y, dataset.task, protocol, dataset.name)[0].train
    X_frame = dataset.X.iloc[train]
    X = Preprocessor().fit(X_frame).transform(X_frame)
    y = dataset.y.cat.codes.to_numpy() if spec.task.is_classification else dataset.y.to_numpy(dtype=np.float64)
    support = lasso_feature_support(X, y[train], spec.task, spec.seed)
    blocks_kept = set(np.flatnonzero(support) // spec.block_size)
    return len(blocks_kept & set(range(spec.n_informative)))


def _within_factor(value: float, target: float, factor: float = RECOVERY_FACTOR) -> bool:
    return bool(target / factor <= value <= target * factor)
