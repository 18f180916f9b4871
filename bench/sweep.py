"""Double-descent sweep: MLP parameter budgets spaced densely around the interpolation threshold.

Belkin, Hsu, Ma and Mandal (PNAS 2019) place the test-error peak near P = n for regression and
P = C n for C classes with one output per class; Nakkiran et al. (ICLR 2020) find that
regularization can flatten it. The sweep fits the ladder's MLP at budgets from a tenth to ten
times that threshold, with and without weight decay, through `bench.runs.execute_run`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Budgets per interpolation threshold, geometric and symmetric around 1.
DEFAULT_THRESHOLD_MULTIPLES = tuple(float(x) for x in np.geomspace(0.1, 10, 13))
# Weight decay of Adam (an L2 term in each gradient step): none, and 1e-2.
DEFAULT_WEIGHT_DECAYS = (0.0, 1e-2)
DEFAULT_MAX_EPOCHS = 300


def interpolation_threshold(n_train_samples: int, n_outputs: int) -> int:
    """Return the parameter count at which a network can fit every training target: n x outputs."""
    return int(n_train_samples * n_outputs)


def double_descent_sweep(dataset, splits, threshold_multiples=DEFAULT_THRESHOLD_MULTIPLES,
                         weight_decays=DEFAULT_WEIGHT_DECAYS, max_epochs: int = DEFAULT_MAX_EPOCHS,
                         seed: int = 0) -> pd.DataFrame:
    """Fit the MLP at every budget and weight decay on every split; return one result row per run.

    The rows are those of `bench.runs.execute_run` plus `weight_decay`, `budget` and
    `threshold_multiple`. A budget that no width reaches within 5 % is a skipped row.

    Every network trains for `max_epochs` and keeps its last epoch's weights (restore_best off,
    patience equal to the epoch cap), because Nakkiran et al. observe that early stopping can
    hide the interpolation peak.
    """
    from bench.config import DatasetSpec
    from bench.runs import RunTask, execute_run
    from bench.splits import Protocol
    from models.base import Shape

    if not splits:
        raise ValueError("splits is empty; pass the splits of bench.splits.make_splits")
    spec = DatasetSpec(name=dataset.name, task=dataset.task, domain=dataset.domain)
    task_protocol = Protocol(n_folds=2, n_repeats=1, seed=seed)
    n_outputs = Shape(dataset.task, 1, dataset.n_classes, 1).n_outputs
    rows = []
    for split in splits:
        # The network fits on 80 % of the training part; the rest decides early stopping.
        threshold = interpolation_threshold(int(round(0.8 * len(split.train))), n_outputs)
        for multiple in threshold_multiples:
            budget = max(10.0, multiple * threshold)
            for weight_decay in weight_decays:
                rung = _sweep_rung(budget, weight_decay, max_epochs)
                task = RunTask(spec, rung.name, (), task_protocol, None, None, compute_budget=float("inf"))
                row = execute_run(task, rung, dataset, split)
                row.update(weight_decay=weight_decay, budget=budget, threshold_multiple=multiple,
                           interpolation_threshold=threshold)
                rows.append(row)
    return pd.DataFrame(rows)


def _sweep_rung(budget: float, weight_decay: float, max_epochs: int):
    from models import mlp
    from models.base import Rung

    def build(shape, seed):
        mlp.solve_width(budget, shape.n_features, shape.n_outputs)  # raises NotApplicable early
        cls = mlp.TorchMLPClassifier if shape.task.is_classification else mlp.TorchMLPRegressor
        return cls(budget=budget, task=shape.task.value, random_state=seed, device=mlp.default_device(),
                   max_epochs=max_epochs, patience=max_epochs, batch_size=128, weight_decay=weight_decay,
                   restore_best=False)

    name = f"sweep_mlp_{budget:.3g}_wd{weight_decay:g}"
    config = {"budget": budget, "weight_decay": weight_decay, "max_epochs": max_epochs, "patience": max_epochs,
              "restore_best": False}
    return Rung(name, "mlp", build, mlp.count, estimate=lambda shape: budget, config=config)


def summarize_sweep(rows: pd.DataFrame) -> pd.DataFrame:
    """Return mean test score, gap and params_per_sample per (dataset, weight decay, budget) of ok runs."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["dataset", "weight_decay", "budget", "threshold_multiple", "n_parameters",
                                     "params_per_sample", "test_score", "train_score", "gap", "n_runs"])
    grouped = ok.groupby(["dataset", "weight_decay", "budget"], sort=True)
    summary = grouped.agg(threshold_multiple=("threshold_multiple", "mean"), n_parameters=("n_parameters", "mean"),
                          params_per_sample=("params_per_sample", "mean"), test_score=("test_score", "mean"),
                          train_score=("train_score", "mean"), gap=("gap", "mean"), n_runs=("test_score", "size"))
    return summary.reset_index()
