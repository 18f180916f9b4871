"""Tests of the results store: versioned schema, append-only rows, resumable inserts and export."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from bench.results import COLUMNS, SCHEMA_VERSION, VOLATILE_COLUMNS, ResultsStore, without_volatile


def _row(run_id: str, test_score: float = 0.5, status: str = "ok") -> dict:
    dataset, model, repeat, fold = run_id.split("/")
    return {
        "run_id": run_id, "dataset": dataset, "model": model, "repeat": int(repeat[1:]), "fold": int(fold[1:]),
        "status": status, "train_score": 1.0, "test_score": test_score, "gap": 1.0 - test_score,
        "fit_time_s": 0.25, "created_utc": "2026-01-01T00:00:00Z",
    }


def test_results_store_records_schema_version(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        stored = store.connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(stored) == SCHEMA_VERSION


def test_results_store_other_schema_version_raises(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with pytest.raises(RuntimeError, match=rf"results schema version 1 differs from this occam-bench's "
                                           rf"{SCHEMA_VERSION}; use a new --results file"):
        ResultsStore(path)


def test_results_store_has_every_column(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add([_row("iris/constant/r0/f0")])
        frame = store.frame()
    assert list(frame.columns) == list(COLUMNS)


def test_results_store_rerun_keeps_first_row(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        n_first = store.add([_row("iris/constant/r0/f0", 0.5), _row("iris/constant/r0/f1", 0.6)])
        n_second = store.add([_row("iris/constant/r0/f0", 0.9), _row("iris/constant/r1/f0", 0.7)])
        frame = store.frame()

    assert n_first == 2
    assert n_second == 1
    assert sorted(frame["run_id"]) == ["iris/constant/r0/f0", "iris/constant/r0/f1", "iris/constant/r1/f0"]
    assert frame.set_index("run_id").loc["iris/constant/r0/f0", "test_score"] == 0.5


def test_results_store_persists_across_connections(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        store.add([_row("iris/constant/r0/f0")])
    with ResultsStore(path) as store:
        assert store.finished_run_ids() == {"iris/constant/r0/f0"}


def test_results_store_provenance_round_trip(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add_provenance("abc", {"git_commit": "123", "packages": {"numpy": "2.0"}})
        store.add_provenance("abc", {"git_commit": "other"})
        assert store.provenance() == {"abc": {"git_commit": "123", "packages": {"numpy": "2.0"}}}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_export_round_trip(tmp_path, suffix):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add([_row("iris/constant/r0/f0", 0.5), _row("wine/knn_5/r0/f1", 0.75)])
        path = store.export(tmp_path / f"results{suffix}")
        expected = store.frame()

    exported = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(exported.columns) == list(COLUMNS)
    assert exported["run_id"].tolist() == expected["run_id"].tolist()
    assert exported["test_score"].tolist() == [0.5, 0.75]


def test_results_export_writes_provenance(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add_provenance("abc", {"git_commit": "123"})
        store.add([{**_row("iris/constant/r0/f0"), "provenance_id": "abc"}])
        store.export(tmp_path / "out" / "results.csv")
    written = json.loads((tmp_path / "out" / "results.provenance.json").read_text(encoding="utf-8"))
    assert written == {"abc": {"git_commit": "123"}}


def test_results_export_unknown_suffix_raises(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(ValueError, match=r"suffix '\.xlsx'; use a path ending in \.csv or \.parquet"):
            store.export(tmp_path / "results.xlsx")


def test_without_volatile_drops_times_and_sorts():
    frame = pd.DataFrame([_row("b/m/r0/f0"), _row("a/m/r0/f0")])
    stable = without_volatile(frame)
    assert stable["run_id"].tolist() == ["a/m/r0/f0", "b/m/r0/f0"]
    assert not set(VOLATILE_COLUMNS) & set(stable.columns)
