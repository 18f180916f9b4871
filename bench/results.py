"""The results store: one row per run in an embedded SQLite database.

Rows are append-only, with exceptions made by the runner: --retry-failed replaces failed rows,
runs whose data failed to load are replaced on every execution, and a larger compute budget
replaces the rows of runs that an earlier budget skipped."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd

# Version 2 added `scaling`, the protocol's feature scaling flag.
SCHEMA_VERSION = 2
# Every column of the results table and its SQLite type.
COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY",
    "dataset": "TEXT NOT NULL",
    "model": "TEXT NOT NULL",
    "family": "TEXT",
    "repeat": "INTEGER NOT NULL",
    "fold": "INTEGER NOT NULL",
    "seed": "INTEGER",
    "split_seed": "INTEGER",
    "status": "TEXT NOT NULL",
    "error_kind": "TEXT",
    "error": "TEXT",
    "traceback": "TEXT",
    "task": "TEXT",
    "domain": "TEXT",
    "metric": "TEXT",
    "train_score": "REAL",
    "test_score": "REAL",
    "gap": "REAL",
    "scores": "TEXT",
    "score_nan_reasons": "TEXT",
    "n_parameters": "INTEGER",
    "n_effective_parameters": "REAL",
    "params_per_sample": "REAL",
    "parameter_detail": "TEXT",
    "n_train_samples": "INTEGER",
    "n_test_samples": "INTEGER",
    "n_features_in": "INTEGER",
    "n_classes": "INTEGER",
    "fit_time_s": "REAL",
    "predict_time_s": "REAL",
    "task_time_s": "REAL",
    "estimated_flops": "REAL",
    "n_warnings": "INTEGER",
    "warnings": "TEXT",
    "converged": "INTEGER",
    "notes": "TEXT",
    "model_config": "TEXT",
    "dataset_source": "TEXT",
    "dataset_sha256": "TEXT",
    "split_rule": "TEXT",
    "n_folds": "INTEGER",
    "n_repeats": "INTEGER",
    "protocol_seed": "INTEGER",
    "scaling": "INTEGER",
    "max_samples": "INTEGER",
    "compute_budget": "REAL",
    "device": "TEXT",
    "precision": "TEXT",
    "torch_version": "TEXT",
    "deterministic_algorithms": "INTEGER",
    "dataloader_workers": "INTEGER",
    "provenance_id": "TEXT",
    "created_utc": "TEXT",
}
# Columns that change from one execution to the next even with the same seed.
VOLATILE_COLUMNS = ("fit_time_s", "predict_time_s", "task_time_s", "created_utc", "provenance_id", "traceback")




def without_volatile(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the results without VOLATILE_COLUMNS, sorted by run id, for comparing two executions."""
    stable = frame.drop(columns=[name for name in VOLATILE_COLUMNS if name in frame.columns])
    return stable.sort_values("run_id").reset_index(drop=True)


class ResultsStore:
    """SQLite results file. Each run's row is written in its own transaction, so a killed
    benchmark keeps every finished run and no half-written one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path, timeout=60)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self._create()

    def _create(self) -> None:
        with self.connection:
            self.connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            found = self.connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is None:
                self.connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(found[0]) != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: results schema version {found[0]} differs from this occam-bench's "
                    f"{SCHEMA_VERSION}; use a new --results file or export the old one with an older version"
                )
            columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
            self.connection.execute(f"CREATE TABLE IF NOT EXISTS results ({columns})")
            self.connection.execute("CREATE TABLE IF NOT EXISTS provenance (id TEXT PRIMARY KEY, content TEXT)")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- Protocol -----------------------------------------------------------------

    def protocol(self) -> dict | None:
        """Return the protocol recorded for this results file, or None before the first run."""
        stored = self._stored_protocol()
        return stored if stored is not None else self._protocol_of_rows()

    def _stored_protocol(self) -> dict | None:
        stored = self.connection.execute("SELECT value FROM meta WHERE key='protocol'").fetchone()
        return json.loads(stored[0]) if stored is not None else None

    def bind_protocol(self, protocol: dict) -> None:
        """Record the protocol of this results file, or raise ProtocolMismatch if it differs.

        Run ids are (dataset, model, repeat, fold), so runs of two protocols in one file
        would be mixed up: a 3-fold fold 0 would count as a finished 5-fold fold 0.
        """
        recorded = self._stored_protocol()
        if recorded is None:
            recorded = self._protocol_of_rows()
            if recorded is not None and recorded != protocol:
                raise ProtocolMismatch(_mismatch_message(self.path, recorded, protocol))
            with self.connection:
                self.connection.execute("INSERT INTO meta VALUES ('protocol', ?)", (json.dumps(protocol, sort_keys=True),))
            return
        if recorded != protocol:
            raise ProtocolMismatch(_mismatch_message(self.path, recorded, protocol))

    def _protocol_of_rows(self) -> dict | None:
        rows = self.connection.execute(
            "SELECT DISTINCT n_folds, n_repeats, protocol_seed, scaling, max_samples FROM results").fetchall()
        if not rows:
            return None
        n_folds, n_repeats, seed, scaling, max_samples = rows[0]
        return {"n_folds": n_folds, "n_repeats": n_repeats, "seed": seed,
                "scaling": bool(scaling) if scaling is not None else True, "max_samples": max_samples}

    # ---- Writing ----------------------------------------------------------------

    def forget(self, where: str, parameters: tuple = (), among: set[str] | None = None) -> list[str]:
        """Delete the result rows matching an SQL condition, and among `among` when given; return their run ids."""
        with self.connection:
            run_ids = [row[0] for row in self.connection.execute(f"SELECT run_id FROM results WHERE {where}", parameters)]
            if among is not None:
                run_ids = [run_id for run_id in run_ids if run_id in among]
            self.connection.executemany("DELETE FROM results WHERE run_id = ?", [(run_id,) for run_id in run_ids])
        return run_ids

    def dataset_hashes(self) -> dict[str, set[str]]:
        """Return the dataset sha256 values stored per dataset."""
        hashes: dict[str, set[str]] = {}
        for dataset, sha256 in self.connection.execute(
                "SELECT DISTINCT dataset, dataset_sha256 FROM results WHERE dataset_sha256 IS NOT NULL"):
            hashes.setdefault(dataset, set()).add(sha256)
        return hashes

    def add(self, rows: list[dict]) -> int:
        """Insert result rows; a run id already present is kept and the new row ignored.

        Returns:
            The number of rows inserted.
        """
        names = list(COLUMNS)
        placeholders = ", ".join("?" for _ in names)
        quoted = ", ".join(f'"{name}"' for name in names)
        values = [tuple(_sql_value(row.get(name)) for name in names) for row in rows]
        with self.connection:
            before = self.connection.total_changes
            self.connection.executemany(f"INSERT OR IGNORE INTO results ({quoted}) VALUES ({placeholders})", values)
            return self.connection.total_changes - before

    def add_provenance(self, provenance_id: str, content: dict) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR IGNORE INTO provenance VALUES (?, ?)", (provenance_id, json.dumps(content, sort_keys=True))
            )

    # ---- Reading ----------------------------------------------------------------

    def finished_run_ids(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT run_id FROM results")}

    def openml_names(self) -> dict[int, str]:
        """Return `{OpenML id: dataset name}` for the datasets whose stored source is an OpenML id."""
        names = {}
        for dataset, source in self.connection.execute("SELECT DISTINCT dataset, dataset_source FROM results"):
            match = re.match(r"openml:(\d+)\b", source or "")
            if match:
                names[int(match.group(1))] = dataset
        return names

    def failed_run_ids(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT run_id FROM results WHERE status = 'failed'")}

    def frame(self) -> pd.DataFrame:
        """Return all results as a DataFrame, ordered by (dataset, model, repeat, fold).

        REAL columns are float64 even where every value is NULL, so two frames compare equal
        whatever subset of runs they hold.
        """
        frame = pd.read_sql_query("SELECT * FROM results ORDER BY dataset, model, repeat, fold", self.connection)
        for name, kind in COLUMNS.items():
            if kind == "REAL":
                frame[name] = frame[name].astype("float64")
        return frame

    def provenance(self) -> dict[str, dict]:
        return {key: json.loads(value) for key, value in self.connection.execute("SELECT id, content FROM provenance")}

    def export(self, path: str | Path) -> Path:
        """Write all results to a .csv or .parquet file, chosen by the suffix.

        The provenance records that the rows' `provenance_id` refers to go to a JSON file
        next to it, `<stem>.provenance.json`, so the export stays citable without the database.
        """
        path = Path(path)
        if path.suffix not in (".csv", ".parquet"):
            raise ValueError(f"export path {path} has suffix {path.suffix!r}; use a path ending in .csv or .parquet")
        frame = self.frame()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        provenance_path = path.with_suffix(".provenance.json")
        provenance_path.write_text(json.dumps(self.provenance(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


class ProtocolMismatch(ValueError):
    """Raised when a results file contains runs of another protocol than the one requested."""


def _mismatch_message(path: Path, recorded: dict, requested: dict) -> str:
    differences = ", ".join(f"{key}={recorded.get(key)!r} (requested {requested.get(key)!r})"
                            for key in sorted(set(recorded) | set(requested)) if recorded.get(key) != requested.get(key))
    return (f"{path} holds runs of another protocol: {differences}; use another --results file, "
            f"or the same --folds, --repeats, --seed, --max-samples and scaling options")


def _sql_value(value):
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
