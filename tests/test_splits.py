"""Tests of the split protocol: disjoint, covering, stratified, seeded, and tiny classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.config import TaskType
from bench.splits import Protocol, derive_seed, make_splits


def _labels(counts: dict[str, int], seed: int = 0) -> np.ndarray:
    labels = np.concatenate([[name] * count for name, count in counts.items()])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("task", [TaskType.BINARY, TaskType.REGRESSION])
@pytest.mark.parametrize("n_folds, n_repeats", [(2, 1), (5, 3)])
def test_split_folds_disjoint_and_covering(task, n_folds, n_repeats):
    y = _labels({"a": 23, "b": 17}) if task.is_classification else np.linspace(0, 1, 40)
    splits = make_splits(y, task, Protocol(n_folds=n_folds, n_repeats=n_repeats), "toy")

    assert [(s.repeat, s.fold) for s in splits] == [(r, f) for r in range(n_repeats) for f in range(n_folds)]
    for split in splits:
        assert np.intersect1d(split.train, split.test).size == 0
        assert np.union1d(split.train, split.test).tolist() == list(range(40))
    for repeat in range(n_repeats):
        tests = np.concatenate([s.test for s in splits if s.repeat == repeat])
        assert sorted(tests.tolist()) == list(range(40))


def test_split_stratified_class_shares():
    y = _labels({"a": 30, "b": 10})
    for split in make_splits(y, TaskType.BINARY, Protocol(n_folds=5, n_repeats=2), "toy"):
        counts = pd.Series(y[split.test]).value_counts()
        assert counts["a"] == 6
        assert counts["b"] == 2


def test_split_repeats_reshuffle():
    y = _labels({"a": 20, "b": 20})
    splits = make_splits(y, TaskType.BINARY, Protocol(n_folds=2, n_repeats=2), "toy")
    assert splits[0].seed != splits[2].seed
    assert not np.array_equal(splits[0].test, splits[2].test)


def test_split_same_seed_same_indices():
    y = _labels({"a": 20, "b": 20})
    first = make_splits(y, TaskType.BINARY, Protocol(n_folds=4, seed=7), "toy")
    second = make_splits(y, TaskType.BINARY, Protocol(n_folds=4, seed=7), "toy")
    other = make_splits(y, TaskType.BINARY, Protocol(n_folds=4, seed=8), "toy")
    assert all(np.array_equal(a.test, b.test) for a, b in zip(first, second))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(first, other))


def test_split_seed_depends_on_dataset_name():
    assert derive_seed(0, "iris", 0) == derive_seed(0, "iris", 0)
    assert derive_seed(0, "iris", 0) != derive_seed(0, "wine", 0)
    assert 0 <= derive_seed("anything") < 2**32


def test_split_tiny_class_in_distinct_test_folds():
    # Class "c" has 2 samples with 5 folds: the rule keeps it and puts each sample in another test fold.
    y = _labels({"a": 8, "b": 5, "c": 2})
    splits = make_splits(y, TaskType.MULTICLASS, Protocol(n_folds=5, n_repeats=1), "toy")
    folds_with_c = [s.fold for s in splits if (y[s.test] == "c").any()]
    assert len(folds_with_c) == 2
    for split in splits:
        assert (y[split.test] == "c").sum() <= 1


def test_split_tiny_class_raises_no_sklearn_warning(recwarn):
    make_splits(_labels({"a": 10, "b": 2}), TaskType.BINARY, Protocol(n_folds=5), "toy")
    assert not [w for w in recwarn if "least populated class" in str(w.message)]


def test_split_fewer_samples_than_folds_raises():
    with pytest.raises(ValueError, match=r"3 samples, fewer than n_folds=5; use --folds 3"):
        make_splits(np.array([0.0, 1.0, 2.0]), TaskType.REGRESSION, Protocol(n_folds=5), "toy")


@pytest.mark.parametrize("field, value, message", [
    ("n_folds", 1, r"n_folds=1 is invalid; use 2 or more folds"),
    ("n_repeats", 0, r"n_repeats=0 is invalid; use 1 or more repeats"),
])
def test_protocol_invalid_counts_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**{field: value})
