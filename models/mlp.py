"""Multilayer perceptrons in torch, with widths solved to hit parameter budgets."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from models.base import NotApplicable, ParameterCount, Rung, Shape, split_validation
from models.training import DivergedError, EarlyStopping, check_training_loss

COUNTING_RULE = (
    "mlp: n_parameters = elements of all trainable tensors (weights and biases); the hidden "
    "width is solved per dataset so the count is within 5 % of the rung's budget"
)
# Parameter budgets of the MLP rungs.
BUDGETS = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 2e7)
BUDGET_TOLERANCE = 0.05
# Rungs up to this budget train the runs of one dataset as one stacked model (bench/stacked.py).
STACKED_MAX_BUDGET = 1e5
PRECISIONS = ("float32", "bfloat16", "auto")
# `precision="auto"` picks bfloat16 autocast only when a probe matmul runs at least this much faster.
BFLOAT16_MIN_SPEEDUP = 1.3

LossKind = Literal["mse", "bce", "cross_entropy"]


def mlp_parameter_count(n_inputs: int, width: int, n_hidden: int, n_outputs: int) -> int:
    """Return the weights and biases of an MLP with `n_hidden` layers of `width` units."""
    if n_hidden == 0:
        return n_inputs * n_outputs + n_outputs
    first = n_inputs * width + width
    middle = (n_hidden - 1) * (width * width + width)
    last = width * n_outputs + n_outputs
    return first + middle + last


def solve_width(budget: float, n_inputs: int, n_outputs: int) -> tuple[int, int]:
    """Return (width, hidden layers) whose parameter count is closest to `budget`.

    Two hidden layers are used when some width comes within 5 % of the budget; otherwise
    one hidden layer, which happens when the input is wide compared with the budget.

    Raises:
        NotApplicable: when no width is within 5 % of the budget.
    """
    for n_hidden in (2, 1):
        # Solve a w^2 + b w + c = budget for w, then check the neighbouring integers.
        a = n_hidden - 1
        b = n_inputs + 1 + (n_hidden - 1) + n_outputs
        c = n_outputs
        if a == 0:
            estimate = (budget - c) / b
        else:
            estimate = (-b + math.sqrt(max(0.0, b * b + 4 * a * (budget - c)))) / (2 * a)
        candidates = {max(1, math.floor(estimate)), max(1, math.ceil(estimate))}
        errors = {
            width: abs(mlp_parameter_count(n_inputs, width, n_hidden, n_outputs) - budget) / budget
            for width in candidates
        }
        width = min(errors, key=errors.get)
        if errors[width] <= BUDGET_TOLERANCE:
            return width, n_hidden

    smallest = mlp_parameter_count(n_inputs, 1, 1, n_outputs)
    raise NotApplicable(
        f"no MLP width comes within {BUDGET_TOLERANCE:.0%} of budget {budget:.0e} for {n_inputs} inputs and "
        f"{n_outputs} outputs (the smallest MLP has {smallest} parameters)"
    )


@dataclass
class TrainingParts:
    """The tensors one MLP trains on: the fit part, the validation part cut from it, the loss."""

    X_fit: torch.Tensor
    y_fit: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    loss_kind: LossKind
    n_outputs: int


class TorchMLP(BaseEstimator):
    """An MLP trained with Adam and early stopping on a validation part cut from the training data.

    Inputs are expected scaled; a regression target is standardised on the fit part and
    predictions are mapped back. Training is full-batch up to `batch_size` samples.
    `precision="auto"` trains under bfloat16 autocast only where `bfloat16_is_faster`
    measures a speed-up on the device; the default is float32 everywhere.
    """

    def __init__(
        self,
        budget: float = 1e4,
        task: str = "binary",
        max_epochs: int = 200,
        patience: int = 16,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.2,
        random_state: int = 0,
        device: str = "cpu",
        precision: str = "float32",
        restore_best: bool = True,
    ):
        self.budget = budget
        self.task = task
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.restore_best = restore_best

    # ---- Model ----------------------------------------------------------------

    def _network(self, n_inputs: int, n_outputs: int) -> torch.nn.Module:
        self.width_, self.n_hidden_ = solve_width(self.budget, n_inputs, n_outputs)
        layers: list[torch.nn.Module] = []
        size = n_inputs
        for _ in range(self.n_hidden_):
            layers += [torch.nn.Linear(size, self.width_), torch.nn.ReLU()]
            size = self.width_
        layers.append(torch.nn.Linear(size, n_outputs))
        return torch.nn.Sequential(*layers)

    def prepare_training(self, X, y) -> TrainingParts:
        """Seed torch, encode the target, cut the validation part and build the initial network.

        `fit` starts with this step. Stacked training calls it for each run, so every run
        starts from the same weights and data as when it is trained alone.
        """
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is invalid; use one of {', '.join(PRECISIONS)}")
        torch.manual_seed(self.random_state)
        X = np.asarray(X, dtype=np.float32)
        is_classification = self.task != "regression"

        if is_classification:
            self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
            n_outputs = 1 if len(self.classes_) == 2 else len(self.classes_)
            target = codes.astype(np.float32 if n_outputs == 1 else np.int64)
            loss_kind: LossKind = "bce" if n_outputs == 1 else "cross_entropy"
        else:
            values = np.asarray(y, dtype=np.float64)
            self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
            target = ((values - self.y_mean_) / self.y_scale_).astype(np.float32)
            n_outputs = 1
            loss_kind = "mse"
        fit_index, validation_index = self._validation_split(target, is_classification)

        device = torch.device(self.device)
        self.network_ = self._network(X.shape[1], n_outputs).to(device)
        self.precision_ = _resolve_precision(self.precision, device)
        self.n_fit_samples_ = len(fit_index)
        return TrainingParts(
            X_fit=torch.from_numpy(X[fit_index]).to(device),
            y_fit=torch.from_numpy(target[fit_index]).to(device),
            X_val=torch.from_numpy(X[validation_index]).to(device),
            y_val=torch.from_numpy(target[validation_index]).to(device),
            loss_kind=loss_kind,
            n_outputs=n_outputs,
        )

    # ---- Training -------------------------------------------------------------

    def fit(self, X, y):
        # Start
        parts = self.prepare_training(X, y)
        generator = torch.Generator().manual_seed(self.random_state)
        device = parts.X_fit.device
        optimizer = torch.optim.Adam(
            self.network_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay, **_adam_options(device)
        )
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision_ == "bfloat16")

        # Training
        stopping = EarlyStopping(self.patience)
        n_fit = len(parts.y_fit)
        for epoch in range(1, self.max_epochs + 1):
            self.network_.train()
            order = torch.randperm(n_fit, generator=generator).to(device) if n_fit > self.batch_size else None
            for start in range(0, n_fit, self.batch_size):
                rows = order[start:start + self.batch_size] if order is not None else slice(None)
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    output = self.network_(parts.X_fit[rows])
                loss = elementwise_loss(parts.loss_kind, output.float(), parts.y_fit[rows]).mean()
                check_training_loss(loss, epoch)
                loss.backward()
                optimizer.step()

            if stopping.update(epoch, self._validation_loss(parts, autocast), self.network_):
                break

        # Finish: the weights of the best validation epoch, or of the last epoch when
        # restore_best is off (a double-descent sweep needs the fully trained network).
        if self.restore_best:
            stopping.restore(self.network_)
        self.network_.eval()
        self.n_epochs_, self.best_epoch_ = epoch, stopping.best_epoch
        return self

    def _validation_split(self, target: np.ndarray, is_classification: bool):
        return split_validation(target, is_classification, self.validation_fraction, self.random_state)

    @torch.no_grad()
    def _validation_loss(self, parts: TrainingParts, autocast) -> float:
        self.network_.eval()
        with autocast:
            output = self.network_(parts.X_val)
        return float(elementwise_loss(parts.loss_kind, output.float(), parts.y_val).mean())

    # ---- Prediction -----------------------------------------------------------

    @torch.no_grad()
    def _raw_output(self, X) -> np.ndarray:
        device = next(self.network_.parameters()).device
        tensor = torch.from_numpy(np.asarray(X, dtype=np.float32)).to(device)
        output = self.network_(tensor).float().cpu().numpy().astype(np.float64)
        if not np.isfinite(output).all():
            # Finite inputs can still overflow float32 in the hidden layers, e.g. unscaled features.
            raise DivergedError(
                f"diverged: non-finite predictions from the weights of epoch {self.best_epoch_}; "
                f"scale the inputs (the default preprocessing does)"
            )
        return output

    def predict_proba(self, X) -> np.ndarray:
        logits = self._raw_output(X)
        if logits.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self._raw_output(X)[:, 0] * self.y_scale_ + self.y_mean_
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def elementwise_loss(kind: LossKind, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the loss of each row: output has a last axis of 1 (mse, bce) or of the classes."""
    if kind == "cross_entropy":
        # cross_entropy wants the classes on axis 1; stacked outputs are (runs, rows, classes).
        return torch.nn.functional.cross_entropy(output.movedim(-1, 1), target, reduction="none")
    output = output.squeeze(-1)
    if kind == "bce":
        return torch.nn.functional.binary_cross_entropy_with_logits(output, target, reduction="none")
    return (output - target) ** 2


class TorchMLPClassifier(ClassifierMixin, TorchMLP):
    pass


class TorchMLPRegressor(RegressorMixin, TorchMLP):
    pass


def _adam_options(device: torch.device) -> dict:
    # The fused kernel was measured 6-10x cheaper per optimizer step at 1e7 parameters
    # (torch 2.13 CPU wheel, one thread, on a 2-core machine).
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bfloat16" if bfloat16_is_faster(device.type) else "float32"
    return precision


@functools.lru_cache(maxsize=None)
def bfloat16_is_faster(device_type: str, size: int = 1024, n_repeats: int = 5) -> bool:
    """Time a square matmul in float32 and under bfloat16 autocast once per process and device.

    Returns True when bfloat16 is at least BFLOAT16_MIN_SPEEDUP times faster.
    """
    device = torch.device(device_type)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)

    def best_time_s(dtype: torch.dtype | None) -> float:
        times = []
        for _ in range(n_repeats):
            _synchronize(device)
            started = time.perf_counter()
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype is not None):
                a @ b
            _synchronize(device)
            times.append(time.perf_counter() - started)
        return min(times)

    best_time_s(None)  # warm-up
    return best_time_s(None) >= BFLOAT16_MIN_SPEEDUP * best_time_s(torch.bfloat16)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count(estimator, shape: Shape, X) -> ParameterCount:
    n_parameters = sum(p.numel() for p in estimator.network_.parameters() if p.requires_grad)
    detail = {
        "width": estimator.width_,
        "n_hidden_layers": estimator.n_hidden_,
        "n_epochs": estimator.n_epochs_,
        "best_epoch": estimator.best_epoch_,
        "precision": estimator.precision_,
        # Runs trained together as one stacked model; 1 when trained alone.
        "n_stacked_runs": getattr(estimator, "n_stacked_runs_", 1),
    }
    return ParameterCount(int(n_parameters), None, detail)


def default_device() -> str:
    """Return "cuda" when a CUDA device is present, else "cpu". The same code runs on both."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_stackable(rung: Rung) -> bool:
    """Return whether the runs of this rung on one dataset train faster as one stacked model."""
    return rung.family == "mlp" and rung.config.get("budget", math.inf) <= STACKED_MAX_BUDGET


def training_schedule(budget: float) -> dict:
    """Return the epoch cap, patience and batch size of a rung.

    Large rungs get fewer epochs: at 2e7 parameters one Adam step costs about 0.1 to 0.3 s
    on one CPU core (fused Adam, torch 2.13, batch 32 to 128), so 200 epochs on every
    small dataset would not fit a 30-minute benchmark on 2 cores.
    """
    if budget >= 1e7:
        return {"max_epochs": 30, "patience": 5, "batch_size": 128}
    if budget >= 1e6:
        return {"max_epochs": 60, "patience": 8, "batch_size": 128}
    return {"max_epochs": 200, "patience": 16, "batch_size": 128}


def _builder(budget: float):
    def build(shape: Shape, seed: int):
        solve_width(budget, shape.n_features, shape.n_outputs)  # raises NotApplicable early
        cls = TorchMLPClassifier if shape.task.is_classification else TorchMLPRegressor
        return cls(budget=budget, task=shape.task.value, random_state=seed, device=default_device(),
                   **training_schedule(budget))

    return build


def _flops_per_sample_epoch(budget: float):
    # Forward and backward pass cost about 6 floating-point operations per parameter and sample.
    return lambda shape: 6.0 * budget


def rung_name(budget: float) -> str:
    mantissa, exponent = f"{budget:.0e}".split("e")
    return f"mlp_{mantissa}e{int(exponent)}"


RUNGS = [
    Rung(rung_name(budget), "mlp", _builder(budget), count, estimate=lambda shape, b=budget: b,
         config={"budget": budget, **training_schedule(budget), "optimizer": "Adam(lr=1e-3, fused)"},
         flops_per_sample_epoch=_flops_per_sample_epoch(budget))
    for budget in BUDGETS
]
