"""Stacked training: the runs of one small MLP rung on one dataset trained as one batched model.

Each split is preprocessed on its own train part, so the runs do not share an input matrix.
The runs are instead stacked along a leading axis, so layer l has weights of shape
(runs, inputs, outputs) and one `torch.baddbmm` computes that layer for every run. Padded rows
are masked out of the loss, and Adam updates every run in one set of tensor operations.
Each run keeps its own initial weights, validation part, batch order and early stopping, so
it ends with the same weights as `TorchMLP.fit` up to float32 rounding.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch

from bench.data import Dataset
from bench.metrics import NonFiniteError
from bench.runs import (
    RunTask, TimeLimitError, _finish_failed, _score, _time_limit, finish_ok, prepare_run,
)
from bench.splits import Split
from models import Rung, Shape
from models.mlp import DivergedError, TorchMLP, TrainingParts, elementwise_loss

# Adam's defaults in torch.optim.Adam, which `TorchMLP.fit` uses.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8


def execute_stacked_runs(task: RunTask, rung: Rung, dataset: Dataset, splits: list[Split]) -> list[dict]:
    """Fit and score the runs of one rung on several splits of one dataset as stacked models.

    Takes the inputs of `bench.runs.execute_run` for a list of splits and returns the same
    result rows, in the order of `splits`. Runs whose networks have the same shape train as
    one stacked model; a failure of one run becomes its own failed row.
    """
    rows: list[dict | None] = [None] * len(splits)
    pending: list[_PendingRun] = []

    # Data and model, one run at a time
    for position, split in enumerate(splits):
        prepared = _prepare_run(task, rung, dataset, split)
        if isinstance(prepared, dict):
            rows[position] = prepared
        else:
            prepared.position = position
            pending.append(prepared)

    # Training, one stacked model per network shape
    groups: dict[tuple, list[_PendingRun]] = {}
    for run in pending:
        groups.setdefault(run.signature, []).append(run)
    for group in groups.values():
        for run, row in zip(group, _train_and_score_group(task, rung, dataset, group)):
            rows[run.position] = row
    return rows


@dataclass
class _PendingRun:
    row: dict
    estimator: TorchMLP
    parts: TrainingParts
    shape: Shape
    X_train: object
    X_test: object
    y_train: object
    y_test: object
    position: int = -1

    @property
    def signature(self) -> tuple:
        network = self.estimator.network_
        return (self.parts.loss_kind, tuple(tuple(p.shape) for p in network.parameters()), self.parts.X_fit.device)


def _prepare_run(task: RunTask, rung: Rung, dataset: Dataset, split: Split) -> _PendingRun | dict:
    """Return a run ready for training, or its finished row when it fails or is skipped before."""
    prepared = prepare_run(task, rung, dataset, split)
    if isinstance(prepared, dict):
        return prepared
    row, estimator, shape = prepared.row, prepared.estimator, prepared.shape
    X_train, X_test, y_train, y_test = prepared.X_train, prepared.X_test, prepared.y_train, prepared.y_test
    if not isinstance(estimator, TorchMLP):
        raise TypeError(f"rung {rung.name!r} builds {type(estimator).__name__}; stacked training needs a TorchMLP")

    try:
        parts = estimator.prepare_training(X_train, y_train)
    except Exception as error:  # noqa: BLE001 - any failure of a model becomes a failed result
        return _finish_failed(row, "exception", error)
    return _PendingRun(row, estimator, parts, shape, X_train, X_test, y_train, y_test)


def _train_and_score_group(task: RunTask, rung: Rung, dataset: Dataset, group: list[_PendingRun]) -> list[dict]:
    # Training
    captured: list[warnings.WarningMessage] = []
    # One stacked model replaces len(group) runs, so it gets their time limits added up, and
    # exceeding it fails all of them.
    time_limit_s = task.time_limit_s * len(group) if task.time_limit_s else None
    try:
        with warnings.catch_warnings(record=True) as captured, _time_limit(time_limit_s):
            warnings.simplefilter("always")
            fit_started = time.perf_counter()
            errors = train_stacked([run.estimator for run in group], [run.parts for run in group])
            fit_time_s = time.perf_counter() - fit_started
    except TimeLimitError:
        folds = ", ".join(f"r{run.row['repeat']}/f{run.row['fold']}" for run in group)
        error = TimeLimitError(f"time limit of {task.time_limit_s:g} s per run exceeded: {len(group)} runs trained "
                               f"together ({folds}) did not finish in {time_limit_s:g} s")
        return [_finish_failed(run.row, "time_limit", error, captured) for run in group]
    except MemoryError as error:
        return [_finish_failed(run.row, "memory", error, captured) for run in group]
    except Exception as error:  # noqa: BLE001 - a failure of the stacked model fails each of its runs
        return [_finish_failed(run.row, "exception", error, captured) for run in group]

    # Scoring, one run at a time
    rows = []
    for run, error in zip(group, errors):
        # The stacked model's time is shared equally, so per-run times add up to the real total.
        run.row["fit_time_s"] = fit_time_s / len(group)
        if error is not None:
            rows.append(_finish_failed(run.row, "non_finite", error, captured))
            continue
        rows.append(_score_run(run, rung, dataset, captured))
    return rows


def _score_run(run: _PendingRun, rung: Rung, dataset: Dataset, captured) -> dict:
    row = run.row
    try:
        predict_started = time.perf_counter()
        train_scores, train_reasons = _score(run.estimator, dataset, run.X_train, run.y_train)
        test_scores, test_reasons = _score(run.estimator, dataset, run.X_test, run.y_test)
        row["predict_time_s"] = time.perf_counter() - predict_started
        counted = rung.count(run.estimator, run.shape, run.X_train)
    except (NonFiniteError, FloatingPointError) as error:
        return _finish_failed(row, "non_finite", error, captured)
    except Exception as error:  # noqa: BLE001
        return _finish_failed(row, "exception", error, captured)

    return finish_ok(row, dataset, counted, len(run.y_train), (train_scores, train_reasons),
                     (test_scores, test_reasons), captured)


# ---- Stacked training ------------------------------------------------------------

def train_stacked(estimators: list[TorchMLP], parts: list[TrainingParts]) -> list[DivergedError | None]:
    """Train MLPs of one network shape together and load each run's best weights into it.

    Every estimator must have run `prepare_training`. Returns one entry per run: None when
    it trained, or the DivergedError that `TorchMLP.fit` would have raised for it.
    """
    # Start
    # NOTE: tested on CPU only. On CUDA the same tensors live on the device, but that path never ran.
    n_runs = len(estimators)
    device = parts[0].X_fit.device
    layers = [_linear_layers(estimator) for estimator in estimators]
    parameters = _stack_parameters(layers, device)
    settings = _check_same_settings(estimators)
    if any(estimator.precision_ != "float32" for estimator in estimators):
        raise ValueError("stacked training runs in float32 only; train bfloat16 runs one at a time with fit")

    # Data: pad every run to the largest fit and validation part, and mask the padding
    X_fit, y_fit, fit_mask = _pad([p.X_fit for p in parts], [p.y_fit for p in parts], device)
    X_val, y_val, val_mask = _pad([p.X_val for p in parts], [p.y_val for p in parts], device)
    n_fit = [len(p.y_fit) for p in parts]
    batch_size = settings["batch_size"]
    n_batches = [math.ceil(n / batch_size) for n in n_fit]
    generators = [torch.Generator().manual_seed(estimator.random_state) for estimator in estimators]
    loss_kind = parts[0].loss_kind

    # Optimizer state: one Adam per run, with moments per element and a step count per run
    tensors = parameters.tensors
    first_moments = [torch.zeros_like(tensor) for tensor in tensors]
    second_moments = [torch.zeros_like(tensor) for tensor in tensors]
    n_steps = torch.zeros(n_runs, device=device)

    # Training
    best_loss = [math.inf] * n_runs
    best_epoch = [0] * n_runs
    best_tensors = [tensor.detach().clone() for tensor in tensors]
    n_epochs = [0] * n_runs
    errors: list[DivergedError | None] = [None] * n_runs
    running = [True] * n_runs
    for epoch in range(1, settings["max_epochs"] + 1):
        orders = [torch.randperm(n, generator=generator).to(device) if n > batch_size else None
                  for n, generator in zip(n_fit, generators)]
        for step in range(max(n_batches)):
            active = [running[r] and step < n_batches[r] for r in range(n_runs)]
            if not any(active):
                continue
            X_batch, y_batch, mask = _batch(X_fit, y_fit, fit_mask, orders, step, batch_size, n_fit)
            losses = _masked_mean(elementwise_loss(loss_kind, parameters.forward(X_batch), y_batch), mask)
            finite = torch.isfinite(losses).tolist()
            for r in range(n_runs):
                if active[r] and not finite[r]:
                    errors[r] = DivergedError(f"diverged: non-finite training loss at epoch {epoch}")
                    running[r] = active[r] = False
            update = torch.tensor(active, device=device)
            total = torch.where(update, losses, torch.zeros_like(losses)).sum()
            for tensor in tensors:
                tensor.grad = None
            total.backward()
            _adam_step(tensors, first_moments, second_moments, n_steps, active, settings)

        with torch.no_grad():
            validation = _masked_mean(elementwise_loss(loss_kind, parameters.forward(X_val), y_val), val_mask)
        for r, loss in enumerate(validation.tolist()):
            if not running[r]:
                continue
            n_epochs[r] = epoch
            if not math.isfinite(loss):
                errors[r] = DivergedError(f"diverged: non-finite validation loss at epoch {epoch}")
                running[r] = False
            elif loss < best_loss[r]:
                best_loss[r], best_epoch[r] = loss, epoch
                for best, tensor in zip(best_tensors, tensors):
                    best[r] = tensor.detach()[r]
            elif epoch - best_epoch[r] >= settings["patience"]:
                running[r] = False
        if not any(running):
            break

    # Finish
    for r, estimator in enumerate(estimators):
        _load_run(layers[r], [tensor[r] for tensor in best_tensors])
        estimator.network_.eval()
        estimator.n_epochs_, estimator.best_epoch_ = n_epochs[r], best_epoch[r]
        estimator.n_stacked_runs_ = n_runs
    return errors


def _check_same_settings(estimators: list[TorchMLP]) -> dict:
    not_restoring = [estimator for estimator in estimators if not estimator.restore_best]
    if not_restoring:
        raise ValueError("stacked training always restores the best validation epoch; "
                         "fit MLPs with restore_best=False one at a time")
    names = ("max_epochs", "patience", "batch_size", "learning_rate", "weight_decay")
    settings = {name: getattr(estimators[0], name) for name in names}
    for estimator in estimators[1:]:
        different = {name: getattr(estimator, name) for name in names if getattr(estimator, name) != settings[name]}
        if different:
            raise ValueError(f"stacked runs need the same training settings; got {different} against {settings}")
    return settings


def _linear_layers(estimator: TorchMLP) -> list[torch.nn.Linear]:
    return [module for module in estimator.network_ if isinstance(module, torch.nn.Linear)]


class _StackedParameters:
    """The weights of every run, stacked per layer: weight (runs, in, out) and bias (runs, 1, out)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        n_layers = len(self.tensors) // 2
        for index in range(n_layers):
            weight, bias = self.tensors[2 * index], self.tensors[2 * index + 1]
            X = torch.baddbmm(bias, X, weight)
            if index < n_layers - 1:
                X = torch.relu(X)
        return X


def _stack_parameters(layers: list[list[torch.nn.Linear]], device) -> _StackedParameters:
    tensors = []
    for index in range(len(layers[0])):
        # nn.Linear stores weight as (out, in); the stacked layout is (in, out) for baddbmm.
        weight = torch.stack([run_layers[index].weight.detach().T for run_layers in layers])
        bias = torch.stack([run_layers[index].bias.detach().unsqueeze(0) for run_layers in layers])
        tensors += [weight.contiguous().to(device).requires_grad_(True), bias.to(device).requires_grad_(True)]
    return _StackedParameters(tensors)


@torch.no_grad()
def _load_run(run_layers: list[torch.nn.Linear], run_tensors: list[torch.Tensor]) -> None:
    for index, linear in enumerate(run_layers):
        linear.weight.copy_(run_tensors[2 * index].T)
        linear.bias.copy_(run_tensors[2 * index + 1][0])


def _pad(X_parts: list[torch.Tensor], y_parts: list[torch.Tensor], device):
    n_max = max(len(y) for y in y_parts)
    n_runs = len(X_parts)
    X = torch.zeros(n_runs, n_max, X_parts[0].shape[1], device=device)
    y = torch.zeros(n_runs, n_max, dtype=y_parts[0].dtype, device=device)
    mask = torch.zeros(n_runs, n_max, device=device)
    for r, (X_part, y_part) in enumerate(zip(X_parts, y_parts)):
        X[r, :len(y_part)] = X_part
        y[r, :len(y_part)] = y_part
        mask[r, :len(y_part)] = 1.0
    return X, y, mask


def _batch(X, y, mask, orders, step: int, batch_size: int, n_fit: list[int]):
    """Return one mini-batch per run. A run without batch `step` this epoch gets an all-zero mask."""
    if all(order is None for order in orders):
        return X, y, mask
    n_runs = len(orders)
    index = torch.zeros(n_runs, batch_size, dtype=torch.long, device=X.device)
    batch_mask = torch.zeros(n_runs, batch_size, device=X.device)
    for r, order in enumerate(orders):
        rows = order if order is not None else torch.arange(n_fit[r], device=X.device)
        rows = rows[step * batch_size:(step + 1) * batch_size]
        index[r, :len(rows)] = rows
        batch_mask[r, :len(rows)] = 1.0
    run_index = torch.arange(n_runs, device=X.device).unsqueeze(1)
    return X[run_index, index], y[run_index, index], batch_mask


def _masked_mean(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return each run's mean loss over its real rows: (runs, rows) -> (runs,)."""
    # where() keeps a non-finite loss on a padded row from turning the sum into NaN.
    real_losses = torch.where(mask > 0, losses, torch.zeros_like(losses))
    return real_losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


@torch.no_grad()
def _adam_step(tensors, first_moments, second_moments, n_steps, active: list[bool], settings) -> None:
    """Apply one Adam step to the runs in `active`, as torch.optim.Adam does for each run alone.

    A run outside `active` keeps its weights, moments and step count.
    """
    beta1, beta2 = ADAM_BETAS
    device = n_steps.device
    update = torch.tensor(active, device=device)
    n_steps += update
    steps = n_steps.clamp(min=1.0)
    # Per-run factors of shape (runs, 1, 1), so a run outside `active` decays nothing and moves 0.
    shape = (-1, 1, 1)
    decay1 = torch.where(update, beta1, 1.0).view(shape)
    decay2 = torch.where(update, beta2, 1.0).view(shape)
    step_size = torch.where(update, settings["learning_rate"] / (1 - beta1 ** steps), 0.0).view(shape)
    root_bias_correction2 = (1 - beta2 ** steps).sqrt().view(shape)
    all_active = all(active)

    for tensor, first, second in zip(tensors, first_moments, second_moments):
        grad = tensor.grad
        if settings["weight_decay"]:
            grad = grad + settings["weight_decay"] * tensor
        if not all_active:
            # where() and not a product, because a diverged run can have a NaN gradient.
            grad = torch.where(update.view(shape), grad, 0.0)
        first.mul_(decay1).add_(grad, alpha=1 - beta1)
        second.mul_(decay2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (second.sqrt() / root_bias_correction2).add_(ADAM_EPSILON)
        tensor.sub_((first / denominator).mul_(step_size))
