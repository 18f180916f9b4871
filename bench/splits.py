"""Repeated k-fold splits addressed by (repeat, fold), with derived seeds."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from bench.config import TaskType

# Rule for classes smaller than the number of folds, stored with every result.
SPLIT_RULE = (
    "stratified k-fold per repeat; a class with 1 sample is dropped on load; a class with fewer "
    "samples than folds is kept and its samples land in distinct test folds, so some test folds lack it"
)
REGRESSION_SPLIT_RULE = "shuffled k-fold per repeat"


@dataclass(frozen=True)
class Protocol:
    """Split and preparation settings of every dataset: folds per repeat, repeats, base seed, scaling.

    `scale=False` leaves numeric features unscaled (imputation and encoding still run),
    which reproduces models trained on raw units; every result records the choice.
    """

    n_folds: int = 5
    n_repeats: int = 2
    seed: int = 0
    scale: bool = True

    def __post_init__(self):
        if self.n_folds < 2:
            raise ValueError(f"n_folds={self.n_folds} is invalid; use 2 or more folds")
        if self.n_repeats < 1:
            raise ValueError(f"n_repeats={self.n_repeats} is invalid; use 1 or more repeats")


@dataclass(frozen=True)
class Split:
    """One partition of sample indices into train and test, addressed by (repeat, fold)."""

    repeat: int
    fold: int
    seed: int
    train: np.ndarray
    test: np.ndarray


def derive_seed(*parts: object) -> int:
    """Return a 32-bit seed from the given parts, stable across Python processes and versions."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def make_splits(y, task: TaskType, protocol: Protocol, dataset_name: str) -> list[Split]:
    """Return every split of the protocol, ordered by (repeat, fold)."""
    n_samples = len(y)
    if n_samples < protocol.n_folds:
        raise ValueError(
            f"dataset {dataset_name!r} has {n_samples} samples, fewer than n_folds={protocol.n_folds}; "
            f"use --folds {max(2, n_samples)} or fewer"
        )
    labels = np.asarray(y)
    splits: list[Split] = []
    for repeat in range(protocol.n_repeats):
        seed = derive_seed(protocol.seed, dataset_name, repeat)
        if task.is_classification:
            splitter = StratifiedKFold(n_splits=protocol.n_folds, shuffle=True, random_state=seed)
        else:
            splitter = KFold(n_splits=protocol.n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # The "least populated class" warning is replaced by SPLIT_RULE, recorded with each result.
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            for fold, (train, test) in enumerate(splitter.split(np.zeros(n_samples), labels)):
                splits.append(Split(repeat, fold, seed, np.sort(train), np.sort(test)))
    return splits


def split_rule(task: TaskType) -> str:
    """Return the recorded rule of how splits of this task type are drawn."""
    return SPLIT_RULE if task.is_classification else REGRESSION_SPLIT_RULE
