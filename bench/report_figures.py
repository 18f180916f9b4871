"""Report figures drawn with matplotlib's Agg backend, saved as PNG and SVG with reproducible bytes."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.runs import OK  # noqa: E402

# A fixed salt makes the SVG element ids the same on every rebuild. Without it matplotlib draws them at random.
DETERMINISTIC_RC = {"svg.hashsalt": "occam-bench", "svg.fonttype": "path", "font.family": "DejaVu Sans"}
# Dates and matplotlib's version string are left out of the files, so bytes depend on the results only.
SVG_METADATA = {"Date": None, "Creator": None}
PNG_METADATA = {"Software": None}
FIGURE_DPI = 110


def save_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """Save `figure` as `<stem>.png` and `<stem>.svg` without dates, then close it."""
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with matplotlib.rc_context(DETERMINISTIC_RC):
        figure.savefig(png, dpi=FIGURE_DPI, metadata=PNG_METADATA)
        figure.savefig(svg, metadata=SVG_METADATA)
    plt.close(figure)
    return [png, svg]


def plot_gap_against_params_per_sample(frame: pd.DataFrame, complete_cells: set[tuple[str, str]]) -> plt.Figure:
    """Draw every ok run of a complete cell as a point, one panel per metric, with a median trend per family.

    The trend joins, for each decade of params_per_sample with runs of the family, the median
    gap drawn at the median params_per_sample of those runs.
    """
    runs = _complete_runs(frame, complete_cells)
    runs = runs[runs["params_per_sample"] > 0]
    metrics = sorted(runs["metric"].dropna().unique()) or ["no results"]
    families = sorted(runs["family"].dropna().unique())
    colors = _family_colors(families)

    with matplotlib.rc_context(DETERMINISTIC_RC):
        figure, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.8), squeeze=False)
        for axis, metric in zip(axes[0], metrics):
            subset = runs[runs["metric"] == metric]
            for family in families:
                points = subset[subset["family"] == family].sort_values(["params_per_sample", "run_id"])
                if points.empty:
                    continue
                axis.scatter(points["params_per_sample"], points["gap"], s=9, alpha=0.45, color=colors[family],
                             label=family, linewidths=0)
                decades = np.floor(np.log10(points["params_per_sample"].to_numpy()))
                trend = points.groupby(decades).agg(x=("params_per_sample", "median"), gap=("gap", "median"))
                axis.plot(trend["x"], trend["gap"], color=colors[family], lw=1.5, marker="D", ms=4)
            axis.axvline(1.0, color="black", ls="--", lw=1, label="parameters = training samples")
            axis.axhline(0.0, color="grey", lw=0.6)
            axis.set_xscale("log")
            axis.set_xlabel("params_per_sample (n_parameters / n_train_samples)")
            axis.set_ylabel(f"gap = train - test ({metric})")
            axis.set_title(f"metric {metric}")
            if subset.empty:
                axis.text(0.5, 0.5, "no ok runs", transform=axis.transAxes, ha="center")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
        figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def plot_test_score_against_n_parameters(board: pd.DataFrame) -> plt.Figure:
    """Draw the mean test score of each complete cell against n_parameters, one panel per dataset.

    The dashed line is the interpolation threshold, n_parameters = mean n_train_samples of the dataset.
    """
    complete = board[board["complete"] & (board["n_parameters_mean"] > 0)] if not board.empty else board
    datasets = sorted(complete["dataset"].unique()) if not complete.empty else []
    families = sorted(complete["family"].dropna().unique()) if not complete.empty else []
    colors = _family_colors(families)
    n_columns = min(4, max(1, len(datasets)))
    n_rows = max(1, math.ceil(len(datasets) / n_columns))

    with matplotlib.rc_context(DETERMINISTIC_RC):
        figure, axes = plt.subplots(n_rows, n_columns, figsize=(3.6 * n_columns, 2.9 * n_rows), squeeze=False)
        for index, axis in enumerate(axes.flat):
            if index >= len(datasets):
                axis.set_visible(index > 0 or bool(datasets))
                if not datasets:
                    axis.text(0.5, 0.5, "no complete cells", transform=axis.transAxes, ha="center")
                continue
            dataset = datasets[index]
            cells = complete[complete["dataset"] == dataset].sort_values(["n_parameters_mean", "model"])
            for family in families:
                points = cells[cells["family"] == family]
                if points.empty:
                    continue
                axis.errorbar(points["n_parameters_mean"], points["test_score_mean"],
                              yerr=points["test_score_std"].fillna(0.0), fmt="o", ms=3.5, lw=0.8,
                              color=colors[family], label=family)
            axis.axvline(float(cells["n_train_samples_mean"].mean()), color="black", ls="--", lw=1)
            axis.set_xscale("log")
            # Minor tick labels of a log axis that spans less than a decade overlap, so only decades are labelled.
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.set_title(f"{dataset} ({cells['metric'].iloc[0]})", fontsize=9)
            axis.tick_params(labelsize=7)
        if datasets:
            handles, labels = {}, []
            for axis in axes.flat:
                for handle, label in zip(*axis.get_legend_handles_labels()):
                    if label not in handles:
                        handles[label] = handle
                        labels.append(label)
            figure.legend([handles[label] for label in labels], labels, loc="upper center",
                          ncol=min(len(labels), 6), fontsize=8, frameon=False)
        figure.supxlabel("n_parameters (log); dashed: n_parameters = training samples", fontsize=9)
        figure.supylabel("test score, mean ± standard deviation", fontsize=9)
        figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.9 * n_rows)))
    return figure


def _complete_runs(frame: pd.DataFrame, complete_cells: set[tuple[str, str]]) -> pd.DataFrame:
    if frame.empty:
        return frame
    in_complete = [(d, m) in complete_cells for d, m in zip(frame["dataset"], frame["model"])]
    return frame[(frame["status"] == OK) & pd.Series(in_complete, index=frame.index)]


def _family_colors(families: list[str]) -> dict[str, tuple]:
    palette = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    return {family: palette(index % palette.N) for index, family in enumerate(families)}
