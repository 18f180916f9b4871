"""Reports rebuilt from the results store alone: leaderboards, mean rank, gap by params_per_sample,
failures, figures and dataset references, in Markdown, LaTeX and CSV."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench import report_figures
from bench.config import DatasetConfig
from bench.report_provenance import latex_header, markdown_header, provenance_json, references_bibtex
from bench.report_tables import (
    MISSING,
    Table,
    format_count,
    format_mean_std,
    format_number,
    render_csv,
    render_latex,
    render_markdown,
)
from bench.results import ResultsStore
from bench.runs import OK
from models import COUNTING_RULES

# Edges of the params_per_sample bins: one per decade from 1e-3 to 1e6.
BIN_EDGES = [0.0] + [10.0**k for k in range(-3, 7)] + [math.inf]
MISSING_POLICY = (
    "Missing-cell policy: a (model, dataset) cell is complete only when every run of it finished with "
    "status ok. An incomplete cell shows missing with runs ok/total and the reason; it is left out of "
    "every mean, bin and figure. In the mean rank its dataset is left out for all models, except that a "
    "model without any complete cell is left out of the comparison instead. Nothing is imputed."
)
LEADERBOARD_NUMBERS = ("n_parameters", "n_effective_parameters", "params_per_sample", "train_score", "test_score",
                       "gap", "fit_time_s", "n_train_samples")


def leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (dataset, model): means and spreads over repeats and folds of complete cells."""
    rows = []
    for (dataset, model), group in frame.groupby(["dataset", "model"], sort=False):
        ok = group[group["status"] == OK]
        complete = len(ok) == len(group)
        row = {
            "dataset": dataset,
            "model": model,
            "family": _first(group["family"]),
            "domain": _first(group["domain"]),
            "metric": _first(group["metric"]),
            "n_runs_ok": len(ok),
            "n_runs": len(group),
            "complete": complete,
            "reason": "" if complete else _reason(group[group["status"] != OK]),
        }
        for column in LEADERBOARD_NUMBERS:
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


def _reason(not_ok: pd.DataFrame) -> str:
    kinds = not_ok["error_kind"].fillna("unknown kind")
    messages = not_ok["error"].fillna("no error text")
    counts = (not_ok["status"] + " (" + kinds + "): " + messages).value_counts()
    parts = [f"{n}x {message}" if n > 1 else str(message) for message, n in sorted(counts.items())]
    return "; ".join(parts)[:300]


def mean_rank(board: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Rank models by mean test score on each dataset where every compared model has a complete cell.

    The compared models are those with at least one complete cell. Rank 1 is the highest test
    score, and tied models share their average rank.

    NOTE: a rung skipped on large datasets (by the compute budget or as not applicable) makes
    those cells incomplete, so on a full benchmark the common datasets can be few. T-RANK
    states how many were ranked and which were left out.

    Returns:
        One row per model (compared or not) and the (dataset, reason) of every dataset left out.
    """
    if board.empty:
        return pd.DataFrame(), []
    models = sorted(board["model"].unique())
    complete = board[board["complete"] & board["test_score_mean"].notna()]
    compared = sorted(complete["model"].unique())

    dropped = []
    for dataset in sorted(board["dataset"].unique()):
        cells = board[board["dataset"] == dataset].set_index("model")
        problems = []
        for model in compared:
            if model not in cells.index:
                problems.append(f"{model} has no runs")
            elif not cells.loc[model, "complete"] or math.isnan(cells.loc[model, "test_score_mean"]):
                problems.append(f"{model} {cells.loc[model, 'n_runs_ok']}/{cells.loc[model, 'n_runs']} runs ok")
        if problems:
            dropped.append((dataset, "; ".join(problems)))
    dropped_names = {dataset for dataset, _ in dropped}

    ranked = complete[~complete["dataset"].isin(dropped_names) & complete["model"].isin(compared)].copy()
    ranked["rank"] = ranked.groupby("dataset")["test_score_mean"].rank(ascending=False, method="average")
    rows = []
    for model in models:
        ranks = ranked.loc[ranked["model"] == model, "rank"]
        n_complete = int(complete["model"].eq(model).sum())
        rows.append({
            "model": model,
            "family": _first(board.loc[board["model"] == model, "family"]),
            "mean_rank": float(ranks.mean()) if len(ranks) else math.nan,
            "rank_std": float(ranks.std(ddof=1)) if len(ranks) > 1 else math.nan,
            "n_datasets": len(ranks),
            "n_datasets_complete": n_complete,
            "n_datasets_with_runs": int(board["model"].eq(model).sum()),
            "reason": "" if model in compared else "no complete cell on any dataset, so not compared",
        })
    table = pd.DataFrame(rows)
    table["_order"] = table["mean_rank"].fillna(math.inf)
    table = table.sort_values(["_order", "model"]).drop(columns="_order").reset_index(drop=True)
    return table, dropped


def params_per_sample_bins(frame: pd.DataFrame, board: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """Return gap and test score per params_per_sample decade, per metric and per `group_by` value.

    Only ok runs of complete cells with a known params_per_sample enter a bin;
    `n_runs_left_out` counts the group's other runs.
    """
    if frame.empty:
        return pd.DataFrame()
    complete_cells = _complete_cells(board)
    in_complete = pd.Series([(d, m) in complete_cells for d, m in zip(frame["dataset"], frame["model"])],
                            index=frame.index)
    binned = in_complete & (frame["status"] == OK) & frame["params_per_sample"].notna()
    runs = frame[binned].copy()
    left_out = frame[~binned].groupby(["metric", group_by], dropna=False).size()
    if runs.empty:
        return pd.DataFrame()

    runs["bin"] = pd.cut(runs["params_per_sample"], BIN_EDGES, right=False)
    table = runs.groupby(["metric", group_by, "bin"], observed=True).agg(
        n_runs=("run_id", "size"),
        n_datasets=("dataset", "nunique"),
        n_models=("model", "nunique"),
        gap_mean=("gap", "mean"),
        gap_median=("gap", "median"),
        train_score_mean=("train_score", "mean"),
        test_score_mean=("test_score", "mean"),
        test_score_median=("test_score", "median"),
    ).reset_index()
    table["bin"] = table["bin"].map(_bin_label)
    table["n_runs_left_out"] = [int(left_out.get((metric, group), 0))
                                for metric, group in zip(table["metric"], table[group_by])]
    return table.rename(columns={group_by: "group"}).assign(group_by=group_by)


def _complete_cells(board: pd.DataFrame) -> set[tuple[str, str]]:
    if board.empty:
        return set()
    return {(d, m) for d, m, c in zip(board["dataset"], board["model"], board["complete"]) if c}


def _bin_label(interval: pd.Interval) -> str:
    def edge(value: float) -> str:
        if value == 0:
            return "0"
        if math.isinf(value):
            return "inf"
        return f"1e{int(round(math.log10(value)))}"

    return f"[{edge(interval.left)}, {edge(interval.right)})"


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Count the failed and skipped runs per (model, status, error kind), with the most common error text."""
    not_ok = frame[frame["status"] != OK].copy()
    columns = ["model", "status", "error_kind", "n_runs", "n_datasets", "datasets", "most_common_error"]
    if not_ok.empty:
        return pd.DataFrame(columns=columns)
    not_ok["error_kind"] = not_ok["error_kind"].fillna("unknown kind")
    not_ok["error"] = not_ok["error"].fillna("no error text")
    rows = []
    for (model, status, kind), group in not_ok.groupby(["model", "status", "error_kind"], sort=True):
        messages = group["error"].value_counts()
        top = sorted(messages.items(), key=lambda item: (-item[1], item[0]))[0][0]
        rows.append({
            "model": model,
            "status": status,
            "error_kind": kind,
            "n_runs": len(group),
            "n_datasets": group["dataset"].nunique(),
            "datasets": ", ".join(sorted(group["dataset"].unique())),
            "most_common_error": top[:200],
        })
    return pd.DataFrame(rows, columns=columns)


# ---- Tables -------------------------------------------------------------------------

LEADERBOARD_LEGEND = [
    "model: rung of the ladder; family: model family.",
    "n_parameters: parameter count of the fitted model, mean over runs, by the counting rule of its family; "
    "n_eff: effective count where the family defines one, n/a where it defines none.",
    "params/sample: n_parameters / n_train_samples, mean over runs.",
    "train, test: primary metric on the train and test part of each split, mean ± standard deviation over "
    "repeats and folds; higher is better (accuracy for classification, R^2 for regression).",
    "gap: train - test of the same run, mean ± standard deviation; positive means the model fits train better.",
    "fit s: mean fit time in seconds; ok/runs: runs with status ok out of all runs of the cell.",
    "reason if missing: status, error kind and error text of the runs that did not finish ok.",
]


def leaderboard_tables(board: pd.DataFrame, frame: pd.DataFrame) -> list[Table]:
    """Build one table per dataset, identified as T-LB-<dataset>, with one row per model."""
    if board.empty:
        return []
    info = frame.drop_duplicates("dataset").set_index("dataset")
    headers = ["model", "family", "n_parameters", "n_eff", "params/sample", "train", "test", "gap", "fit s",
               "ok/runs", "reason if missing"]
    tables = []
    for dataset, cells in board.groupby("dataset", sort=True):
        first = info.loc[dataset]
        rows = [
            [
                str(cell.model), str(cell.family), format_count(cell.n_parameters_mean),
                _effective_count(cell), format_number(cell.params_per_sample_mean),
                format_mean_std(cell.train_score_mean, cell.train_score_std),
                format_mean_std(cell.test_score_mean, cell.test_score_std),
                format_mean_std(cell.gap_mean, cell.gap_std), format_number(cell.fit_time_s_mean, ".2f"),
                f"{cell.n_runs_ok}/{cell.n_runs}", cell.reason,
            ]
            for cell in cells.itertuples()
        ]
        tables.append(Table(
            identifier=f"T-LB-{dataset}",
            title=f"leaderboard of {dataset}",
            caption=(f"Task {first['task']}, domain {first['domain']}, metric {cells['metric'].iloc[0]} "
                     f"(higher is better), source {first['dataset_source']}"),
            headers=headers,
            rows=rows,
            legend=LEADERBOARD_LEGEND + [MISSING_POLICY],
            numeric_columns=(2, 3, 4, 5, 6, 7, 8, 9),
            raw=cells.reset_index(drop=True),
        ))
    return tables


def _effective_count(cell) -> str:
    # A complete cell without an effective count belongs to a family that defines none, so nothing is missing.
    if cell.complete and math.isnan(cell.n_effective_parameters_mean):
        return "n/a"
    return format_number(cell.n_effective_parameters_mean)


def rank_table(ranks: pd.DataFrame, dropped: list[tuple[str, str]], n_datasets: int) -> Table:
    """Build T-RANK: mean rank per model over the datasets common to all compared models."""
    rows = [
        [str(row.model), str(row.family), format_mean_std(row.mean_rank, row.rank_std, digits=2),
         str(row.n_datasets), str(row.n_datasets_complete), str(row.n_datasets_with_runs), row.reason]
        for row in ranks.itertuples()
    ] if not ranks.empty else []
    n_ranked = n_datasets - len(dropped)
    legend = [
        "mean rank: rank of the mean test score on each dataset (1 is best, ties share their average rank), "
        "mean ± standard deviation over the ranked datasets.",
        "n_datasets: datasets ranked; complete: datasets where the model's cell is complete; "
        "with runs: datasets where the model has any run.",
        f"{n_ranked} of {n_datasets} datasets are common to all compared models and ranked.",
    ]
    if dropped:
        legend.append("Datasets left out of the rank: " + "; ".join(f"{d} ({why})" for d, why in dropped) + ".")
    legend.append(MISSING_POLICY)
    raw = ranks.copy()
    if not raw.empty:
        raw["datasets_left_out"] = ", ".join(d for d, _ in dropped)
    return Table(
        identifier="T-RANK",
        title="mean rank across datasets",
        caption="Ranks use the primary metric of each dataset, so datasets with different metrics can be combined",
        headers=["model", "family", "mean rank", "n_datasets", "complete", "with runs", "reason if missing"],
        rows=rows,
        legend=legend,
        numeric_columns=(2, 3, 4, 5),
        raw=raw,
    )


def bins_table(bins: pd.DataFrame, group_by: str) -> Table:
    """Build T-GAP-PPS-FAMILY or T-GAP-PPS-DOMAIN: gap and test score by params_per_sample decade."""
    rows = [
        [str(row.metric), str(row.group), row.bin, str(row.n_runs), str(row.n_datasets), str(row.n_models),
         f"{row.gap_mean:.3f}", f"{row.gap_median:.3f}", f"{row.train_score_mean:.3f}",
         f"{row.test_score_mean:.3f}", str(row.n_runs_left_out)]
        for row in bins.itertuples()
    ] if not bins.empty else []
    return Table(
        identifier=f"T-GAP-PPS-{group_by.upper()}",
        title=f"gap and test score against params_per_sample, by {group_by}",
        caption="Scores are averaged only within one metric",
        headers=["metric", group_by, "params/sample bin", "runs", "datasets", "models", "gap mean", "gap median",
                 "train mean", "test mean", "runs left out"],
        rows=rows,
        legend=[
            "params/sample bin: [low, high) of n_parameters / n_train_samples; 1e0 is the interpolation threshold "
            "for one output (parameters = training samples).",
            "runs, datasets, models: ok runs of complete cells in the bin and how many datasets and models they "
            "come from.",
            "gap: train score - test score per run (positive means overfitting); train and test: primary metric, "
            "higher is better.",
            f"runs left out: runs of this metric and {group_by} in no bin, because their cell is incomplete or "
            "their params_per_sample is unknown.",
            MISSING_POLICY,
        ],
        name_columns=(1,),
        numeric_columns=(3, 4, 5, 6, 7, 8, 9, 10),
        raw=bins,
    )


def failures_table(failed: pd.DataFrame) -> Table:
    """Build T-FAIL: failed and skipped runs counted per model, status and error kind."""
    rows = [
        [str(row.model), row.status, str(row.error_kind), str(row.n_runs), str(row.n_datasets), row.datasets,
         row.most_common_error]
        for row in failed.itertuples()
    ]
    return Table(
        identifier="T-FAIL",
        title="failed and skipped runs",
        headers=["model", "status", "error kind", "runs", "n_datasets", "datasets", "most common error"],
        rows=rows,
        legend=[
            "status: failed (the fit or evaluation raised, ran out of memory or time) or skipped (the run was not "
            "started, with the reason in the error text).",
            "error kind: category recorded by the runner: exception, time_limit, memory, non_finite, data or "
            "not_applicable.",
            "runs: runs of this model with this status and kind; datasets: where they happened.",
            MISSING_POLICY,
        ],
        numeric_columns=(3, 4),
        raw=failed,
    )


# ---- Writing ------------------------------------------------------------------------

FIGURES = {
    "F-GAP-PPS": ("gap_vs_params_per_sample",
                  "Generalization gap of every ok run of a complete cell against params_per_sample (log axis), "
                  "one panel per metric, with the median gap per decade as a trend line per family. The dashed "
                  "line is the interpolation threshold, parameters = training samples."),
    "F-TEST-NPARAMS": ("test_score_vs_n_parameters",
                       "Mean test score of each complete cell against n_parameters (log axis), one panel per "
                       "dataset, with the standard deviation over runs as error bars. The dashed line is the "
                       "interpolation threshold, n_parameters = mean training samples of the dataset."),
}


def write_reports(store: ResultsStore, reports_dir: Path, config: DatasetConfig | None = None) -> list[Path]:
    """Rebuild every report file from the results store, without fitting anything.

    Args:
        config: the datasets file, read for the `reference:` of each dataset in references.bib.

    Returns:
        The files written, in writing order.
    """
    # Data
    reports_dir.mkdir(parents=True, exist_ok=True)
    frame = store.frame()
    provenance = store.provenance()
    board = leaderboard(frame)
    ranks, dropped = mean_rank(board)
    n_datasets = int(frame["dataset"].nunique()) if not frame.empty else 0

    # Tables
    reports = {
        "leaderboards": ("Leaderboards per dataset", leaderboard_tables(board, frame)),
        "mean_rank": ("Mean rank across datasets", [rank_table(ranks, dropped, n_datasets)]),
        "gap_by_params_per_sample": ("Generalization gap against parameters per training sample", [
            bins_table(params_per_sample_bins(frame, board, "family"), "family"),
            bins_table(params_per_sample_bins(frame, board, "domain"), "domain"),
        ]),
        "failures": ("Failed and skipped runs", [failures_table(failures(frame))]),
    }
    written = []
    for stem, (title, tables) in reports.items():
        written += _write_report(reports_dir, stem, title, tables, provenance, frame)

    # Figures
    figures_dir = reports_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    complete_cells = _complete_cells(board)
    drawn = {
        "F-GAP-PPS": report_figures.plot_gap_against_params_per_sample(frame, complete_cells),
        "F-TEST-NPARAMS": report_figures.plot_test_score_against_n_parameters(board),
    }
    for identifier, figure in drawn.items():
        written += report_figures.save_figure(figure, figures_dir / FIGURES[identifier][0])
    figures_md = reports_dir / "figures.md"
    _write_text(figures_md, markdown_header("Figures", provenance, frame) + _figures_markdown())
    written.append(figures_md)

    # References and index
    bib = reports_dir / "references.bib"
    _write_text(bib, references_bibtex(sorted(frame["dataset"].unique()) if not frame.empty else [], config, frame))
    written.append(bib)
    provenance_file = reports_dir / "provenance.json"
    _write_text(provenance_file, provenance_json(provenance, frame))
    written.append(provenance_file)
    index = reports_dir / "README.md"
    _write_text(index, _index_markdown(reports, provenance, frame))
    written.append(index)
    return written


def _write_report(reports_dir: Path, stem: str, title: str, tables: list[Table], provenance: dict,
                  frame: pd.DataFrame) -> list[Path]:
    markdown = markdown_header(title, provenance, frame)
    markdown += "\n".join(render_markdown(table) for table in tables) if tables else "No results yet.\n"
    if stem == "leaderboards":
        markdown += "\nCounting rules per family:\n\n" + "".join(f"- {rule}\n" for rule in COUNTING_RULES.values())
    latex = latex_header(title, provenance, frame) + "\n".join(render_latex(table) for table in tables)
    # NOTE: the CSV files carry no provenance header, so that pandas and R read them as plain
    # tables. Their provenance is in provenance.json next to them.
    raw = [table.raw.assign(table_id=table.identifier) for table in tables if len(table.raw.columns)]
    csv = render_csv(Table("", "", [], [], [], raw=pd.concat(raw, ignore_index=True) if raw else pd.DataFrame()))

    paths = [reports_dir / f"{stem}.md", reports_dir / f"{stem}.tex", reports_dir / f"{stem}.csv"]
    for path, text in zip(paths, (markdown, latex, csv)):
        _write_text(path, text)
    return paths


def _write_text(path: Path, text: str) -> None:
    # Fixed newlines, so the bytes are the same on every platform.
    path.write_text(text, encoding="utf-8", newline="\n")


def _figures_markdown() -> str:
    parts = []
    for identifier, (stem, caption) in FIGURES.items():
        parts += [f"## {identifier}", "", f"![{identifier}](figures/{stem}.png)", "",
                  f"Files: figures/{stem}.png, figures/{stem}.svg.", "", caption, "", f"- {MISSING_POLICY}", ""]
    return "\n".join(parts)


def _index_markdown(reports: dict, provenance: dict, frame: pd.DataFrame) -> str:
    parts = ["Tables keep their identifier across versions, so a citation keeps pointing at the same table. "
             "Each report is written as Markdown (.md), LaTeX with booktabs (.tex) and CSV with whole names and "
             "unrounded numbers (.csv, with a table_id column).", ""]
    for stem, (title, tables) in reports.items():
        identifiers = ", ".join(table.identifier for table in tables) or MISSING
        parts.append(f"- {stem}.md, .tex, .csv: {title} ({identifiers})")
    for identifier, (stem, _) in FIGURES.items():
        parts.append(f"- figures/{stem}.png, .svg: {identifier}")
    parts += ["- references.bib: BibTeX entries of the datasets, keys occam-bench:<dataset>",
              "- provenance.json: provenance of every benchmark execution behind the results, and the datasets",
              "- how_many_parameters.md and the files it names: effective dimension, sample-size rules and "
              "observed best parameter counts, written by `occam-bench analyze` from the same results", ""]
    return markdown_header("occam-bench reports", provenance, frame) + "\n".join(parts)
