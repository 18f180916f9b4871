"""Shared fixtures: the data pack, the fault cases and small synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
# The shared folder sits next to the main checkout, or two levels up from a worktree under wt/.
SHARED = next((path for path in (REPOSITORY_ROOT.parent / "shared", REPOSITORY_ROOT.parent.parent / "shared")
               if path.is_dir()), REPOSITORY_ROOT.parent / "shared")


def _data_pack() -> Path:
    configured = os.environ.get("OCCAM_DATA_DIR")
    return Path(configured) if configured else SHARED / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_pack()
    if not (path / "tabular").is_dir():
        pytest.fail(f"data pack not found at {path}; set OCCAM_DATA_DIR to the folder holding tabular/ and omics/")
    return path


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    path = SHARED / "cases"
    if not path.is_dir():
        pytest.fail(f"fault cases not found at {path}")
    return path
