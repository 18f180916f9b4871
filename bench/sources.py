"""Fetch a dataset from its declared source into the canonical cache layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.config import DatasetSpec
from bench.data import DataError


@dataclass
class CanonicalFile:
    """A dataset stored as Parquet with the target last and named `target`."""

    path: Path
    source: str
    sha256: str
    notes: list[str] = field(default_factory=list)


def fetch_canonical(spec: DatasetSpec, cache_dir: Path) -> CanonicalFile:
    """Return the canonical file of `spec`, fetching it into `cache_dir` when needed."""
    raise DataError(
        f"dataset {spec.name!r} ({spec.describe_source()}) is not in the data directory; "
        f"pass --data-dir DIR holding {spec.name}.parquet"
    )
