"""Tests of `occam-bench ladder` and of the new rungs running through `occam-bench run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.cli import main
from bench.results import ResultsStore
from models import ladder
from tests.conftest import REPOSITORY_ROOT


def _ladder_rows(output: str) -> dict[str, list[str]]:
    """Return the table rows of `ladder` output, keyed by model name."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and cells[0] not in ("model", "") and not cells[0].startswith("-"):
            rows[cells[0]] = cells
    return rows


def test_ladder_cli_lists_every_rung(capsys):
    assert main(["ladder", "--n-features", "10000", "--n-classes", "2", "--n-samples", "100"]) == 0
    output = capsys.readouterr().out
    rows = _ladder_rows(output)
    assert set(rows) == {rung.name for rung in ladder()}
    assert rows["l2_linear"][2:4] == ["1e+04", "100"]
    assert rows["constant"][2:4] == ["1", "0.01"]
    assert rows["gnn_feature_graph"][2] == "2.34e+03"
    assert rows["mlp_2e7"][2] == "2e+07"
    assert rows["shrinkage_lda"][2] == "1e+04"
    assert "task=binary n_features=10000 n_classes=2 n_samples=100" in output
    assert "- gnn: n_parameters = elements of all trainable tensors" in output


def test_ladder_cli_sorted_by_shape_estimate(capsys):
    assert main(["ladder", "--n-features", "4", "--n-classes", "3", "--n-samples", "150"]) == 0
    rows = list(_ladder_rows(capsys.readouterr().out).values())
    estimates = [float(row[2]) for row in rows if row[2] != "-"]
    assert estimates == sorted(estimates)
    assert rows[-1][2] != "-" or rows[-1][4].startswith("not applicable")


def test_ladder_cli_regression_excludes_classifiers(capsys):
    assert main(["ladder", "--n-features", "50", "--n-classes", "0"]) == 0
    rows = _ladder_rows(capsys.readouterr().out)
    assert rows["shrunken_centroids"][4] == (
        "not applicable: nearest shrunken centroids are a classifier, but this task is regression"
    )
    assert rows["constant"][2] == "1"
    assert rows["l2_linear"][2] == "51"


def test_ladder_cli_mlp_budget_below_input_width(capsys):
    assert main(["ladder", "--n-features", "22283", "--n-classes", "2"]) == 0
    rows = _ladder_rows(capsys.readouterr().out)
    assert rows["mlp_1e2"][4].startswith("not applicable: no MLP width comes within 5%")
    assert rows["mlp_1e6"][2] == "1e+06"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-features", "0"], "--n-features must be a positive integer, got 0"),
        (["--n-features", "10", "--n-samples", "-5"], "--n-samples must be a positive integer, got -5"),
        (["--n-features", "10", "--n-classes", "-1"], "--n-classes must be 0 or 1 for regression or at least 2"),
    ],
    ids=["features", "samples", "classes"],
)
def test_ladder_cli_invalid_shape_exits_2(capsys, argv, message):
    assert main(["ladder", *argv]) == 2
    assert message in capsys.readouterr().err


def test_ladder_cli_module_entry_point():
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.cli", "ladder", "--n-features", "2000", "--n-classes", "2", "--n-samples", "62"],
        cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    rows = _ladder_rows(completed.stdout)
    assert rows["l2_linear"][2] == "2e+03"
    assert rows["knn_5"][2] == "12.4"


def test_run_new_rungs_on_iris(tmp_path, data_dir):
    results = tmp_path / "results.sqlite"
    models = ["svm_rbf", "shrunken_centroids", "shrinkage_lda", "gnn_feature_graph", "gnn_random_graph"]
    exit_code = main([
        "--quiet", "run", "--data-dir", str(data_dir), "--datasets", str(REPOSITORY_ROOT / "datasets.yaml"),
        "--dataset", "iris", "--model", *models, "--folds", "2", "--repeats", "1", "--workers", "1",
        "--threads", "1", "--results", str(results), "--reports", str(tmp_path / "reports"),
    ])
    assert exit_code == 0

    with ResultsStore(results) as store:
        frame = store.frame()
    assert len(frame) == 2 * len(models)
    assert set(frame["status"]) == {"ok"}
    gnn_rows = frame[frame["family"] == "gnn"]
    # Node layer 4 x 8 + 8 = 40, head 16 x 128 + 128 = 2176, then 128 x 3 + 3 = 387.
    assert set(gnn_rows["n_parameters"]) == {2603}
    assert all(json.loads(detail)["n_edges"] > 0 for detail in gnn_rows["parameter_detail"])
    svm_rows = frame[frame["model"] == "svm_rbf"]
    assert not any("FutureWarning" in warnings for warnings in svm_rows["warnings"])
    report = (tmp_path / "reports" / "leaderboards.md").read_text()
    for model in models:
        # The Markdown writer escapes underscores in names.
        assert f"| {model.replace('_', chr(92) + '_')}" in report
