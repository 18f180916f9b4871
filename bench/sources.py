"""Fetch a dataset from its declared source into the canonical cache layout.

The cache has the layout of the data pack: `<cache>/<domain>/<stem>.parquet`, the
target last and named `target`, plus `<stem>.json` with where the table came from.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet

from bench.config import DatasetSpec
from bench.data import (
    TARGET,
    DataError,
    DataWarning,
    coerce_columns,
    file_sha256,
    read_table,
    safe_file_stem,
)

logger = logging.getLogger(__name__)

METADATA_FORMAT_VERSION = 1
DOWNLOAD_TIMEOUT_S = 60

# Action taken for an OpenML dataset of each status. The status is recorded with the
# dataset, and a status not listed here is rejected.
OPENML_STATUS_RULE = {
    "active": "load",
    "deactivated": "load with a warning",
    "in_preparation": "reject",
}


@dataclass
class CanonicalFile:
    """A dataset stored as Parquet with the target last and named `target`."""

    path: Path
    source: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def cache_paths(spec: DatasetSpec, cache_dir: Path) -> tuple[Path, Path]:
    """Return the Parquet and metadata paths of `spec` in the cache; the name is never used raw."""
    folder = cache_dir / spec.domain
    stem = safe_file_stem(spec.name)
    return folder / f"{stem}.parquet", folder / f"{stem}.json"


def fetch_canonical(spec: DatasetSpec, cache_dir: Path) -> CanonicalFile:
    """Return the canonical file of `spec`, fetching it into `cache_dir` when needed.

    A cache file that is empty, truncated or does not match its recorded sha256 is
    removed with a warning and built again once. A failed fetch leaves the cache as it was.
    """
    path, metadata_path = cache_paths(spec, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _exclusive_lock(path.with_name(f".{path.stem}.lock"))
        lock.__enter__()
    except OSError as error:
        # A read-only cache still serves files that are valid and current.
        if _cache_problem(path, metadata_path) is None and _stale_reason(spec, metadata_path) is None:
            return _cached_file(path, metadata_path)
        raise DataError(
            f"dataset {spec.name!r}: cache folder {path.parent} is not writable ({error}); "
            f"pass --cache-dir DIR with a writable folder"
        ) from error

    # Workers of one benchmark load the same dataset at the same time, so one of them
    # checks and builds the cache file while the others wait.
    try:
        return _fetch_locked(spec, path, metadata_path)
    finally:
        lock.__exit__(None, None, None)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path):
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_locked(spec: DatasetSpec, path: Path, metadata_path: Path) -> CanonicalFile:
    problem = _cache_problem(path, metadata_path)
    stale = _stale_reason(spec, metadata_path) if problem is None else None
    if problem is None and stale is None:
        return _cached_file(path, metadata_path)
    if problem is not None and problem != "absent":
        message = f"cache file {path} is invalid ({problem}); removed it and building it again"
        warnings.warn(message, DataWarning, stacklevel=4)
        logger.warning("dataset %s: %s", spec.name, message)
        path.unlink(missing_ok=True)
        metadata_path.unlink(missing_ok=True)
    if stale is not None:
        # The stale file stays until the new one replaces it, so a failed fetch loses nothing.
        logger.info("dataset %s: refreshing %s: %s", spec.name, path, stale)

    frame, metadata = build_canonical(spec)
    write_canonical(frame, metadata, path, metadata_path)
    problem = _cache_problem(path, metadata_path)
    if problem is not None:
        raise DataError(f"dataset {spec.name!r}: the cache file {path} is invalid right after writing it ({problem})")
    return _cached_file(path, metadata_path)


def _cache_problem(path: Path, metadata_path: Path) -> str | None:
    """Return why the cached file cannot be used, "absent" if there is none, or None if it is valid."""
    if not path.exists():
        return "absent"
    if path.stat().st_size == 0:
        return "the file is empty"
    try:
        pyarrow.parquet.read_metadata(path)
    except (pyarrow.ArrowInvalid, OSError) as error:
        return f"not a valid Parquet file: {error}"
    if not metadata_path.is_file():
        return f"its metadata file {metadata_path.name} is missing"
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return f"its metadata file is not valid JSON: {error}"
    if metadata.get("sha256") != file_sha256(path):
        return "its sha256 differs from the one recorded when it was written"
    return None


def _stale_reason(spec: DatasetSpec, metadata_path: Path) -> str | None:
    """Return why a valid cache file no longer matches the entry of `spec`, or None."""
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if metadata.get("source") != spec.source:
        return f"it was fetched from {metadata.get('source')}, but the entry now names {spec.source}"
    if spec.openml is not None and metadata.get("openml_request") != spec.openml:
        return f"it was fetched for OpenML {metadata.get('openml_request')!r}, the entry names {spec.openml!r}"
    if spec.version is not None and metadata.get("version") != spec.version:
        return f"it contains version {metadata.get('version')}, the entry names version {spec.version}"
    if spec.url is not None and metadata.get("url") != spec.url:
        return f"it was downloaded from {metadata.get('url')}, the entry names {spec.url}"
    # The target and the reader decide the table's content, so a change rebuilds the cache.
    if metadata.get("requested_target") != spec.target:
        return f"it was built for target {metadata.get('requested_target')!r}, the entry names {spec.target!r}"
    if metadata.get("requested_reader") != spec.reader:
        return f"it was read with reader {metadata.get('requested_reader')!r}, the entry names {spec.reader!r}"
    if spec.file is not None:
        source_path = _resolve_file(spec)
        cached_from = metadata.get("source_path")
        if cached_from is not None and cached_from != str(source_path.resolve()):
            return f"it was built from {cached_from}, the entry now names {source_path.resolve()}"
        if source_path.is_file() and metadata.get("source_sha256") != file_sha256(source_path):
            return f"the source file {source_path} changed since it was cached"
    return None


def _cached_file(path: Path, metadata_path: Path) -> CanonicalFile:
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    return CanonicalFile(path, metadata["source_text"], metadata["sha256"], list(metadata.get("notes", [])), metadata)


def write_canonical(frame: pd.DataFrame, metadata: dict[str, Any], path: Path, metadata_path: Path) -> None:
    """Write the table and its metadata through temporary files, so a killed process leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-", suffix=".parquet")
    os.close(handle)
    try:
        try:
            frame.to_parquet(temporary, index=False)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as error:
            raise DataError(f"dataset {metadata.get('name')!r}: cannot write the cache file {path}: {error}") from error
        metadata = {**metadata, "sha256": file_sha256(Path(temporary))}
        metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str), encoding="utf-8")
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def build_canonical(spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fetch and read the declared source of `spec` into the canonical table and its metadata."""
    builders: dict[str, Callable[[DatasetSpec], tuple[pd.DataFrame, dict[str, Any]]]] = {
        "openml": _build_from_openml,
        "file": _build_from_file,
        "url": _build_from_url,
    }
    if spec.source not in builders:
        raise DataError(
            f"dataset {spec.name!r} has no source (`openml:`, `file:` or `url:`) and is not in the data "
            f"directory; pass --data-dir DIR holding {safe_file_stem(spec.name)}.parquet or add a source"
        )
    frame, metadata = builders[spec.source](spec)
    metadata.update(
        format_version=METADATA_FORMAT_VERSION,
        name=spec.name,
        source=spec.source,
        requested_target=spec.target,
        requested_reader=spec.reader,
        feature_types={str(column): str(dtype) for column, dtype in frame.drop(columns=[TARGET]).dtypes.items()},
        table_sha256=table_sha256(frame),
    )
    metadata.setdefault("source_text", spec.describe_source())
    return frame, metadata


def canonical_frame(frame: pd.DataFrame, target: str | None, name: str,
                    entry: str = "its entry in datasets.yaml") -> pd.DataFrame:
    """Return `frame` with the target column last and named `target`."""
    if target is None:
        raise DataError(
            f"dataset {name!r}: no target declared and no column named {TARGET!r}; "
            f"set `target: COLUMN` in {entry} (columns: {list(map(str, frame.columns[:10]))})"
        )
    targets = [part.strip() for part in target.split(",") if part.strip()]
    if len(targets) > 1:
        raise DataError(f"dataset {name!r}: multiple targets declared ({len(targets)}); multi-target not supported")
    if target not in frame.columns:
        raise DataError(
            f"dataset {name!r}: target column {target!r} not found; columns are {list(map(str, frame.columns[:10]))}"
        )
    if target != TARGET and TARGET in frame.columns:
        raise DataError(
            f"dataset {name!r}: the feature column {TARGET!r} clashes with the canonical target name; "
            f"rename it in the source or list it under `ignore:`"
        )
    y = frame[target].rename(TARGET)
    return pd.concat([frame.drop(columns=[target]), y], axis=1)


def table_sha256(frame: pd.DataFrame) -> str:
    """Return a sha256 of a table's column names, dtypes and values, independent of the file format."""
    digest = hashlib.sha256()
    for column, dtype in frame.dtypes.items():
        digest.update(f"{column}\x1f{dtype}\x1e".encode("utf-8"))
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest.update(np.ascontiguousarray(row_hashes).tobytes())
    return digest.hexdigest()


# ---- file: sources ------------------------------------------------------------

def _resolve_file(spec: DatasetSpec) -> Path:
    path = Path(spec.file).expanduser()
    return path if path.is_absolute() else spec.config_dir / path


def _build_from_file(spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    path = _resolve_file(spec)
    if not path.is_file():
        raise DataError(f"dataset {spec.name!r}: file not found: {path}; check the `file:` of {spec.entry_text}")
    frame, notes = read_table(path, spec.reader)
    target = spec.target or (TARGET if TARGET in frame.columns else None)
    return canonical_frame(frame, target, spec.name, spec.entry_text), {
        "source_path": str(path.resolve()),
        "source_sha256": file_sha256(path),
        "original_target": target,
        "notes": notes,
        "status": "local file",
    }


# ---- url: sources -------------------------------------------------------------

def _build_from_url(spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    notes: list[str] = []
    suffix = "".join(Path(spec.url.split("?")[0]).suffixes[-2:]) or ".data"
    with tempfile.TemporaryDirectory(prefix="occam-download-") as folder:
        download = Path(folder) / f"download{suffix}"
        try:
            with urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                with open(download, "wb") as handle:
                    shutil.copyfileobj(response, handle)
        except (urllib.error.URLError, OSError) as error:
            raise DataError(
                f"dataset {spec.name!r}: download of {spec.url} failed ({error}); run `occam-bench datasets fetch` "
                f"where the network is reachable, or pass --data-dir DIR holding {safe_file_stem(spec.name)}.parquet"
            ) from error

        download_sha256 = file_sha256(download)
        if spec.sha256 is not None and download_sha256 != spec.sha256:
            raise DataError(
                f"dataset {spec.name!r}: sha256 of {spec.url} is {download_sha256}, the entry pins {spec.sha256}; "
                f"check the source and update `sha256:` only if the change is expected"
            )
        if spec.sha256 is None:
            # NOTE: without `sha256:` any download is accepted whose table matches
            # `table_sha256:`; the config rejects a `url:` entry that has neither.
            notes.append(f"download sha256 not pinned; the download had sha256 {download_sha256}")
            logger.warning("dataset %s: download sha256 not pinned; %s had sha256 %s",
                           spec.name, spec.url, download_sha256)

        reader = spec.reader or _reader_for_url(spec.url)
        if reader == "rdata":
            frame = read_rdata(download, spec.name)
            target = TARGET
        else:
            frame, read_notes = read_table(download, reader)
            notes.extend(read_notes)
            target = spec.target or (TARGET if TARGET in frame.columns else None)
    frame = canonical_frame(frame, target, spec.name, spec.entry_text)

    if spec.table_sha256 is not None and table_sha256(frame) != spec.table_sha256:
        raise DataError(
            f"dataset {spec.name!r}: the table read from {spec.url} has table sha256 {table_sha256(frame)}, "
            f"the entry pins {spec.table_sha256}; the source or the reader changed"
        )
    return frame, {"url": spec.url, "download_sha256": download_sha256, "original_target": target, "notes": notes,
                   "status": "downloaded"}


def _reader_for_url(url: str) -> str | None:
    from bench.data import _reader_for

    return _reader_for(Path(url.split("?")[0]))


def read_rdata(path: Path, name: str) -> pd.DataFrame:
    """Read an R data file that contains one list with `x` (samples by features) and `y` (class factor).

    This is the layout of the datamicroarray R package. Features become float32 columns
    named as in the file, or `g00000`, `g00001`, ... when the matrix has no column names.
    """
    # NOTE: tested on small files written by R 4.2 (gzip, bzip2 and xz; a matrix with and
    # without dimension names, and a data frame). Whether the datamicroarray files read back
    # to the pack's tables (their `table_sha256:`) is unverified, because those files could
    # not be downloaded here.
    import rdata

    try:
        objects = rdata.read_rda(path)
    except Exception as error:  # rdata raises several unrelated types for a damaged file
        raise DataError(f"dataset {name!r}: {path} is not a readable R data file ({type(error).__name__}: {error})") from error
    lists = [value for value in objects.values() if isinstance(value, dict) and {"x", "y"} <= set(value)]
    if len(lists) != 1:
        raise DataError(
            f"dataset {name!r}: expected one R list with elements `x` and `y` in {path}, found objects {sorted(objects)}"
        )
    x, y = lists[0]["x"], lists[0]["y"]

    if hasattr(x, "to_pandas"):
        x = x.to_pandas()
    if isinstance(x, pd.DataFrame):
        features = x.astype(np.float32)
        features.columns = [str(column) for column in features.columns]
    else:
        matrix = np.asarray(x, dtype=np.float32)
        features = pd.DataFrame(matrix, columns=[f"g{i:05d}" for i in range(matrix.shape[1])])
    features = features.reset_index(drop=True)
    labels = [str(value) for value in np.asarray(y)]
    if len(labels) != len(features):
        raise DataError(f"dataset {name!r}: `y` has {len(labels)} values but `x` has {len(features)} rows in {path}")
    features[TARGET] = pd.Categorical(labels, categories=sorted(set(labels)))
    return features


# ---- openml: sources ----------------------------------------------------------

def _build_from_openml(spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, Any]]:
    import openml

    dataset_id = spec.openml if isinstance(spec.openml, int) else _resolve_openml_name(spec.openml, spec.version, spec.name)
    dataset, description = _get_openml_dataset(dataset_id, spec.name)
    status = description.get("oml:status", "active")
    notes = [f"OpenML dataset {dataset_id} {dataset.name!r} version {dataset.version}, status {status}"]
    notes.extend(check_openml_status(dataset_id, status, spec.name))
    if spec.version is not None and int(dataset.version) != spec.version:
        raise DataError(
            f"dataset {spec.name!r}: OpenML id {dataset_id} is version {dataset.version} of {dataset.name!r}, "
            f"but the entry names version {spec.version}; fix `version:` or use the id of that version"
        )

    target = spec.target or dataset.default_target_attribute
    if not target:
        raise DataError(
            f"dataset {spec.name!r}: no target declared (OpenML dataset {dataset_id} has no default target); "
            f"set `target: COLUMN` in {spec.entry_text}"
        )
    try:
        frame, _, categorical, names = dataset.get_data(target=None, include_row_id=True, include_ignore_attribute=True)
    except (openml.exceptions.OpenMLServerError, OSError) as error:
        raise DataError(f"dataset {spec.name!r}: reading OpenML dataset {dataset_id} failed: {error}") from error

    dropped = []
    for attribute in [dataset.row_id_attribute, *(_as_list(dataset.ignore_attribute))]:
        if attribute and attribute in frame.columns and attribute != target:
            dropped.append(attribute)
    if dropped:
        frame = frame.drop(columns=dropped)
        notes.append(f"dropped OpenML row-id and ignore attribute(s): {dropped}")

    frame = _label_nominal_target(frame, target, dataset)
    frame, coerce_notes = coerce_columns(frame, where=f"OpenML dataset {dataset_id}")
    notes.extend(coerce_notes)
    frame = canonical_frame(frame, target, spec.name, spec.entry_text)
    notes.extend(_compare_missing_counts(dataset, frame, spec.name))
    return frame, {
        "openml_request": spec.openml,
        "openml_id": dataset_id,
        "openml_name": dataset.name,
        "version": int(dataset.version),
        "status": status,
        "original_target": target,
        "openml_feature_types": {feature.name: feature.data_type for feature in dataset.features.values()},
        "dropped_attributes": dropped,
        "notes": notes,
        "source_text": f"openml:{dataset_id}@v{dataset.version} ({dataset.name}, {status})",
    }


def check_openml_status(dataset_id: int | str, status: str, name: str) -> list[str]:
    """Apply OPENML_STATUS_RULE: return notes for a loadable status, raise DataError otherwise."""
    action = OPENML_STATUS_RULE.get(status)
    if action is None or action == "reject":
        raise DataError(
            f"dataset {name!r}: OpenML dataset {dataset_id} has status {status!r} and is not loaded "
            f"(loadable: active, deactivated); pick another version or id"
        )
    if action == "load with a warning":
        message = f"OpenML dataset {dataset_id} is {status}: its uploader or OpenML withdrew it; results may not be comparable"
        warnings.warn(f"dataset {name!r}: {message}", DataWarning, stacklevel=3)
        return [f"warning: {message}"]
    return []


def resolve_openml_version(catalogue: pd.DataFrame, name: str | None = None, dataset_id: int | None = None,
                           version: int | None = None) -> pd.Series:
    """Pick one row of an OpenML catalogue (columns name, version, dataset_id, status).

    An id is taken as given, and a name with a version takes that version. A name
    alone takes its lowest active version. openml-python 0.15.1 `get_dataset(name)`
    takes the lowest active id instead, which is the same version when ids grow with
    versions. `check_openml_status` then applies the status rule.
    """
    if dataset_id is not None:
        rows = catalogue[catalogue["dataset_id"] == dataset_id]
        if rows.empty:
            raise DataError(f"OpenML dataset id {dataset_id} not found in the catalogue")
        return rows.iloc[0]
    if name is None:
        raise DataError("an OpenML request needs a dataset id or a name")
    rows = catalogue[catalogue["name"] == name]
    if rows.empty:
        raise DataError(f"OpenML dataset name {name!r} not found in the catalogue")
    if version is not None:
        rows = rows[rows["version"] == version]
        if rows.empty:
            raise DataError(f"OpenML dataset {name!r} has no version {version}")
        return rows.iloc[0]
    active = rows[rows["status"] == "active"].sort_values("version")
    if active.empty:
        raise DataError(f"OpenML dataset {name!r} has no active version; name a version or an id")
    return active.iloc[0]


def _resolve_openml_name(name: str, version: int | None, dataset_name: str) -> int:
    """Return the OpenML id for a dataset name, by `resolve_openml_version` on the server's list."""
    import openml

    try:
        listed = openml.datasets.list_datasets(data_name=name, status="all", output_format="dataframe")
    except Exception as error:  # openml raises requests, urllib3 and server errors
        raise DataError(
            f"dataset {dataset_name!r}: listing the OpenML versions of {name!r} failed ({type(error).__name__}: "
            f"{str(error)[:300]}); name the dataset id in `openml:` to load it from the cache offline"
        ) from error
    if listed.empty:
        raise DataError(f"dataset {dataset_name!r}: OpenML dataset name {name!r} not found")
    catalogue = listed.rename(columns={"did": "dataset_id"})[["name", "version", "dataset_id", "status"]]
    row = resolve_openml_version(catalogue, name=name, version=version)
    logger.info("dataset %s: OpenML name %r resolved to id %d (version %d, %s)",
                dataset_name, name, row["dataset_id"], row["version"], row["status"])
    return int(row["dataset_id"])


def _get_openml_dataset(dataset_id: int, name: str):
    """Return the openml dataset and its parsed description, keeping the openml cache on failure.

    openml-python 0.15.1 deletes a dataset's cache folder when `get_dataset` fails,
    even a folder that held usable files before, so the folder is copied first and
    restored after a failure.
    """
    import openml

    folder = openml_cache_folder(dataset_id)
    with tempfile.TemporaryDirectory(prefix="occam-openml-") as backup_root:
        backup = Path(backup_root) / "backup"
        if folder.is_dir():
            shutil.copytree(folder, backup)
        try:
            dataset = openml.datasets.get_dataset(
                dataset_id, download_data=True, download_qualities=True, download_features_meta_data=True
            )
        except Exception as error:  # openml raises requests, urllib3, server and file errors
            if backup.is_dir() and not folder.is_dir():
                shutil.copytree(backup, folder)
            raise DataError(
                f"dataset {name!r}: fetching OpenML dataset {dataset_id} failed ({type(error).__name__}: "
                f"{str(error)[:300]}); the local caches were kept; run `occam-bench datasets fetch` where "
                f"{openml.config.server} is reachable, or pass --data-dir DIR"
            ) from error

    return dataset, read_openml_description(folder / "description.xml")


def openml_cache_folder(dataset_id: int) -> Path:
    """Return the openml client's cache folder of one dataset."""
    import openml

    return Path(openml.config.get_cache_directory()) / "datasets" / str(dataset_id)


def read_openml_description(path: Path) -> dict:
    """Return the fields of a cached OpenML `description.xml`, such as `oml:name` and `oml:status`."""
    import xmltodict

    return xmltodict.parse(path.read_text(encoding="utf-8"))["oml:data_set_description"]


def _label_nominal_target(frame: pd.DataFrame, target: str, dataset) -> pd.DataFrame:
    # openml-python turns a nominal {True, False} attribute into bool; a declared
    # nominal target is put back to its string labels here.
    feature = next((f for f in dataset.features.values() if f.name == target), None)
    if feature is None or feature.data_type != "nominal" or target not in frame.columns:
        return frame
    labels = frame[target].map(_nominal_label)
    declared = [str(value) for value in (feature.nominal_values or [])]
    categories = declared or sorted(set(labels.dropna()))
    frame = frame.copy()
    frame[target] = pd.Categorical(labels, categories=categories)
    return frame


def _nominal_label(value) -> str | None:
    if pd.isna(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    return str(value)


def _compare_missing_counts(dataset, frame: pd.DataFrame, name: str) -> list[str]:
    counted = int(frame.isna().sum().sum())
    try:
        declared = (dataset.qualities or {}).get("NumberOfMissingValues")
    except Exception:  # qualities may be absent in a partial cache
        declared = None
    if declared is None or np.isnan(declared) or int(declared) == counted:
        return []
    message = (f"OpenML metadata gives {int(declared)} missing values, but the data contains {counted}; "
               f"the count from the data is used")
    logger.warning("dataset %s: %s", name, message)
    return [message]


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
