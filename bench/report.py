"""Reports built from the results store alone: leaderboards and gap against params_per_sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.results import ResultsStore
from bench.runs import OK
from models import COUNTING_RULES

MISSING = "missing"
# Edges of the params_per_sample bins: one per decade from 1e-3 to 1e6.
BIN_EDGES = [0.0] + [10.0**k for k in range(-3, 7)] + [math.inf]
MISSING_POLICY = (
    "Missing-value policy: a (model, dataset) cell is filled only when every run of it finished "
    "with status ok; otherwise it shows `missing` with runs ok/total and the reason, and it is "
    "left out of every mean. Nothing is imputed."
)


def leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (dataset, model): means and spreads over repeats and folds."""
    rows = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=False):
        ok = group[group["status"] == OK]
        complete = len(ok) == len(group)
        row = {
            "dataset": dataset,
            "model": model,
            "family": group["family"].iloc[0],
            "metric": _first(group["metric"]),
            "n_runs_ok": len(ok),
            "n_runs": len(group),
            "complete": complete,
            "reason": "" if complete else _reason(group[group["status"] != OK]),
        }
        for column in ("n_parameters", "n_effective_parameters", "params_per_sample", "train_score", "test_score",
                       "gap", "fit_time_s", "n_train_samples"):
            values = pd.to_numeric(ok[column], errors="coerce")
            row[f"{column}_mean"] = float(values.mean()) if complete and values.notna().any() else math.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if complete and values.notna().sum() > 1 else math.nan
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board["_order"] = board["n_parameters_mean"].fillna(math.inf)
    board = board.sort_values(["dataset", "_order", "model"]).drop(columns="_order").reset_index(drop=True)
    return board


def _first(series: pd.Series):
    values = series.dropna()
    return values.iloc[0] if len(values) else None


def _reason(failed: pd.DataFrame) -> str:
    counts = failed["error"].fillna(failed["status"]).value_counts()
    parts = [f"{n}x {message}" if n > 1 else str(message) for message, n in counts.items()]
    return "; ".join(parts)[:300]


def params_per_sample_bins(frame: pd.DataFrame, group_by: str | None = None) -> pd.DataFrame:
    """Return gap and test score per params_per_sample decade, per metric (and per `group_by`)."""
    ok = frame[frame["status"] == OK].copy()
    if ok.empty:
        return pd.DataFrame()
    ok["bin"] = pd.cut(ok["params_per_sample"], BIN_EDGES, right=False)
    keys = ["metric"] + ([group_by] if group_by else []) + ["bin"]
    table = ok.groupby(keys, observed=True).agg(
        n_runs=("run_id", "size"),
        n_datasets=("dataset", "nunique"),
        n_models=("model", "nunique"),
        gap_mean=("gap", "mean"),
        gap_median=("gap", "median"),
        test_score_mean=("test_score", "mean"),
        train_score_mean=("train_score", "mean"),
    ).reset_index()
    table["bin"] = table["bin"].map(_bin_label)
    return table


def _bin_label(interval: pd.Interval) -> str:
    def edge(value: float) -> str:
        if value == 0:
            return "0"
        if math.isinf(value):
            return "inf"
        return f"1e{int(round(math.log10(value)))}"

    return f"[{edge(interval.left)}, {edge(interval.right)})"


# ---- Writing ------------------------------------------------------------------------

LEADERBOARD_LEGEND = [
    "model: rung of the ladder; family: model family.",
    "n_parameters: raw parameter count of the fitted model, mean over runs; n_eff: effective count where defined.",
    "params/sample: n_parameters / n_train_samples, mean over runs.",
    "train, test: primary metric on the train and test part of each split, mean ± standard deviation over "
    "repeats and folds; higher is better (accuracy for classification, R^2 for regression).",
    "gap: train - test for the same run, mean ± standard deviation; positive means the model fits train better.",
    "fit s: mean fit time in seconds; ok/runs: runs with status ok out of all runs of the cell.",
]


def write_reports(store: ResultsStore, reports_dir: Path) -> list[Path]:
    """Rebuild every report file from the results store; returns the files written."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    frame = store.frame()
    board = leaderboard(frame)
    written = []

    board_csv = reports_dir / "leaderboards.csv"
    board.to_csv(board_csv, index=False, float_format="%.6g")
    written.append(board_csv)

    bins = params_per_sample_bins(frame)
    bins_csv = reports_dir / "gap_by_params_per_sample.csv"
    bins.to_csv(bins_csv, index=False, float_format="%.6g")
    written.append(bins_csv)

    header = _provenance_header(store, frame)
    leaderboard_md = reports_dir / "leaderboards.md"
    leaderboard_md.write_text(header + _leaderboards_markdown(board, frame), encoding="utf-8")
    written.append(leaderboard_md)

    bins_md = reports_dir / "gap_by_params_per_sample.md"
    bins_md.write_text(header + _bins_markdown(bins), encoding="utf-8")
    written.append(bins_md)
    return written


def _provenance_header(store: ResultsStore, frame: pd.DataFrame) -> str:
    provenance = store.provenance()
    used = sorted(set(frame["provenance_id"].dropna()))
    latest = max((provenance[p] for p in used if p in provenance), key=lambda c: c["started_utc"], default=None)
    lines = ["<!-- Generated by `occam-bench report`; do not edit by hand. -->", ""]
    if latest is None:
        return "\n".join(lines) + "\n"
    dates = sorted(frame["created_utc"].dropna())
    lines += [
        "## Provenance",
        "",
        f"- occam-bench {latest['occam_bench_version']}, git commit {latest['git_commit']}"
        f"{' (dirty)' if latest.get('git_dirty') else ''}",
        f"- results dated {dates[0] if dates else '?'} to {dates[-1] if dates else '?'} (UTC)",
        f"- Python {latest['python']}; " + ", ".join(f"{k} {v}" for k, v in sorted(latest["packages"].items())),
        f"- machine: {latest['machine']['platform']}, {latest['machine']['n_cpus']} CPUs",
        f"- protocol: {latest['settings']['n_folds']} folds x {latest['settings']['n_repeats']} repeats, "
        f"seed {latest['settings']['seed']}, compute budget {latest['settings']['compute_budget']:.2e} flops per run",
        f"- {frame['dataset'].nunique()} datasets, {frame['model'].nunique()} models, {len(frame)} runs "
        f"({int((frame['status'] == OK).sum())} ok, {int((frame['status'] == 'failed').sum())} failed, "
        f"{int((frame['status'] == 'skipped').sum())} skipped)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _mean_std(mean: float, std: float, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _number(value: float, fmt: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format(value, fmt)


def _escape_markdown(text: str) -> str:
    return str(text).replace("|", "\\|")


def _leaderboards_markdown(board: pd.DataFrame, frame: pd.DataFrame) -> str:
    parts = ["# Leaderboards per dataset", ""]
    if board.empty:
        return "\n".join(parts + ["No results yet."]) + "\n"
    info = frame.drop_duplicates("dataset").set_index("dataset")
    for dataset, rows in board.groupby("dataset", sort=True):
        first = info.loc[dataset]
        parts += [
            f"## {dataset}",
            "",
            f"Table T-LB-{dataset}. Task {first['task']}, domain {first['domain']}, metric {rows['metric'].iloc[0]} "
            f"(higher is better), source {first['dataset_source']}, sha256 {first['dataset_sha256']}.",
            "",
        ]
        table = [
            [
                _escape_markdown(row.model), row.family, _number(row.n_parameters_mean),
                _number(row.n_effective_parameters_mean), _number(row.params_per_sample_mean),
                _mean_std(row.train_score_mean, row.train_score_std), _mean_std(row.test_score_mean, row.test_score_std),
                _mean_std(row.gap_mean, row.gap_std), _number(row.fit_time_s_mean, ".2f"),
                f"{row.n_runs_ok}/{row.n_runs}", _escape_markdown(row.reason),
            ]
            for row in rows.itertuples()
        ]
        headers = ["model", "family", "n_parameters", "n_eff", "params/sample", "train", "test", "gap", "fit s",
                   "ok/runs", "reason if missing"]
        parts += [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    parts += ["## Legend", ""] + [f"- {line}" for line in LEADERBOARD_LEGEND]
    parts += [f"- {MISSING_POLICY}", "", "Counting rules per family:", ""]
    parts += [f"- {rule}" for rule in COUNTING_RULES.values()]
    return "\n".join(parts) + "\n"


def _bins_markdown(bins: pd.DataFrame) -> str:
    parts = ["# Generalization gap against parameters per training sample", "",
             "Table T-GAP-PPS. Every ok run falls into the decade bin of its params_per_sample; "
             "scores are only averaged within one metric.", ""]
    if bins.empty:
        return "\n".join(parts + ["No results yet."]) + "\n"
    table = [
        [row.metric, row.bin, row.n_runs, row.n_datasets, row.n_models, f"{row.gap_mean:.3f}",
         f"{row.gap_median:.3f}", f"{row.train_score_mean:.3f}", f"{row.test_score_mean:.3f}"]
        for row in bins.itertuples()
    ]
    headers = ["metric", "params/sample bin", "runs", "datasets", "models", "gap mean", "gap median", "train mean",
               "test mean"]
    parts += [tabulate(table, headers=headers, tablefmt="github", disable_numparse=True), ""]
    parts += [
        "Legend:", "",
        "- params/sample bin: [low, high) of n_parameters / n_train_samples; 1e0 is the interpolation threshold "
        "for one output (parameters = training samples).",
        "- runs, datasets, models: ok runs in the bin and how many datasets and models they come from.",
        "- gap: train score - test score per run (positive means overfitting); train and test: primary metric, "
        "higher is better.",
        f"- {MISSING_POLICY} Failed and skipped runs are not in any bin.",
    ]
    return "\n".join(parts) + "\n"
