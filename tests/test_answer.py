"""Observed answer per dataset, predicted against observed, and the cross-dataset fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.answer import fit_log_log, model_summary, observed_answer, predicted_vs_observed
from bench.config import load_config
from bench.results import ResultsStore
from bench.runs import RunTask, execute_task
from bench.splits import Protocol


def _results(models: dict[str, tuple[float, list[float], float]], dataset: str = "toy") -> pd.DataFrame:
    """Return result rows: per model (n_parameters, test scores per run, gap)."""
    rows = []
    for model, (n_parameters, test_scores, gap) in models.items():
        for fold, test_score in enumerate(test_scores):
            rows.append({"dataset": dataset, "model": model, "repeat": 0, "fold": fold, "status": "ok",
                         "test_score": test_score, "train_score": test_score + gap, "gap": gap,
                         "n_parameters": n_parameters, "n_train_samples": 80})
    return pd.DataFrame(rows)


def test_observed_answer_best_one_se_and_gap():
    frame = _results({
        "constant": (1, [0.50, 0.50, 0.50, 0.50], 0.0),
        "small": (6, [0.78, 0.80, 0.82, 0.80], 0.02),
        "medium": (200, [0.80, 0.82, 0.84, 0.82], 0.12),
        "large": (2000, [0.79, 0.81, 0.83, 0.81], 0.30),
    })
    answer = observed_answer(frame, gap_threshold=0.10).iloc[0]
    assert answer["best_model"] == "medium"
    assert answer["best_n_parameters"] == 200
    # The best mean is 0.82 with standard error 0.0258/2 = 0.0129; "small" (0.80) lies outside it.
    assert answer["one_se_model"] == "medium"
    assert answer["gap_exceeded_model"] == "medium"
    assert answer["gap_exceeded_n_parameters"] == 200


def test_observed_answer_one_se_picks_smaller_model():
    frame = _results({
        # 0.815 is within one standard error (0.0129) of the best mean 0.82.
        "small": (6, [0.80, 0.81, 0.82, 0.83], 0.02),
        "large": (2000, [0.80, 0.82, 0.84, 0.82], 0.05),
    })
    answer = observed_answer(frame).iloc[0]
    assert answer["best_model"] == "large"
    assert answer["one_se_model"] == "small"
    assert answer["one_se_n_parameters"] == 6
    assert answer["gap_exceeded_model"] is None
    assert math.isnan(answer["gap_exceeded_n_parameters"])


def test_observed_answer_ignores_model_with_failed_run():
    frame = _results({"small": (6, [0.7, 0.7], 0.0), "large": (2000, [0.9, 0.9], 0.0)})
    frame.loc[frame.index[-1], "status"] = "failed"
    answer = observed_answer(frame).iloc[0]
    assert answer["best_model"] == "small"
    assert answer["n_models"] == 1


def test_model_summary_missing_columns():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['gap'"):
        model_summary(pd.DataFrame(columns=["dataset", "model", "status", "test_score", "train_score",
                                            "n_parameters", "n_train_samples"]))


def test_predicted_vs_observed_log_ratio():
    predicted = pd.DataFrame({"dataset": ["toy"], "max_parameters_epv": [2.0], "max_parameters_riley": [200.0]})
    observed = observed_answer(_results({"m": (20, [0.8, 0.8], 0.0)}))
    joined = predicted_vs_observed(predicted, observed)
    assert joined.loc[0, "log10_best_over_epv"] == pytest.approx(1.0)
    assert joined.loc[0, "log10_best_over_riley"] == pytest.approx(-1.0)


def test_fit_log_log_exact_relation():
    rng = np.random.default_rng(0)
    n_samples = rng.uniform(30, 500, 12)
    p_eff = rng.uniform(2, 80, 12)
    best = 0.5 * n_samples**0.8 * p_eff**0.3
    fit = fit_log_log(best, n_samples, p_eff)
    assert fit.coefficients == pytest.approx((math.log(0.5), 0.8, 0.3), abs=1e-9)
    assert max(fit.standard_errors) < 1e-6
    assert fit.r_squared == pytest.approx(1.0)


def test_fit_log_log_interval_covers_truth():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(40):
        n_samples = rng.uniform(30, 500, 20)
        p_eff = rng.uniform(2, 80, 20)
        best = np.exp(0.2 + 0.9 * np.log(n_samples) + 0.5 * np.log(p_eff) + 0.3 * rng.standard_normal(20))
        fit = fit_log_log(best, n_samples, p_eff)
        covered += fit.lower[1] <= 0.9 <= fit.upper[1]
    # A 95 % interval covers the true slope in about 38 of 40 draws; 33 is a binomial 1 % lower bound.
    assert covered >= 33


def test_fit_log_log_too_few_datasets():
    with pytest.raises(ValueError, match=r"3 dataset\(s\) have a positive best count"):
        fit_log_log([10, 20, 30, 0], [50, 60, 70, 80], [2, 3, 4, 5])


def test_observed_answer_from_results_store(tmp_path, data_dir):
    spec = load_config("datasets.yaml").select(["iris"])[0]
    protocol = Protocol(n_folds=2, n_repeats=1, seed=0)
    with ResultsStore(tmp_path / "results.sqlite") as store:
        for model in ("constant", "l2_linear"):
            store.add(execute_task(RunTask(spec, model, ((0, 0), (0, 1)), protocol, data_dir, None)))
        frame = store.frame()
    answer = observed_answer(frame).iloc[0]
    assert answer["dataset"] == "iris"
    assert answer["best_model"] == "l2_linear"
    # Multinomial logistic regression on 4 features and 3 classes: 3 x 4 weights + 3 intercepts.
    assert answer["best_n_parameters"] == 15
    assert answer["best_test_score"] > 0.85


def test_analyze_command_writes_every_dataset(tmp_path, data_dir):
    from bench.cli import main

    spec = load_config("datasets.yaml").select(["iris"])[0]
    protocol = Protocol(n_folds=2, n_repeats=1, seed=0)
    with ResultsStore(tmp_path / "results.sqlite") as store:
        store.add(execute_task(RunTask(spec, "constant", ((0, 0), (0, 1)), protocol, data_dir, None)))
    reports = tmp_path / "reports"
    status = main(["--quiet", "analyze", "--results", str(tmp_path / "results.sqlite"), "--data-dir", str(data_dir),
                   "--dataset", "iris", "sleep", "--reports", str(reports), "--dimension-splits", "2",
                   "--curve-dataset", "sleep", "--curve-model", "l2_linear"])
    assert status == 0
    text = (reports / "how_many_parameters.md").read_text()
    assert "# How many parameters?" in text
    assert "| iris" in text
    assert "| sleep" in text
    assert "## Learning curves" in text
    table = pd.read_csv(reports / "how_many_parameters.csv")
    assert set(table["dataset"]) == {"iris", "sleep"}
    assert table.set_index("dataset").loc["iris", "best_model"] == "constant"
    assert (reports / "learning_curves_summary.csv").is_file()
    # The budgets use the training parts of the results' 2-fold protocol: 75 of 150 iris rows.
    assert table.set_index("dataset").loc["iris", "n_samples"] == 75


def test_analyze_command_missing_results(tmp_path, data_dir, capsys):
    from bench.cli import main

    status = main(["analyze", "--results", str(tmp_path / "absent.sqlite"), "--data-dir", str(data_dir),
                   "--dataset", "iris", "--reports", str(tmp_path)])
    assert status == 2
    assert "results database not found" in capsys.readouterr().err


def test_analyze_command_changed_data_raises(tmp_path, data_dir, capsys):
    from bench.cli import main

    pack = tmp_path / "pack"
    pack.mkdir()
    table = pd.read_parquet(data_dir / "tabular" / "iris.parquet")
    table.to_parquet(pack / "iris.parquet")
    spec = load_config("datasets.yaml").select(["iris"])[0]
    protocol = Protocol(n_folds=2, n_repeats=1, seed=0)
    with ResultsStore(tmp_path / "results.sqlite") as store:
        store.add(execute_task(RunTask(spec, "constant", ((0, 0), (0, 1)), protocol, pack, None)))
    table.iloc[:120].to_parquet(pack / "iris.parquet")

    status = main(["analyze", "--results", str(tmp_path / "results.sqlite"), "--data-dir", str(pack),
                   "--dataset", "iris", "--reports", str(tmp_path / "reports")])

    assert status == 2
    assert "dataset(s) changed since their results" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "how_many_parameters.md").exists()
