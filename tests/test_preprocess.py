"""Tests of preprocessing: statistics come from the train part only, and nothing becomes NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.preprocess import Preprocessor


def test_preprocess_scaling_uses_train_statistics_only():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    test = pd.DataFrame({"x": [1000.0, -1000.0]})
    preprocessor = Preprocessor().fit(train)

    train_matrix = preprocessor.transform(train)
    test_matrix = preprocessor.transform(test)

    mean, std = 2.5, np.std([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(train_matrix[:, 0], (train["x"] - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(test_matrix[:, 0], (test["x"] - mean) / std, rtol=1e-6)


def test_preprocess_fit_ignores_test_rows():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=20), "y": rng.normal(size=20)})
    train, test = frame.iloc[:15], frame.iloc[15:]
    shifted = pd.concat([train, test + 1e6])

    preprocessor = Preprocessor().fit(train)

    np.testing.assert_allclose(preprocessor.scaler_.mean_, train.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(preprocessor.scaler_.scale_, train.std(ddof=0).to_numpy(), rtol=1e-12)
    # Had the test rows leaked into the fit, the shifted test rows would move the mean by about 2.5e5.
    assert np.abs(preprocessor.transform(shifted.iloc[:15])).max() < 10


def test_preprocess_imputes_with_train_median():
    train = pd.DataFrame({"x": [1.0, np.nan, 3.0, 10.0]})
    test = pd.DataFrame({"x": [np.nan]})
    preprocessor = Preprocessor(scale=False).fit(train)
    assert preprocessor.transform(test)[0, 0] == pytest.approx(3.0)


def test_preprocess_constant_column_gives_zero_not_nan():
    train = pd.DataFrame({"const": [7.0] * 5, "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    preprocessor = Preprocessor().fit(train)
    matrix = preprocessor.transform(train)
    assert np.isfinite(matrix).all()
    assert (matrix[:, 0] == 0).all()
    assert preprocessor.notes_ == ["1 constant feature(s) in the training part, kept as 0: const"]


def test_preprocess_unseen_category_encoded_as_zeros():
    train = pd.DataFrame({"region": pd.Categorical(["inland", "coast", "inland"])})
    test = pd.DataFrame({"region": pd.Categorical(["island", "coast"])})
    preprocessor = Preprocessor().fit(train)
    matrix = preprocessor.transform(test)
    assert matrix.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert preprocessor.count_unseen_rows(test) == 1


def test_preprocess_no_scaling_keeps_raw_units():
    train = pd.DataFrame({"area": [1e8, 5e9, 1e10]})
    matrix = Preprocessor(scale=False).fit(train).transform(train)
    np.testing.assert_allclose(matrix[:, 0], [1e8, 5e9, 1e10], rtol=1e-6)
