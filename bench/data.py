"""Load a dataset into features and target, in the canonical layout of the data pack."""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
import yaml

from bench.config import DatasetSpec, TaskType

logger = logging.getLogger(__name__)

TARGET = "target"
DATA_DIR_ENV = "OCCAM_DATA_DIR"
CACHE_DIR_ENV = "OCCAM_CACHE_DIR"
# Folders of a data directory searched for `<name>.parquet`, in order.
DATA_DIR_FOLDERS = ("", "tabular", "omics")
# Text cells read as missing in CSV, TSV and text columns of other formats. "unknown" is
# included so that a numeric column with "unknown" cells stays numeric.
MISSING_TOKENS = frozenset({"", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "none", "unknown"})
# Text values of a boolean column, compared in lower case. Such a column becomes the
# categories "False" and "True", so a bool-looking class label stays a label.
TRUE_TOKENS = frozenset({"true", "yes", "t", "y", "1"})
FALSE_TOKENS = frozenset({"false", "no", "f", "n", "0"})
# Features per sample from which a dataset is noted as p >> n.
WIDE_FEATURES_PER_SAMPLE = 10
SAFE_STEM_MAX_CHARS = 80
# Distinct integer-like text labels above which a target with a few text values is taken as
# numeric and rejected unless its task is declared.
MAX_INTEGER_LABELS = 10
# Largest share of rows that may be dropped as the only sample of their class. The data pack's
# largest share is 2 % (audiology); a larger one suggests a continuous target.
MAX_SINGLETON_FRACTION = 0.1


class DataError(ValueError):
    """Raised when a dataset cannot be loaded or is unusable; the message names the dataset."""


class DataWarning(UserWarning):
    """Warned when a dataset loads but the user should check it (a rebuilt cache, a deactivated dataset)."""


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


def resolve_data_dir(path: Path | None) -> Path | None:
    """Return the data directory: `path`, else $OCCAM_DATA_DIR, else None.

    Raises ValueError when the folder does not exist.
    """
    if path is None and os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    if path is None:
        return None
    if not path.is_dir():
        raise ValueError(f"data directory not found: {path}; pass --data-dir DIR or set {DATA_DIR_ENV}")
    return path.resolve()


def safe_file_stem(name: str) -> str:
    """Return a file name stem for a dataset name that may hold any character.

    Letters, digits, `.`, `_` and `-` are kept. Any other name is rewritten and gets
    8 hex digits of its sha256, so two names never share a file.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")[:SAFE_STEM_MAX_CHARS]
    if stem == name and stem:
        return stem
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{stem or 'dataset'}-{digest}"


def find_in_data_dir(name: str, data_dir: Path | None, openml_id: int | None = None) -> Path | None:
    """Return the data directory's Parquet file of a dataset, or None when it has none.

    The file is `<data_dir>/[tabular|omics/]<stem>.parquet`, `stem` from `safe_file_stem`,
    or else the file that the directory's MANIFEST.yaml lists for `openml_id`.
    """
    if data_dir is None:
        return None
    stem = safe_file_stem(name)
    for folder in DATA_DIR_FOLDERS:
        candidate = data_dir / folder / f"{stem}.parquet"
        if candidate.is_file():
            return candidate
    listed = manifest_openml_files(data_dir).get(openml_id)
    if listed is not None and listed[1].is_file():
        return listed[1]
    return None


@functools.lru_cache(maxsize=16)
def read_manifest(data_dir: Path) -> tuple[dict, ...]:
    """Return the entries of `<data_dir>/MANIFEST.yaml`, or none when the folder has no manifest.

    The data pack lists each file there with its name, task and, for a copy of an OpenML
    dataset, that dataset's id.
    """
    manifest = data_dir / "MANIFEST.yaml"
    if not manifest.is_file():
        return ()
    try:
        entries = yaml.safe_load(manifest.read_text(encoding="utf-8"))["datasets"]
        return tuple(dict(entry) for entry in entries)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        logger.warning("data directory manifest %s is unreadable (%s: %s); files are found by name only",
                       manifest, type(error).__name__, error)
        return ()


def manifest_openml_files(data_dir: Path) -> dict[int, tuple[str, Path]]:
    """Return `{openml_id: (name, path)}` for the files that the data directory's manifest ties to OpenML."""
    return {
        int(entry["openml_id"]): (str(entry["name"]), data_dir / str(entry["file"]))
        for entry in read_manifest(data_dir)
        if entry.get("openml_id") is not None and "name" in entry and "file" in entry
    }


def manifest_task(data_dir: Path, located: Path) -> TaskType | None:
    """Return the task that the data directory's manifest declares for the file `located`, if any."""
    for entry in read_manifest(data_dir):
        if data_dir / str(entry.get("file")) == located and entry.get("task") in {t.value for t in TaskType}:
            return TaskType(entry["task"])
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
        names = pyarrow.parquet.read_schema(path).names
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a valid Parquet file ({error}); replace or delete it") from error
    _check_unique_columns(names, str(path))
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a valid Parquet file ({error}); replace or delete it") from error


def read_table(path: Path, reader: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read a Parquet, CSV, TSV or ARFF file into one type per column, with notes on the rules used."""
    if not path.is_file():
        raise DataError(f"file not found: {path}; check the `file:` of the dataset's entry")
    kind = reader or _reader_for(path)
    if kind == "parquet":
        frame = read_parquet(path)
    elif kind in ("csv", "tsv"):
        frame = _read_text_table(path, "\t" if kind == "tsv" else ",")
    elif kind == "arff":
        frame = _read_arff(path)
    else:
        raise DataError(f"{path}: no reader for this file; set `reader:` to one of parquet, csv, tsv, arff")
    return coerce_columns(frame, where=str(path))


def _reader_for(path: Path) -> str | None:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".gz", ".bz2", ".xz", ".zip"):
            continue
        return {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv",
                ".arff": "arff", ".rdata": "rdata", ".rda": "rdata"}.get(suffix)
    return None


def _read_text_table(path: Path, separator: str) -> pd.DataFrame:
    # The header is read separately, because pandas renames a duplicate `a` to `a.1`.
    # NOTE: compressed text files skip this check, so their duplicate names arrive renamed.
    header = None
    if path.suffix.lower() not in (".gz", ".bz2", ".xz", ".zip"):
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle, delimiter=separator), [])
        _check_unique_columns(header, str(path))
    file_kind = "CSV" if separator == "," else "TSV"
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: not a valid {file_kind} file ({error})") from error
    if header is not None and len(header) == frame.shape[1]:
        frame.columns = header
    return frame


def _read_arff(path: Path) -> pd.DataFrame:
    import arff  # liac-arff

    try:
        with open(path, encoding="utf-8") as handle:
            content = arff.load(handle)
    except (arff.ArffException, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a valid ARFF file ({error})") from error
    names = [name for name, _ in content["attributes"]]
    _check_unique_columns(names, str(path))
    frame = pd.DataFrame(content["data"], columns=names)
    for name, kind in content["attributes"]:
        if isinstance(kind, list):
            frame[name] = pd.Categorical(frame[name], categories=[str(value) for value in kind])
        elif str(kind).upper() in ("NUMERIC", "REAL", "INTEGER"):
            frame[name] = pd.to_numeric(frame[name], errors="raise").astype(float)
    return frame


def _check_unique_columns(names: list, where: str) -> None:
    seen: set[str] = set()
    duplicated = sorted({str(name) for name in names if str(name) in seen or seen.add(str(name))})
    if duplicated:
        raise DataError(f"{where}: duplicate column names {duplicated}; rename them in the source")


def coerce_columns(frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Give each text or mixed-type column exactly one type, decided on the whole column.

    The rule, in order:
    1. Cells in MISSING_TOKENS become missing.
    2. A column whose other cells all parse as numbers becomes int64 when it has no
       missing cell and only integers, else float64.
    3. A column of boolean words (true/false, yes/no, with 1/0 allowed) becomes the
       categories "False" and "True".
    4. Any other column becomes a categorical of strings.
    """
    notes: list[str] = []
    frame = frame.copy()
    frame.columns = _clean_column_names(list(frame.columns), where, notes)
    for position, name in enumerate(frame.columns):
        column = frame.iloc[:, position]
        if not (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
            continue
        converted, rule = _coerce_text_column(column)
        frame[name] = converted
        if rule:
            notes.append(f"column {name!r}: {rule}")
    return frame, notes


def _clean_column_names(names: list, where: str, notes: list[str]) -> list[str]:
    # A column name is only a label: it is never used in a file path, so any text is
    # allowed, but it must be non-empty so that notes and errors can name it.
    cleaned = []
    for position, name in enumerate(names):
        text = "" if name is None else str(name)
        if not text.strip() or text.startswith("Unnamed: "):
            text = f"column_{position}"
            notes.append(f"column {position} has an empty name; named {text!r}")
        cleaned.append(text)
    _check_unique_columns(cleaned, where)
    return cleaned


def _coerce_text_column(column: pd.Series) -> tuple[pd.Series, str | None]:
    text = column.map(lambda value: None if _is_missing(value) else str(value).strip())
    missing_tokens = sorted({str(v).strip() for v in column[text.isna() & column.notna()]})
    present = text.dropna()
    rule_missing = f"; {missing_tokens} read as missing" if missing_tokens else ""

    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().all():
        values = pd.to_numeric(text, errors="coerce")
        if not values.isna().any() and np.all(np.mod(values.to_numpy(dtype=float), 1) == 0):
            return values.astype("int64"), (f"integers{rule_missing}" if rule_missing else None)
        return values.astype("float64"), (f"numbers{rule_missing}" if rule_missing else None)

    lowered = set(present.str.lower())
    has_word = bool(lowered & {"true", "false", "yes", "no", "t", "f", "y", "n"})
    if present.size and has_word and lowered <= TRUE_TOKENS | FALSE_TOKENS:
        labels = text.map(_boolean_label)
        mixed = sorted(set(present))
        rule = f"boolean words {mixed} read as categories 'False'/'True'{rule_missing}"
        return pd.Series(pd.Categorical(labels, categories=["False", "True"]), index=column.index), rule

    categories = sorted(set(present))
    converted = pd.Series(pd.Categorical(text, categories=categories), index=column.index)
    mixed_types = {type(v).__name__ for v in column.dropna() if not _is_missing(v)}
    if len(mixed_types) > 1:
        return converted, f"values of types {sorted(mixed_types)} read as text categories{rule_missing}"
    return converted, (f"categories{rule_missing}" if rule_missing else None)


def _boolean_label(value: str | None) -> str | None:
    if value is None:
        return None
    return "True" if value.lower() in TRUE_TOKENS else "False"


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in MISSING_TOKENS


def load_dataset(spec: DatasetSpec, data_dir: Path | None = None, cache_dir: Path | None = None) -> Dataset:
    """Load one dataset: from the data directory, else the cache, else its declared source."""
    from bench import sources  # imported here: it pulls in the openml client

    located = find_in_data_dir(spec.name, data_dir, spec.openml_id)
    if located is not None:
        frame = read_parquet(located)
        # The path is given inside the data directory, so reports do not name a folder of one machine.
        source = f"{spec.describe_source()} (read from the data directory: {located.relative_to(data_dir).as_posix()})"
        notes = []
        declared = manifest_task(data_dir, located) if spec.task is None else None
        if declared is not None:
            spec = dataclasses.replace(spec, task=declared)
            notes.append(f"task {declared.value} as declared in {data_dir.name}/MANIFEST.yaml")
        return prepare_dataset(spec, frame, target=TARGET, source=source, sha256=file_sha256(located), notes=notes)

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
            f"{list(frame.columns)[:10]}{' ...' if frame.shape[1] > 10 else ''}; set `target:` in {spec.entry_text}"
        )
    if frame.shape[0] == 0:
        raise DataError(f"dataset {name!r}: the table read from {source} has no rows; check or replace that file")

    ignored = [column for column in spec.ignore if column in frame.columns]
    missing_ignored = [column for column in spec.ignore if column not in frame.columns]
    if missing_ignored:
        raise DataError(f"dataset {name!r}: `ignore:` names unknown column(s) {missing_ignored}")
    if ignored:
        notes.append(f"ignored columns: {ignored}")

    y = frame[target]
    X = frame.drop(columns=[target, *ignored])
    X, column_notes = _check_features(name, X)
    notes.extend(column_notes)

    missing_target = int(y.isna().sum())
    if missing_target:
        keep = y.notna().to_numpy()
        X, y = X.loc[keep], y.loc[keep]
        notes.append(f"dropped {missing_target} rows with a missing target")
        logger.warning("dataset %s: dropped %d rows with a missing target", name, missing_target)
    source_rows = y.index.to_numpy()
    X = X.reset_index(drop=True)
    y = y.reset_index(drop=True)

    task, rule = resolve_task(name, y, spec.task, entry=spec.entry_text)
    if rule:
        notes.append(rule)
    if task.is_classification:
        return _classification_dataset(spec, X, y, task, source, sha256, notes)
    values = pd.to_numeric(y, errors="coerce")
    bad = y[values.isna() | ~np.isfinite(values.to_numpy(dtype=float))]
    if len(bad):
        raise DataError(
            f"dataset {name!r}: regression target has {len(bad)} non-numeric or infinite value(s), for example "
            f"{bad.iloc[0]!r} in data row {source_rows[bad.index[0]] + 1}; fix them in the source, or declare "
            f"`task: binary` or `task: multiclass` if the target holds class labels"
        )
    y = values
    return Dataset(name, X, y.astype(float), task, spec.domain, source, sha256, notes=notes)


def _check_features(name: str, X: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop all-missing feature columns and note constant ones, missing cells and p >> n."""
    notes: list[str] = []
    all_missing = [column for column in X.columns if X[column].isna().all()]
    if all_missing:
        X = X.drop(columns=all_missing)
        notes.append(f"dropped {len(all_missing)} all-missing feature column(s): {_first_names(all_missing)}")
    if X.shape[1] == 0:
        raise DataError(f"dataset {name!r}: no usable feature columns besides the target")

    constant = [column for column in X.columns if X[column].nunique(dropna=True) <= 1]
    if constant:
        # Kept: the preprocessing scales a zero standard deviation as 1, so they become 0.
        notes.append(f"{len(constant)} constant feature column(s), kept: {_first_names(constant)}")
    missing_per_column = X.isna().sum()
    missing_per_column = missing_per_column[missing_per_column > 0]
    if len(missing_per_column):
        counts = {str(column): int(count) for column, count in missing_per_column.items()}
        notes.append(f"{int(missing_per_column.sum())} missing feature cells (counted in the data): "
                     f"{dict(list(counts.items())[:5])}")
    n_samples, n_features = X.shape
    if n_features >= WIDE_FEATURES_PER_SAMPLE * n_samples:
        notes.append(f"p >> n: {n_features} features for {n_samples} samples")
    return X, notes


def _first_names(names: list, limit: int = 5) -> str:
    shown = [str(name) for name in names[:limit]]
    return f"{shown}" + (f" and {len(names) - limit} more" if len(names) > limit else "")


def resolve_task(name: str, y: pd.Series, declared: TaskType | None,
                 entry: str = "its entry in datasets.yaml") -> tuple[TaskType, str | None]:
    """Return the task type and the rule used when it was not declared."""
    n_distinct = int(y.nunique(dropna=True))
    if declared is not None:
        if declared is TaskType.BINARY and n_distinct > 2:
            raise DataError(f"dataset {name!r}: task is binary but the target has {n_distinct} distinct values")
        return declared, None

    is_label_dtype = isinstance(y.dtype, pd.CategoricalDtype) or y.dtype == bool or y.dtype == object
    is_label_dtype = is_label_dtype or pd.api.types.is_string_dtype(y.dtype)
    if is_label_dtype:
        _check_not_numeric_text(name, y)
        task = TaskType.BINARY if n_distinct == 2 else TaskType.MULTICLASS
        return task, f"task inferred as {task.value}: the target holds labels ({n_distinct} distinct)"
    if pd.api.types.is_float_dtype(y.dtype):
        values = y.dropna().to_numpy()
        if not np.all(np.equal(np.mod(values, 1), 0)):
            return TaskType.REGRESSION, "task inferred as regression: the target holds non-integer numbers"
    raise DataError(
        f"dataset {name!r}: integer target with {n_distinct} distinct values: declare the task type "
        f"(`task: binary`, `multiclass` or `regression` in {entry})"
    )


def _check_not_numeric_text(name: str, y: pd.Series) -> None:
    """Raise DataError when text labels are mostly numbers with fractions, or many integers.

    Such a target is usually a regression target with a few text cells, so it is not taken as class labels.
    """
    distinct = pd.Series(sorted({str(value) for value in y.dropna()}), dtype=object)
    decimal_commas = distinct[distinct.str.fullmatch(r"[-+]?\d+,\d+")]
    if len(decimal_commas) >= len(distinct) / 2:
        raise DataError(
            f"dataset {name!r}: the target holds numbers with decimal commas such as {list(decimal_commas[:3])}; "
            f"write them with decimal points and declare `task: regression`, or declare `task: multiclass` "
            f"if the values are class labels"
        )
    numbers = pd.to_numeric(distinct, errors="coerce")
    n_numbers = int(numbers.notna().sum())
    if n_numbers == len(distinct) or n_numbers < len(distinct) / 2:
        return
    has_fraction = bool((numbers.dropna() % 1 != 0).any())
    if not has_fraction and n_numbers <= MAX_INTEGER_LABELS:
        return
    text = list(distinct[numbers.isna()])
    raise DataError(
        f"dataset {name!r}: the target looks numeric ({n_numbers} of {len(distinct)} distinct values are numbers) "
        f"but holds text such as {text[:3]}; fix those values and declare `task: regression`, or declare "
        f"`task: multiclass` if the values are class labels"
    )


def _classification_dataset(spec, X, y, task, source, sha256, notes) -> Dataset:
    name = spec.name
    # Plain text labels, so that declared categories without a sample are not counted as classes.
    labels = pd.Series([_label_text(value) for value in y], dtype=object)
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(f"dataset {name!r}: the target has a single class {list(counts.index)}; nothing to classify")

    # A class with one sample can never be in the train and the test part of
    # the same split, so it is dropped and the drop is recorded.
    singletons = sorted(counts.index[counts < 2])
    if len(singletons) > MAX_SINGLETON_FRACTION * len(labels):
        raise DataError(
            f"dataset {name!r}: {len(singletons)} of {len(labels)} rows are the only sample of their class, "
            f"so the target looks continuous or too finely split; declare `task: regression` if it holds "
            f"numbers, or merge the rare classes"
        )
    if singletons:
        keep = ~labels.isin(singletons).to_numpy()
        X, labels = X.loc[keep].reset_index(drop=True), labels.loc[keep].reset_index(drop=True)
        message = (f"dropped class(es) {singletons} with 1 sample each: a class needs 2 samples to be in "
                   f"the train and the test part of a split")
        notes.append(message)
        logger.warning("dataset %s: %s", name, message)
        counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(f"dataset {name!r}: fewer than 2 classes with at least 2 samples")
    if task is TaskType.BINARY and len(counts) != 2:
        raise DataError(f"dataset {name!r}: task is binary but {len(counts)} classes remain")
    if task is TaskType.MULTICLASS and len(counts) == 2:
        notes.append("multiclass task with 2 classes left: scored as binary")
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
