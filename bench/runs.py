"""One run: fit one model on the train part of one split and score it on both parts."""

from __future__ import annotations

import collections
import ctypes
import json
import math
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import DatasetSpec
from bench.data import Dataset, load_dataset
from bench.metrics import NonFiniteError, PRIMARY_METRIC, metric_names, score
from bench.preprocess import Preprocessor
from bench.splits import Protocol, Split, derive_seed, make_splits, split_rule
from models import NotApplicable, Rung, Shape, get_rungs

# Result status values.
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
# Error kinds of failed or skipped runs.
ERROR_KINDS = ("exception", "non_finite", "time_limit", "memory", "not_applicable", "compute_budget", "data",
               "worker_lost")
# Default compute budget per run, in floating-point operations (see `estimated_flops`).
DEFAULT_COMPUTE_BUDGET = 6e11
# A regression model whose prediction on its own training rows lies this many training-target
# standard deviations from the target mean has diverged. Least squares fits stay within
# a few standard deviations on their training rows. An MLP on raw features in units of 1e10
# reached about 3e7 in a measurement on a 40-row synthetic table.
DIVERGED_PREDICTION_STDS = 1e4
# Substrings of the RuntimeError messages with which torch reports a failed allocation
# ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory").
MEMORY_ERROR_TEXTS = ("can't allocate memory", "out of memory")


@dataclass(frozen=True)
class RunKey:
    """The id of a run: (dataset, model, repeat, fold)."""

    dataset: str
    model: str
    repeat: int
    fold: int

    @property
    def run_id(self) -> str:
        return f"{self.dataset}/{self.model}/r{self.repeat}/f{self.fold}"


@dataclass(frozen=True)
class RunTask:
    """A batch of runs of one model on one dataset, executed together by one worker."""

    spec: DatasetSpec
    model: str
    splits: tuple[tuple[int, int], ...]
    protocol: Protocol
    data_dir: Path | None
    cache_dir: Path | None
    compute_budget: float = DEFAULT_COMPUTE_BUDGET
    time_limit_s: float | None = None
    max_samples: int | None = None
    provenance_id: str = ""
    extra: dict = field(default_factory=dict)


class TimeLimitError(TimeoutError):
    """Raised inside a run that exceeded its time limit."""


class _AsyncTimeLimitError(TimeLimitError):
    """TimeLimitError delivered into a thread other than the main one, where SIGALRM cannot reach."""


def estimated_flops(rung: Rung, shape: Shape, n_train_samples: int) -> float | None:
    """Return the estimated training cost of a network rung: flops per sample-epoch x samples x max epochs."""
    if rung.flops_per_sample_epoch is None:
        return None
    max_epochs = rung.config.get("max_epochs", 1)
    return rung.flops_per_sample_epoch(shape) * n_train_samples * max_epochs


def budget_train_samples(dataset: Dataset, protocol: Protocol) -> int:
    """Return the largest train part of any split of the protocol.

    The compute budget is decided with this size for every split of a dataset, so that
    train parts differing by one sample never run some folds of a rung and skip others.
    """
    return dataset.n_samples - dataset.n_samples // protocol.n_folds


def execute_task(task: RunTask) -> list[dict]:
    """Execute every run of a task and return one result row per run; never raises for a run."""
    started = time.perf_counter()
    rung = get_rungs([task.model])[0]
    try:
        dataset = _cached_dataset(task.spec, task.data_dir, task.cache_dir, task.max_samples, task.protocol.seed)
        splits = {(s.repeat, s.fold): s for s in _cached_splits(task.spec, task.data_dir, task.cache_dir,
                                                                   task.max_samples, task.protocol)}
    except Exception as error:  # noqa: BLE001 - a dataset that fails to load fails all its runs
        return [_failed_row(task, rung, repeat, fold, "data", error) for repeat, fold in task.splits]

    from bench.stacked import execute_stacked_runs
    from models.mlp import is_stackable

    ordered = [splits[(repeat, fold)] for repeat, fold in task.splits]
    if is_stackable(rung) and len(ordered) > 1:
        # Small MLP rungs train the runs of all splits as one stacked model, which is
        # several times faster than one at a time and gives the same results.
        rows = execute_stacked_runs(task, rung, dataset, ordered)
    else:
        rows = [execute_run(task, rung, dataset, split) for split in ordered]
    if rows:
        rows[-1]["task_time_s"] = time.perf_counter() - started
    return rows


@dataclass
class PreparedRun:
    """A run whose split is preprocessed and whose estimator is built, ready to fit."""

    row: dict
    estimator: Any
    shape: Shape
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def prepare_run(task: RunTask, rung: Rung, dataset: Dataset, split: Split) -> PreparedRun | dict:
    """Preprocess the split and build the estimator of one run.

    Returns:
        A PreparedRun, or the run's finished result row when it fails or is skipped
        before fitting (a data error, the compute budget, a rung that does not apply).
    """
    key = RunKey(dataset.name, rung.name, split.repeat, split.fold)
    seed = derive_seed(task.protocol.seed, key.dataset, key.model, key.repeat, key.fold)
    row = _base_row(task, rung, key, seed, dataset)
    row["split_seed"] = split.seed

    # Data
    try:
        X_train, X_test, y_train, y_test, preprocess_notes = _prepared_split(task, dataset, split)
    except Exception as error:  # noqa: BLE001
        return _finish_failed(row, "data", error)
    row["n_train_samples"] = int(len(y_train))
    row["n_test_samples"] = int(len(y_test))
    row["n_features_in"] = int(X_train.shape[1])
    row["notes"] = json.dumps(dataset.notes + preprocess_notes)
    shape = Shape(dataset.task, X_train.shape[1], dataset.n_classes, len(y_train))

    # Model
    flops = estimated_flops(rung, shape, budget_train_samples(dataset, task.protocol))
    row["estimated_flops"] = flops
    if flops is not None and flops > task.compute_budget:
        return _finish_skipped(
            row, "compute_budget",
            f"not run: compute budget (estimated {flops:.2e} flops > budget {task.compute_budget:.2e}; "
            f"raise it with --compute-budget)",
        )
    try:
        estimator = rung.build(shape, seed)
    except NotApplicable as error:
        return _finish_skipped(row, "not_applicable", f"not applicable: {error}")
    row["model_config"] = json.dumps({**rung.config, **_simple_params(estimator)}, sort_keys=True, default=str)
    return PreparedRun(row, estimator, shape, X_train, X_test, y_train, y_test)


def execute_run(task: RunTask, rung: Rung, dataset: Dataset, split: Split) -> dict:
    """Fit and score one run, turning any failure into a result row."""
    prepared = prepare_run(task, rung, dataset, split)
    if isinstance(prepared, dict):
        return prepared
    row, estimator, shape = prepared.row, prepared.estimator, prepared.shape
    X_train, X_test, y_train, y_test = prepared.X_train, prepared.X_test, prepared.y_train, prepared.y_test

    # Training and scoring
    captured: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as captured, _time_limit(task.time_limit_s):
            warnings.simplefilter("always")
            fit_started = time.perf_counter()
            estimator.fit(X_train, y_train)
            row["fit_time_s"] = time.perf_counter() - fit_started
            predict_started = time.perf_counter()
            train_scores, train_reasons = _score(estimator, dataset, X_train, y_train, y_fit=y_train)
            test_scores, test_reasons = _score(estimator, dataset, X_test, y_test)
            row["predict_time_s"] = time.perf_counter() - predict_started
            counted = rung.count(estimator, shape, X_train)
    except TimeLimitError:
        error = TimeLimitError(f"time limit of {task.time_limit_s:g} s exceeded")
        return _finish_failed(row, "time_limit", error, captured)
    except MemoryError as error:
        return _finish_failed(row, "memory", error, captured)
    except RuntimeError as error:
        kind = "memory" if any(text in str(error) for text in MEMORY_ERROR_TEXTS) else "exception"
        return _finish_failed(row, kind, error, captured)
    except (NonFiniteError, FloatingPointError) as error:
        return _finish_failed(row, "non_finite", error, captured)
    except Exception as error:  # noqa: BLE001 - any failure of a model becomes a failed result
        return _finish_failed(row, "exception", error, captured)

    # Result
    if hasattr(estimator, "precision_"):
        row["precision"] = estimator.precision_
    return finish_ok(row, dataset, counted, len(y_train), (train_scores, train_reasons),
                     (test_scores, test_reasons), captured)


def finish_ok(row: dict, dataset: Dataset, counted, n_train_samples: int, train: tuple, test: tuple,
              captured) -> dict:
    """Fill an ok result row from the scores of both parts and the parameter count."""
    (train_scores, train_reasons), (test_scores, test_reasons) = train, test
    metric = PRIMARY_METRIC[dataset.task]
    row.update(
        status=OK,
        train_score=train_scores[metric],
        test_score=test_scores[metric],
        gap=train_scores[metric] - test_scores[metric],
        n_parameters=counted.n_parameters,
        n_effective_parameters=counted.n_effective_parameters,
        params_per_sample=counted.n_parameters / n_train_samples,
        parameter_detail=json.dumps(counted.detail, sort_keys=True, default=str),
        scores=json.dumps({**{f"train_{k}": v for k, v in train_scores.items()},
                           **{f"test_{k}": v for k, v in test_scores.items()}}, sort_keys=True),
        score_nan_reasons=json.dumps({**{f"train_{k}": v for k, v in train_reasons.items()},
                                      **{f"test_{k}": v for k, v in test_reasons.items()}}, sort_keys=True),
    )
    _record_warnings(row, captured)
    return row


# ---- Worker-side caches -------------------------------------------------------
# A worker process keeps the last datasets and splits it used, because the runs of
# one dataset arrive together and loading omics tables takes about a second.

@lru_cache(maxsize=2)
def _cached_dataset(spec, data_dir, cache_dir, max_samples, seed) -> Dataset:
    dataset = load_dataset(spec, data_dir, cache_dir)
    if max_samples is not None and dataset.n_samples > max_samples:
        dataset = subsample(dataset, max_samples, seed)
    return dataset


@lru_cache(maxsize=2)
def _cached_splits(spec, data_dir, cache_dir, max_samples, protocol) -> tuple[Split, ...]:
    dataset = _cached_dataset(spec, data_dir, cache_dir, max_samples, protocol.seed)
    return tuple(make_splits(dataset.y, dataset.task, protocol, dataset.name))


_PREPARED: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_PREPARED_MAX = 12


def _prepared_split(task: RunTask, dataset: Dataset, split: Split):
    """Return the preprocessed train and test parts of a split, fitted on the train part."""
    key = (dataset.name, dataset.sha256, task.max_samples, split.repeat, split.fold, split.seed, task.protocol.scale)
    if key in _PREPARED:
        _PREPARED.move_to_end(key)
        return _PREPARED[key]
    X_train_frame = dataset.X.iloc[split.train]
    X_test_frame = dataset.X.iloc[split.test]
    preprocessor = Preprocessor(scale=task.protocol.scale).fit(X_train_frame)
    X_train = preprocessor.transform(X_train_frame)
    X_test = preprocessor.transform(X_test_frame)
    notes = list(preprocessor.notes_)
    n_unseen = preprocessor.count_unseen_rows(X_test_frame)
    if n_unseen:
        notes.append(f"{n_unseen} test row(s) hold a category unseen in training, encoded as all zeros")
    y = dataset.y.cat.codes.to_numpy() if dataset.task.is_classification else dataset.y.to_numpy(dtype=np.float64)
    prepared = (X_train, X_test, y[split.train], y[split.test], notes)
    _PREPARED[key] = prepared
    if len(_PREPARED) > _PREPARED_MAX:
        _PREPARED.popitem(last=False)
    return prepared


def subsample(dataset: Dataset, max_samples: int, seed: int) -> Dataset:
    """Return a seeded random subset of `max_samples` rows, keeping at least 2 per class."""
    from sklearn.model_selection import train_test_split

    stratify = dataset.y if dataset.task.is_classification else None
    if stratify is not None and (dataset.y.value_counts().min() < 2 or max_samples < dataset.n_classes * 2):
        stratify = None
    keep, _ = train_test_split(np.arange(dataset.n_samples), train_size=max_samples, random_state=seed,
                               stratify=stratify)
    keep = np.sort(keep)
    y = dataset.y.iloc[keep].reset_index(drop=True)
    if dataset.task.is_classification:
        y = y.cat.remove_unused_categories()
    notes = dataset.notes + [f"subsampled to {max_samples} of {dataset.n_samples} samples (--max-samples)"]
    classes = tuple(y.cat.categories) if dataset.task.is_classification else ()
    return Dataset(dataset.name, dataset.X.iloc[keep].reset_index(drop=True), y, dataset.task, dataset.domain,
                   dataset.source, dataset.sha256, classes, dataset.positive_class, notes)


# ---- Scoring --------------------------------------------------------------------

def _score(estimator, dataset: Dataset, X, y, y_fit=None):
    """Score predictions on X; with `y_fit`, the training target, also check regression divergence."""
    prediction = np.asarray(estimator.predict(X))
    if y_fit is not None and not dataset.task.is_classification:
        _check_diverged(estimator, prediction, y_fit)
    proba = None
    if dataset.task.is_classification and hasattr(estimator, "predict_proba"):
        proba = _full_proba(estimator.predict_proba(X), estimator.classes_, dataset.n_classes)
    return score(dataset.task, y, prediction, proba, dataset.n_classes)


def _check_diverged(estimator, prediction: np.ndarray, y_fit: np.ndarray) -> None:
    """Raise NonFiniteError when training predictions are non-finite or far outside the target's spread."""
    epoch = getattr(estimator, "best_epoch_", None)
    at_epoch = f" at epoch {epoch}" if epoch is not None else ""
    if not np.all(np.isfinite(prediction)):
        raise NonFiniteError(f"diverged: non-finite predictions on the train part{at_epoch}")
    spread = float(np.std(y_fit)) or 1.0
    n_stds = float(np.max(np.abs(prediction - np.mean(y_fit)))) / spread
    if n_stds > DIVERGED_PREDICTION_STDS:
        raise NonFiniteError(
            f"diverged: predictions on the train part reach {n_stds:.2g} target standard deviations "
            f"from the target mean{at_epoch} (limit {DIVERGED_PREDICTION_STDS:g}); scale the features"
        )


def _full_proba(proba: np.ndarray, seen_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Expand probabilities over the classes seen in training to all class codes."""
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(seen_classes, dtype=int)] = proba
    return full


# ---- Rows -------------------------------------------------------------------------

def _base_row(task: RunTask, rung: Rung, key: RunKey, seed: int, dataset: Dataset | None) -> dict:
    row = {
        "run_id": key.run_id,
        "dataset": key.dataset,
        "model": key.model,
        "family": rung.family,
        "repeat": key.repeat,
        "fold": key.fold,
        "seed": seed,
        "status": None,
        "error_kind": None,
        "error": None,
        "metric": PRIMARY_METRIC[dataset.task] if dataset is not None else None,
        "task": dataset.task.value if dataset is not None else None,
        "domain": task.spec.domain,
        "dataset_source": dataset.source if dataset is not None else task.spec.describe_source(),
        "dataset_sha256": dataset.sha256 if dataset is not None else None,
        "n_classes": dataset.n_classes if dataset is not None else None,
        "split_rule": split_rule(dataset.task) if dataset is not None else None,
        "n_folds": task.protocol.n_folds,
        "n_repeats": task.protocol.n_repeats,
        "protocol_seed": task.protocol.seed,
        "scaling": task.protocol.scale,
        "max_samples": task.max_samples,
        "compute_budget": task.compute_budget,
        "model_config": json.dumps(rung.config, sort_keys=True, default=str),
        "provenance_id": task.provenance_id,
        "n_warnings": 0,
        "warnings": "{}",
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    row.update(_device_fields(rung))
    return row


def _device_fields(rung: Rung) -> dict:
    if rung.family not in ("mlp", "gnn"):
        return {"device": "cpu", "precision": "float64"}
    import torch

    # Only the MLP moves to a GPU when one is present; the GNN always trains on the CPU.
    device = "cuda" if rung.family == "mlp" and torch.cuda.is_available() else "cpu"
    return {
        "device": device,
        "precision": "float32",
        "torch_version": torch.__version__,
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "dataloader_workers": 0,
    }


def lost_task_rows(task: RunTask, error: BaseException) -> list[dict]:
    """Return a failed row with error kind `worker_lost` for each run of a task whose worker died."""
    rung = get_rungs([task.model])[0]
    return [_failed_row(task, rung, repeat, fold, "worker_lost", error) for repeat, fold in task.splits]


def _failed_row(task: RunTask, rung: Rung, repeat: int, fold: int, kind: str, error: BaseException) -> dict:
    key = RunKey(task.spec.name, rung.name, repeat, fold)
    seed = derive_seed(task.protocol.seed, key.dataset, key.model, key.repeat, key.fold)
    return _finish_failed(_base_row(task, rung, key, seed, None), kind, error)


def _finish_failed(row: dict, kind: str, error: BaseException, captured=None) -> dict:
    message = str(error) or type(error).__name__
    row.update(status=FAILED, error_kind=kind, error=f"{type(error).__name__}: {message}")
    if kind == "exception":
        row["traceback"] = "".join(traceback.format_exception(type(error), error, error.__traceback__))[-4000:]
    _record_warnings(row, captured or [])
    return row


def _finish_skipped(row: dict, kind: str, reason: str) -> dict:
    row.update(status=SKIPPED, error_kind=kind, error=reason)
    return row


def _record_warnings(row: dict, captured) -> None:
    counts = collections.Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}" for w in captured)
    row["warnings"] = json.dumps(dict(sorted(counts.items())))
    row["n_warnings"] = int(sum(counts.values()))
    row["converged"] = not any(message.startswith("ConvergenceWarning") for message in counts)


def _simple_params(estimator) -> dict:
    try:
        params = estimator.get_params(deep=False)
    except Exception:  # noqa: BLE001 - a foreign estimator without get_params
        return {}
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool, type(None)))}


class _time_limit:
    """Raise TimeLimitError in the running thread after `seconds`.

    The main thread gets SIGALRM, which also interrupts a sleeping system call. Any other
    thread, such as a Dask worker's task thread, gets the exception asynchronously through
    PyThreadState_SetAsyncExc from a timer thread.
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.timer: threading.Timer | None = None
        self.uses_signal = False

    def __enter__(self):
        if not self.seconds:
            return self
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self.uses_signal = True
            self.previous = signal.signal(signal.SIGALRM, self._raise)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            return self
        # NOTE: an asynchronous exception is raised at the thread's next Python bytecode, so a
        # single long call into C (one BLAS product, one torch kernel, a sleep) finishes first.
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.done = False
        self.timer = threading.Timer(self.seconds, self._raise_in_thread)
        self.timer.daemon = True
        self.timer.start()
        return self

    def _raise(self, signum, frame):
        raise TimeLimitError(f"time limit of {self.seconds:g} s exceeded")

    def _raise_in_thread(self) -> None:
        with self.lock:
            if not self.done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                           ctypes.py_object(_AsyncTimeLimitError))

    def __exit__(self, *exc):
        if self.uses_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        elif self.timer is not None:
            with self.lock:
                self.done = True
                self.timer.cancel()
                # Clears an exception that the timer set but the thread has not raised yet.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)
        return False


def is_finite_number(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
