"""Tests of the comparison of two report folders."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main
from bench.report_check import compare_reports


def _write_reports(folder, datasets, models, tables=("T-LB-a",)):
    folder.mkdir()
    rows = [{"dataset": d, "model": m, "table_id": f"T-LB-{d}"} for d in datasets for m in models]
    pd.DataFrame(rows).to_csv(folder / "leaderboards.csv", index=False)
    pd.DataFrame({"table_id": list(tables), "value": range(len(tables))}).to_csv(folder / "mean_rank.csv", index=False)
    return folder


def test_compare_reports_same_contents(tmp_path):
    committed = _write_reports(tmp_path / "a", ["iris", "alon"], ["constant", "mlp_1e4"])
    regenerated = _write_reports(tmp_path / "b", ["alon", "iris"], ["mlp_1e4", "constant"])
    assert compare_reports(committed, regenerated) == []
    assert main(["compare-reports", str(committed), str(regenerated)]) == 0


def test_compare_reports_lists_missing_and_extra(tmp_path):
    committed = _write_reports(tmp_path / "a", ["iris", "alon"], ["constant"], tables=("T-RANK",))
    regenerated = _write_reports(tmp_path / "b", ["iris"], ["constant", "knn_5"], tables=("T-RANK", "T-NEW"))
    differences = compare_reports(committed, regenerated)
    assert any(line.startswith("datasets in") and "alon" in line for line in differences)
    assert any(line.startswith("models in") and "knn_5" in line for line in differences)
    assert any(line.startswith("tables in") and "T-NEW" in line for line in differences)
    assert main(["compare-reports", str(committed), str(regenerated)]) == 1


def test_compare_reports_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="leaderboards.csv not found"):
        compare_reports(tmp_path / "none", tmp_path / "none")
