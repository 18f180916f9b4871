"""Load a dataset into features and target, in the canonical layout of the data pack."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from bench.config import DatasetSpec, TaskType

logger = logging.getLogger(__name__)

TARGET = "target"
DATA_DIR_ENV = "OCCAM_DATA_DIR"
CACHE_DIR_ENV = "OCCAM_CACHE_DIR"
# Folders of a data directory searched for `<name>.parquet`, in order.
DATA_DIR_FOLDERS = ("", "tabular", "omics")


class DataError(ValueError):
    """Raised when a dataset cannot be loaded or is unusable; the message names the dataset."""


@dataclass
class Dataset:
    """Features and target of one dataset, with what was done to them on load."""

    name: str
    X: pd.DataFrame
    y: pd.Series
    task: TaskType
    domain: str
    source: str
    sha256: str
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def default_cache_dir() -> Path:
    """Return the cache folder: $OCCAM_CACHE_DIR, else ~/.cache/occam-bench."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "occam-bench"


def find_in_data_dir(name: str, data_dir: Path | None) -> Path | None:
    """Return `<data_dir>/[tabular|omics/]<name>.parquet` if one exists."""
    if data_dir is None:
        return None
    for folder in DATA_DIR_FOLDERS:
        candidate = data_dir / folder / f"{name}.parquet"
        if candidate.is_file():
            return candidate
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file, raising DataError for an empty or corrupt one."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: not a valid Parquet file (the file is empty); replace or delete it")
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a valid Parquet file ({error}); replace or delete it") from error


def load_dataset(spec: DatasetSpec, data_dir: Path | None = None, cache_dir: Path | None = None) -> Dataset:
    """Load one dataset: from the data directory, else the cache, else its declared source."""
    from bench import sources  # imported here: it pulls in the openml client

    located = find_in_data_dir(spec.name, data_dir)
    if located is not None:
        frame = read_parquet(located)
        source = f"{spec.describe_source()} (read from {located})"
        return prepare_dataset(spec, frame, target=TARGET, source=source, sha256=file_sha256(located))

    canonical = sources.fetch_canonical(spec, cache_dir or default_cache_dir())
    frame = read_parquet(canonical.path)
    return prepare_dataset(
        spec, frame, target=TARGET, source=canonical.source, sha256=canonical.sha256, notes=canonical.notes
    )


def prepare_dataset(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    target: str,
    source: str,
    sha256: str,
    notes: list[str] | None = None,
) -> Dataset:
    """Split a table into features and target, check it and fix the task type."""
    notes = list(notes or [])
    name = spec.name
    if frame.columns.duplicated().any():
        duplicated = sorted(set(frame.columns[frame.columns.duplicated()].astype(str)))
        raise DataError(f"dataset {name!r}: duplicate column names {duplicated}; rename them in the source")
    if target not in frame.columns:
        raise DataError(
            f"dataset {name!r}: target column {target!r} not found; columns are "
            f"{list(frame.columns)[:10]}{' ...' if frame.shape[1] > 10 else ''}; set `target:` in datasets.yaml"
        )
    if frame.shape[0] == 0:
        raise DataError(f"dataset {name!r}: the table has no rows")

    ignored = [column for column in spec.ignore if column in frame.columns]
    missing_ignored = [column for column in spec.ignore if column not in frame.columns]
    if missing_ignored:
        raise DataError(f"dataset {name!r}: `ignore:` names unknown column(s) {missing_ignored}")
    if ignored:
        notes.append(f"ignored columns: {ignored}")

    y = frame[target]
    X = frame.drop(columns=[target, *ignored])
    if X.shape[1] == 0:
        raise DataError(f"dataset {name!r}: no feature columns besides the target {target!r}")

    missing_target = int(y.isna().sum())
    if missing_target:
        keep = y.notna().to_numpy()
        X, y = X.loc[keep], y.loc[keep]
        notes.append(f"dropped {missing_target} rows with a missing target")
        logger.warning("dataset %s: dropped %d rows with a missing target", name, missing_target)
    X = X.reset_index(drop=True)
    y = y.reset_index(drop=True)

    task, rule = resolve_task(name, y, spec.task)
    if rule:
        notes.append(rule)
    if task.is_classification:
        return _classification_dataset(spec, X, y, task, source, sha256, notes)
    y = pd.to_numeric(y, errors="coerce")
    if y.isna().any() or not np.isfinite(y.to_numpy(dtype=float)).all():
        raise DataError(f"dataset {name!r}: regression target has non-numeric or infinite values")
    return Dataset(name, X, y.astype(float), task, spec.domain, source, sha256, notes=notes)


def resolve_task(name: str, y: pd.Series, declared: TaskType | None) -> tuple[TaskType, str | None]:
    """Return the task type and the rule used when it was not declared."""
    n_distinct = int(y.nunique(dropna=True))
    if declared is not None:
        if declared is TaskType.BINARY and n_distinct > 2:
            raise DataError(f"dataset {name!r}: task is binary but the target has {n_distinct} distinct values")
        return declared, None

    is_label_dtype = isinstance(y.dtype, pd.CategoricalDtype) or y.dtype == bool or y.dtype == object
    is_label_dtype = is_label_dtype or pd.api.types.is_string_dtype(y.dtype)
    if is_label_dtype:
        task = TaskType.BINARY if n_distinct == 2 else TaskType.MULTICLASS
        return task, f"task inferred as {task.value}: the target holds labels ({n_distinct} distinct)"
    if pd.api.types.is_float_dtype(y.dtype):
        values = y.dropna().to_numpy()
        if not np.all(np.equal(np.mod(values, 1), 0)):
            return TaskType.REGRESSION, "task inferred as regression: the target holds non-integer numbers"
    raise DataError(
        f"dataset {name!r}: integer target with {n_distinct} distinct values: declare the task type "
        f"(`task: binary`, `multiclass` or `regression` in datasets.yaml)"
    )


def _classification_dataset(spec, X, y, task, source, sha256, notes) -> Dataset:
    name = spec.name
    labels = y.map(_label_text)
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(f"dataset {name!r}: the target has a single class {list(counts.index)}; nothing to classify")

    # A class with one sample can never be in the train and the test part of
    # the same split, so it is dropped and the drop is recorded.
    singletons = sorted(counts.index[counts < 2])
    if singletons:
        keep = ~labels.isin(singletons).to_numpy()
        X, labels = X.loc[keep].reset_index(drop=True), labels.loc[keep].reset_index(drop=True)
        notes.append(f"dropped class(es) {singletons} with 1 sample each: a class needs 2 samples to be trained and tested")
        counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(f"dataset {name!r}: fewer than 2 classes with at least 2 samples")
    if task is TaskType.BINARY and len(counts) != 2:
        raise DataError(f"dataset {name!r}: task is binary but {len(counts)} classes remain")
    if task is TaskType.MULTICLASS and len(counts) == 2:
        notes.append("declared multiclass with 2 classes: scored as binary")
        task = TaskType.BINARY

    classes = tuple(sorted(counts.index))
    positive = classes[1] if task is TaskType.BINARY else None
    if positive is not None:
        notes.append(f"positive class: {positive!r} (the second label in sorted order)")
    y_out = pd.Series(pd.Categorical(labels, categories=list(classes)), name=TARGET)
    return Dataset(name, X, y_out, task, spec.domain, source, sha256, classes, positive, notes)


def _label_text(value) -> str:
    """Return a class label as text: bools as True/False, integral floats without `.0`."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
