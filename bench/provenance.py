"""Provenance of a benchmark execution: code version, packages, machine and time."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import bench

PACKAGES = ("torch", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "openml", "dask", "distributed")
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def git_state(root: Path = REPOSITORY_ROOT) -> dict:
    """Return the git commit and dirty flag of the source tree, or unknown outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return {"git_commit": commit, "git_dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(settings: dict) -> tuple[str, dict]:
    """Return (id, content) of the provenance of this execution with its settings."""
    content = {
        "occam_bench_version": bench.__version__,
        **git_state(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "n_cpus": os.cpu_count(),
        },
        "settings": settings,
        "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return digest, content
