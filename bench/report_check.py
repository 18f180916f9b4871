"""Compare two report folders: the same tables, datasets and models, numbers aside."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

LEADERBOARD_CSV = "leaderboards.csv"


def report_contents(reports_dir: Path) -> dict[str, set[str]]:
    """Return the table identifiers, datasets and models that a report folder contains."""
    leaderboard = reports_dir / LEADERBOARD_CSV
    if not leaderboard.is_file():
        raise FileNotFoundError(f"{leaderboard} not found; is {reports_dir} a reports folder?")
    tables: set[str] = set()
    for path in sorted(reports_dir.glob("*.csv")):
        frame = pd.read_csv(path, usecols=lambda column: column == "table_id")
        if "table_id" in frame.columns:
            tables.update(frame["table_id"].dropna().astype(str))
    board = pd.read_csv(leaderboard, usecols=["dataset", "model"])
    return {
        "tables": tables,
        "datasets": set(board["dataset"].astype(str)),
        "models": set(board["model"].astype(str)),
    }


def compare_reports(committed: Path, regenerated: Path) -> list[str]:
    """Return one line per table, dataset or model found in only one of the two folders."""
    expected, found = report_contents(committed), report_contents(regenerated)
    differences = []
    for kind in ("tables", "datasets", "models"):
        missing = sorted(expected[kind] - found[kind])
        extra = sorted(found[kind] - expected[kind])
        if missing:
            differences.append(f"{kind} in {committed} but not in {regenerated}: {', '.join(missing)}")
        if extra:
            differences.append(f"{kind} in {regenerated} but not in {committed}: {', '.join(extra)}")
    return differences
