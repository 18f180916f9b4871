"""Preprocessing fitted on the training part of one split: impute, one-hot encode, scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MISSING_CATEGORY = "__missing__"
# How many column names a note lists before it summarises the rest as a count.
MAX_NAMES_IN_NOTE = 5


class Preprocessor:
    """Turn a feature table into a float32 matrix, fitted on training rows only.

    Numeric columns: median imputation (an all-missing column becomes 0), then
    standard scaling, where a zero standard deviation is treated as 1 so constant
    columns give 0 instead of NaN. Categorical, string and bool columns: missing
    values become their own category, then one-hot encoding that maps a category
    unseen in training to all zeros.
    """

    def __init__(self, scale: bool = True):
        self.scale = scale

    def fit(self, X: pd.DataFrame) -> "Preprocessor":
        self.numeric_columns_ = [c for c in X.columns if _is_numeric(X[c])]
        self.categorical_columns_ = [c for c in X.columns if not _is_numeric(X[c])]
        self.notes_: list[str] = []

        if self.numeric_columns_:
            numeric = _numeric_block(X, self.numeric_columns_)
            self.imputer_ = SimpleImputer(strategy="median", keep_empty_features=True).fit(numeric)
            imputed = self.imputer_.transform(numeric)
            self.scaler_ = StandardScaler(with_mean=self.scale, with_std=self.scale).fit(imputed)
            constant = np.ptp(imputed, axis=0) == 0
            if constant.any():
                names = [str(c) for c, flag in zip(self.numeric_columns_, constant) if flag]
                self.notes_.append(f"{len(names)} constant feature(s) in the training part, kept as 0: {_short(names)}")
        if self.categorical_columns_:
            self.encoder_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
            self.encoder_.fit(_categorical_block(X, self.categorical_columns_))
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        if self.numeric_columns_:
            numeric = self.scaler_.transform(self.imputer_.transform(_numeric_block(X, self.numeric_columns_)))
            blocks.append(numeric.astype(np.float32, copy=False))
        if self.categorical_columns_:
            blocks.append(self.encoder_.transform(_categorical_block(X, self.categorical_columns_)))
        if not blocks:
            return np.zeros((len(X), 0), dtype=np.float32)
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]

    def count_unseen_rows(self, X: pd.DataFrame) -> int:
        """Return how many rows hold a category that was not seen in training."""
        if not self.categorical_columns_:
            return 0
        block = _categorical_block(X, self.categorical_columns_)
        unseen = np.zeros(len(X), dtype=bool)
        for index, categories in enumerate(self.encoder_.categories_):
            unseen |= ~np.isin(block[:, index], categories)
        return int(unseen.sum())


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def _numeric_block(X: pd.DataFrame, columns: list) -> np.ndarray:
    if len(columns) == X.shape[1]:
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    return X[columns].to_numpy(dtype=np.float64, na_value=np.nan)


def _categorical_block(X: pd.DataFrame, columns: list) -> np.ndarray:
    block = np.empty((len(X), len(columns)), dtype=object)
    for index, column in enumerate(columns):
        values = X[column].astype(object)
        block[:, index] = values.where(values.notna(), MISSING_CATEGORY).map(str).to_numpy()
    return block


def _short(names: list[str]) -> str:
    if len(names) <= MAX_NAMES_IN_NOTE:
        return ", ".join(names)
    return ", ".join(names[:MAX_NAMES_IN_NOTE]) + f" and {len(names) - MAX_NAMES_IN_NOTE} more"
