"""The report section "How many parameters?": predicted budgets, observed answers, simulations.

Writes `how_many_parameters.md`, the CSV files behind its tables and its figures into the
reports folder. Every number comes from the data pack, the results store or the simulation
CSV, so the report can be rebuilt at any time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench import provenance
from bench.answer import GAP_THRESHOLD, LogLogFit, fit_log_log, observed_answer, predicted_vs_observed
from bench.config import DatasetSpec
from bench.data import DataError, load_dataset
from bench.dimension import dataset_dimension
from bench.samplesize import sample_size_rules
from bench.splits import Protocol, make_splits

logger = logging.getLogger(__name__)

REPORT_NAME = "how_many_parameters.md"
DATASETS_CSV = "how_many_parameters.csv"
FIT_CSV = "how_many_parameters_fit.csv"
SIMULATIONS_CSV = "simulations.csv"
FIGURE_BUDGETS = "how_many_parameters_budgets.png"
FIGURE_DIMENSION = "how_many_parameters_dimension.png"
CURVES_CSV = "learning_curves.csv"
CURVES_SUMMARY_CSV = "learning_curves_summary.csv"
FIGURE_CURVES = "learning_curves.png"
SWEEP_CSV = "double_descent.csv"
FIGURE_SWEEP = "double_descent.png"
# Columns of the learning-curve runs written to CSV; the rest of a result row is provenance.
CURVE_COLUMNS = ("dataset", "model", "repeat", "fold", "fraction", "n_train_samples", "status", "error",
                 "train_score", "test_score", "gap", "n_parameters", "params_per_sample")
# Splits of the 5-fold repeat on which learning curves and sweeps are measured.
N_CURVE_SPLITS = 2
# The effective dimension that the tenfold rule and the cross-dataset fit use.
P_EFF_COLUMN = "participation_ratio_corrected"
# Splits of one 5-fold repeat on which each dataset's dimension is estimated by default.
DIMENSION_PROTOCOL = Protocol(n_folds=5, n_repeats=1, seed=0)
MISSING = "missing"

LEGEND_DIMENSION = """\
Legend: `n_train` training samples of the splits used: the first `--dimension-splits` folds of the
first repeat, with the folds, seed and `--max-samples` of the results file (5 folds without one);
`p` features after one-hot
encoding; `PR` participation ratio (sum lambda)^2 / sum lambda^2 of the covariance eigenvalues
lambda; `PR corrected` the same ratio from unbiased pair estimates of its numerator and denominator
(Chun, Canatar, Chung and Lee, ICLR 2026); `GD rank` singular values above the Gavish-Donoho
threshold omega(beta) x median singular value (IEEE Trans. Inf. Theory 2014); `PC 90 %` principal
components for 90 % of the variance; `lasso` features kept by a 5-fold cross-validated lasso
(one-vs-rest 0/1 targets for classes). Each value is the mean over the training parts used.
"""

LEGEND_BUDGETS = f"""\
Legend: the first four numeric columns are the largest parameter count each rule allows.
`tenfold cells` n x p / 10; `tenfold p_eff` n x PR corrected / 10; `EPV` events per variable,
smallest class count / 10 (Peduzzi et al. 1996; n / 10 for regression); `Riley` the largest P
meeting the shrinkage (S = 0.9) and optimism (delta = 0.05) criteria of Riley et al. (Statistics in
Medicine 2019), with an anticipated Cox-Snell R^2 of 15 % of its maximum. `best` parameter count of
the model with the highest mean test score; `1-SE` the fewest parameters among models within one
standard error of the best; `gap > {GAP_THRESHOLD}` the fewest parameters whose mean gap (train_score -
test_score) exceeds {GAP_THRESHOLD}, `none` when no model does. Parameter counts are means over runs.
`missing`: no result for this dataset, or no model with every run ok. The test score is accuracy for
classes and R^2 for regression, both higher-is-better. For regression the constant model has a
training R^2 of 0, so its gap is minus its test R^2, which is positive whenever the test mean
differs from the training mean: `gap > {GAP_THRESHOLD}` can then name a 1-parameter model.
"""


def predict_dataset(dataset, n_splits: int = 1, seed: int = 0, protocol: Protocol = DIMENSION_PROTOCOL) -> dict:
    """Return one dataset's effective dimension and rule budgets, on the training parts of `protocol`."""
    dimension = dataset_dimension(dataset, protocol, n_splits=n_splits, seed=seed)
    first_split = make_splits(dataset.y, dataset.task, protocol, dataset.name)[0]
    y = dataset.y.cat.codes.to_numpy() if dataset.task.is_classification else dataset.y.to_numpy(dtype=np.float64)
    rules = sample_size_rules(y[first_split.train], dataset.task, int(dimension["n_features"]),
                              dimension[P_EFF_COLUMN])
    row = {"dataset": dataset.name, "task": dataset.task.value, "domain": dataset.domain,
           "dataset_sha256": dataset.sha256}
    row.update({key: value for key, value in dimension.items()})
    row.update({key: value for key, value in rules.as_dict().items() if key not in ("n_samples", "n_features")})
    return row


def predict_datasets(specs: list[DatasetSpec], data_dir: Path | None, n_splits: int = 1,
                     protocol: Protocol = DIMENSION_PROTOCOL, max_samples: int | None = None) -> pd.DataFrame:
    """Return `predict_dataset` rows for every spec; a dataset that fails gets its error in `error`.

    `protocol` and `max_samples` are those of the results that the rows are compared with, so
    the budgets use the same training parts as the runs.
    """
    from bench.runs import subsample

    n_splits = min(n_splits, protocol.n_folds)
    rows = []
    for index, spec in enumerate(specs, start=1):
        try:
            dataset = load_dataset(spec, data_dir)
            if max_samples is not None and dataset.n_samples > max_samples:
                dataset = subsample(dataset, max_samples, protocol.seed)
            row = predict_dataset(dataset, n_splits, protocol=protocol)
            row["error"] = None
        except (DataError, ValueError, OSError) as error:
            logger.warning("dataset %s: analysis failed: %s: %s", spec.name, type(error).__name__, error)
            row = {"dataset": spec.name, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
        logger.info("[%d/%d] analysed %s", index, len(specs), spec.name)
    return pd.DataFrame(rows)


def run_curves(specs: list[DatasetSpec], data_dir: Path | None, models: list[str]) -> pd.DataFrame:
    """Return the learning-curve runs of `models` on each dataset, on the first 2 splits."""
    from bench.curves import learning_curve

    frames = []
    for spec in specs:
        dataset = load_dataset(spec, data_dir)
        splits = make_splits(dataset.y, dataset.task, DIMENSION_PROTOCOL, dataset.name)[:N_CURVE_SPLITS]
        frames.append(learning_curve(dataset, models, splits))
        logger.info("learning curves done: %s", spec.name)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_sweeps(specs: list[DatasetSpec], data_dir: Path | None, max_epochs: int) -> pd.DataFrame:
    """Return the double-descent sweep runs on each dataset, on the first 2 splits."""
    from bench.sweep import double_descent_sweep

    frames = []
    for spec in specs:
        dataset = load_dataset(spec, data_dir)
        splits = make_splits(dataset.y, dataset.task, DIMENSION_PROTOCOL, dataset.name)[:N_CURVE_SPLITS]
        frames.append(double_descent_sweep(dataset, splits, max_epochs=max_epochs))
        logger.info("double-descent sweep done: %s", spec.name)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_analysis_report(predicted: pd.DataFrame, results: pd.DataFrame | None, reports_dir: Path,
                          simulations: pd.DataFrame | None = None, gap_threshold: float = GAP_THRESHOLD,
                          curves: pd.DataFrame | None = None, sweep: pd.DataFrame | None = None) -> list[Path]:
    """Write the "How many parameters?" report, its CSV files and figures; return the files written."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    written = []

    # Tables
    observed = observed_answer(results, gap_threshold) if results is not None and not results.empty else None
    joined = predicted_vs_observed(predicted, observed) if observed is not None else predicted.copy()
    table_csv = reports_dir / DATASETS_CSV
    joined.to_csv(table_csv, index=False, float_format="%.6g")
    written.append(table_csv)

    fit, fit_note = _fit(joined)
    if fit is not None:
        fit_csv = reports_dir / FIT_CSV
        pd.DataFrame(fit.as_rows()).to_csv(fit_csv, index=False, float_format="%.6g")
        written.append(fit_csv)

    curve_summary = None
    if curves is not None and not curves.empty:
        from bench.curves import summarize_curve

        curve_summary = summarize_curve(curves)
        curve_runs = curves[[column for column in CURVE_COLUMNS if column in curves.columns]]
        for frame, name in ((curve_runs, CURVES_CSV), (curve_summary, CURVES_SUMMARY_CSV)):
            frame.to_csv(reports_dir / name, index=False, float_format="%.6g")
            written.append(reports_dir / name)
    sweep_summary = None
    if sweep is not None and not sweep.empty:
        from bench.sweep import summarize_sweep

        sweep_summary = summarize_sweep(sweep)
        sweep_summary.to_csv(reports_dir / SWEEP_CSV, index=False, float_format="%.6g")
        written.append(reports_dir / SWEEP_CSV)

    # Figures
    written += _figures(joined, reports_dir)
    written += _curve_figures(curves, sweep_summary, reports_dir)

    # Markdown
    report = reports_dir / REPORT_NAME
    parts = [_header(joined, results), _dimension_section(joined), _budget_section(joined, gap_threshold),
             _fit_section(fit, fit_note), _curve_section(curve_summary), _sweep_section(sweep_summary),
             _simulation_section(simulations), _figure_section(written)]
    report.write_text("\n".join(parts), encoding="utf-8")
    written.append(report)
    return written


def _fit(joined: pd.DataFrame) -> tuple[LogLogFit | None, str]:
    if "best_n_parameters" not in joined:
        return None, "No results were given, so there is no observed best parameter count to fit."
    try:
        fit = fit_log_log(joined["best_n_parameters"], joined["n_samples"], joined[P_EFF_COLUMN])
    except ValueError as error:
        return None, f"No fit: {error}."
    return fit, ""


def _header(joined: pd.DataFrame, results: pd.DataFrame | None) -> str:
    state = provenance.git_state()
    n_failed = int(joined["error"].notna().sum()) if "error" in joined else 0
    n_observed = int(joined["best_n_parameters"].notna().sum()) if "best_n_parameters" in joined else 0
    lines = [
        "<!-- Generated by `occam-bench analyze`; do not edit by hand. -->",
        "",
        "# How many parameters?",
        "",
        "For each dataset: how many independent variables it has (effective dimension), how many",
        "parameters the sample-size rules allow, and how many the best-scoring models used.",
        "",
        "## Provenance",
        "",
        f"- occam-bench {provenance.bench.__version__}, git commit {state['git_commit']}"
        f"{' (dirty)' if state.get('git_dirty') else ''}",
        f"- Python and packages: " + ", ".join(f"{k} {v}" for k, v in sorted(provenance.package_versions().items())),
        f"- {len(joined)} datasets analysed, {n_failed} failed; {n_observed} with an observed answer "
        f"from {0 if results is None else len(results)} result rows",
        "- dataset content hashes (sha256, first 12 hex digits) are in the tables below",
        "",
    ]
    return "\n".join(lines)


def _dimension_section(joined: pd.DataFrame) -> str:
    rows = []
    for _, row in joined.iterrows():
        if _is_missing(row.get("n_samples")):
            rows.append([row["dataset"], "-", "-", "-", "-", "-", "-", "-", "-", f"failed: {row.get('error')}"])
            continue
        rows.append([row["dataset"], row["task"], _count(row["n_samples"]), _count(row["n_features"]),
                     _number(row["participation_ratio"]), _number(row["participation_ratio_corrected"]),
                     _count(row["hard_threshold_rank"]), _count(row["n_components_90"]),
                     _count(row["n_lasso_features"]), str(row["dataset_sha256"])[:12]])
    table = tabulate(rows, headers=["dataset", "task", "n_train", "p", "PR", "PR corrected", "GD rank", "PC 90 %",
                                    "lasso", "sha256"], tablefmt="github", disable_numparse=True)
    return "\n".join(["## Effective dimension", "", table, "", LEGEND_DIMENSION])


def _budget_section(joined: pd.DataFrame, gap_threshold: float) -> str:
    rows = []
    for _, row in joined.iterrows():
        if _is_missing(row.get("n_samples")):
            continue
        gap_count = row.get("gap_exceeded_n_parameters")
        if _is_missing(row.get("best_n_parameters")):
            gap_text = MISSING
        else:
            gap_text = "none" if _is_missing(gap_count) else _number(gap_count)
        rows.append([row["dataset"], _number(row["max_parameters_tenfold_cells"]),
                     _number(row["max_parameters_tenfold_effective"]), _number(row["max_parameters_epv"]),
                     _number(row["max_parameters_riley"]), _text(row.get("best_model")),
                     _number(row.get("best_n_parameters")), _text(row.get("one_se_model")),
                     _number(row.get("one_se_n_parameters")), gap_text])
    table = tabulate(rows, headers=["dataset", "tenfold cells", "tenfold p_eff", "EPV", "Riley", "best model", "best",
                                    "1-SE model", "1-SE", f"gap > {gap_threshold}"],
                     tablefmt="github", disable_numparse=True)
    return "\n".join(["## Parameter budgets: predicted and observed", "", table, "", LEGEND_BUDGETS])


def _fit_section(fit: LogLogFit | None, note: str) -> str:
    lines = ["## Across datasets", ""]
    if fit is None:
        return "\n".join(lines + [note, ""])
    level = int(fit.confidence * 100)
    rows = [[item["term"], f"{item['estimate']:.3f}", f"{item['standard_error']:.3f}",
             f"[{item[f'ci{level}_low']:.3f}, {item[f'ci{level}_high']:.3f}]"] for item in fit.as_rows()]
    lines += [
        "Least-squares fit of log(best n_parameters) = a + b log(n_train) + c log(PR corrected), natural logs, "
        f"over {fit.n_datasets} datasets: R^2 = {fit.r_squared:.3f}, residual standard deviation "
        f"{fit.residual_std:.3f}.",
        "",
        tabulate(rows, headers=["term", "estimate", "standard error", f"{level} % interval"], tablefmt="github",
                 disable_numparse=True),
        "",
        f"Legend: intervals from Student's t with {fit.n_datasets - 3} degrees of freedom. A slope b near 1 means "
        "the best parameter count grows in proportion to the samples.",
        "",
    ]
    return "\n".join(lines)


def _simulation_section(simulations: pd.DataFrame | None) -> str:
    lines = ["## Simulations with a planted answer", ""]
    if simulations is None or simulations.empty:
        return "\n".join(lines + ["No simulations: run `occam-bench simulate --reports DIR` first.", ""])
    rows = []
    for _, row in simulations.iterrows():
        rows.append([row["dataset"], _count(row["planted_k"]), _count(row["estimated_n_lasso_features"]),
                     _count(row["n_informative_blocks_kept"]), _yes(row["k_recovered"]),
                     _number(row["true_participation_ratio"]), _number(row["estimated_participation_ratio_corrected"]),
                     _number(row["estimated_participation_ratio"]), _count(row["planted_best_n_parameters"]),
                     _text(row["observed_one_se_model"]), _number(row["observed_one_se_n_parameters"]),
                     _yes(row["best_size_recovered"])])
    table = tabulate(rows, headers=["simulation", "k", "lasso", "blocks hit", "k recovered", "PR true", "PR corrected",
                                    "PR", "planted P", "1-SE model", "1-SE P", "P recovered"],
                     tablefmt="github", disable_numparse=True)
    legend = (
        "Legend: `k` planted informative features, one per block of correlated features; `lasso` features kept by "
        "the cross-validated lasso on the first training part; `blocks hit` informative blocks among them; `k recovered` every "
        "informative block hit and lasso within a factor 10 of k; `PR true` participation ratio of the population "
        "covariance; `planted P` k + 1, the generating linear model; `1-SE P` parameters of the one-standard-error "
        "model; `P recovered` within a factor 10 of the planted P. The simulation name lists task, n, p, k, block "
        "size, within-block correlation, noise and seed."
    )
    return "\n".join(lines + [table, "", legend, ""])


def _curve_section(summary: pd.DataFrame | None) -> str:
    lines = ["## Learning curves", ""]
    if summary is None or summary.empty:
        return "\n".join(lines + ["Not measured: pass `--curve-dataset NAME ...` to `occam-bench analyze`.", ""])
    rows = []
    for _, row in summary.iterrows():
        interval = (f"[{_number(row.get('plateau_n_lower'))}, {_number(row.get('plateau_n_upper'))}]"
                    if not _is_missing(row.get("plateau_n_lower")) else "cannot tell")
        rows.append([row["dataset"], row["model"], _count(row["max_n_train_samples"]),
                     _number(row["test_score_at_max"]), _number(row.get("gain_per_doubling")),
                     f"[{_number(row.get('gain_lower'))}, {_number(row.get('gain_upper'))}]",
                     row["plateau_state"], _number(row.get("plateau_n")), interval])
    table = tabulate(rows, headers=["dataset", "model", "max n_train", "test score", "gain / doubling",
                                    "95 % interval", "state", "plateau n", "95 % interval"],
                     tablefmt="github", disable_numparse=True)
    legend = (
        "Legend: the training part of each of the first 2 splits is subsampled to 20, 35, 50, 70, 85 and 100 %; "
        "the test part stays whole. `gain / doubling` is the slope of test score on log2(n_train) over the 3 largest "
        "sizes; `state` is plateau when its upper bound is below 0.01, rising when its lower bound is above 0.01, "
        "else undetermined. `plateau n` is where the fitted inverse power law 1 - score = a + b n^(-c) gains 0.01 per "
        "doubling, with an interval from draws of the fitted parameters; `cannot tell` when the fit gives none."
    )
    return "\n".join(lines + [table, "", legend, ""])


def _sweep_section(summary: pd.DataFrame | None) -> str:
    lines = ["## Double-descent sweep", ""]
    if summary is None or summary.empty:
        return "\n".join(lines + ["Not measured: pass `--sweep-dataset NAME ...` to `occam-bench analyze`.", ""])
    rows = [[row["dataset"], f"{row['weight_decay']:g}", _number(row["threshold_multiple"]),
             _number(row["n_parameters"]), _number(row["params_per_sample"]), _number(row["train_score"]),
             _number(row["test_score"]), _number(row["gap"])] for _, row in summary.iterrows()]
    table = tabulate(rows, headers=["dataset", "weight decay", "budget / threshold", "n_parameters",
                                    "params_per_sample", "train score", "test score", "gap"],
                     tablefmt="github", disable_numparse=True)
    legend = (
        "Legend: MLP budgets from 0.1 to 10 times the interpolation threshold (fitted samples x outputs), "
        "means over the first 2 splits. Every network trains for the full epoch count and keeps the weights "
        "of its last epoch, without early stopping. Budgets that no width reaches within 5 % are left out. "
        "An effective parameter count is not defined for the MLP, so the sweep is shown against the raw "
        "count only."
    )
    return "\n".join(lines + [table, "", legend, ""])


def _curve_figures(curves: pd.DataFrame | None, sweep: pd.DataFrame | None, reports_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if curves is not None and not curves.empty:
        ok = curves[curves["status"] == "ok"]
        means = ok.groupby(["dataset", "model", "n_train_samples"])["test_score"].mean().reset_index()
        figure, axis = plt.subplots(figsize=(5.5, 4.5))
        for (dataset, model), group in means.groupby(["dataset", "model"]):
            axis.plot(group["n_train_samples"], group["test_score"], marker="o", markersize=3,
                      label=f"{dataset} / {model}")
        axis.set(xscale="log", xlabel="training samples", ylabel="test score", title="Learning curves")
        axis.legend(fontsize=6)
        figure.tight_layout()
        figure.savefig(reports_dir / FIGURE_CURVES, dpi=110)
        plt.close(figure)
        written.append(reports_dir / FIGURE_CURVES)
    if sweep is not None and not sweep.empty:
        figure, axis = plt.subplots(figsize=(5.5, 4.5))
        for (dataset, weight_decay), group in sweep.groupby(["dataset", "weight_decay"]):
            axis.plot(group["params_per_sample"], group["test_score"], marker="o", markersize=3,
                      label=f"{dataset}, weight decay {weight_decay:g}")
        axis.set(xscale="log", xlabel="params_per_sample (raw count)", ylabel="test score",
                 title="Double-descent sweep (MLP)")
        axis.legend(fontsize=6)
        figure.tight_layout()
        figure.savefig(reports_dir / FIGURE_SWEEP, dpi=110)
        plt.close(figure)
        written.append(reports_dir / FIGURE_SWEEP)
    return written


def _figures(joined: pd.DataFrame, reports_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    usable = joined[joined.get("n_samples", pd.Series(dtype=float)).notna()] if "n_samples" in joined else joined
    if usable.empty:
        return written

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.scatter(usable["n_features"], usable[P_EFF_COLUMN], s=14, label="PR corrected")
    axis.scatter(usable["n_features"], usable["hard_threshold_rank"].clip(lower=0.5), s=14, marker="x",
                 label="GD rank (0 drawn at 0.5)")
    axis.set(xscale="log", yscale="log", xlabel="features p", ylabel="effective dimension",
             title="Effective dimension against raw features")
    axis.legend(fontsize=8)
    path = reports_dir / FIGURE_DIMENSION
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)

    if "best_n_parameters" in usable and usable["best_n_parameters"].notna().any():
        observed = usable[usable["best_n_parameters"].notna()]
        figure, axis = plt.subplots(figsize=(5.5, 4.5))
        for column, label in (("max_parameters_tenfold_effective", "tenfold p_eff"),
                              ("max_parameters_epv", "EPV"), ("max_parameters_riley", "Riley")):
            axis.scatter(observed[column].clip(lower=0.5), observed["best_n_parameters"], s=14, label=label)
        limits = [0.5, max(10.0, float(np.nanmax(observed[["best_n_parameters", "max_parameters_tenfold_effective"]])))]
        axis.plot(limits, limits, color="grey", linewidth=0.8, label="observed = predicted")
        axis.set(xscale="log", yscale="log", xlabel="predicted largest parameter count (0 drawn at 0.5)",
                 ylabel="best model's n_parameters", title="Predicted budget against observed best")
        axis.legend(fontsize=8)
        path = reports_dir / FIGURE_BUDGETS
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _figure_section(written: list[Path]) -> str:
    figures = [path for path in written if path.suffix == ".png"]
    if not figures:
        return ""
    lines = ["## Figures", ""]
    lines += [f"![{path.stem}]({path.name})" for path in figures]
    return "\n".join(lines + [""])


def _is_missing(value) -> bool:
    return value is None or bool(pd.isna(value))


def _number(value) -> str:
    if _is_missing(value):
        return MISSING
    return f"{float(value):.3g}"


def _count(value) -> str:
    if _is_missing(value):
        return MISSING
    return f"{float(value):.0f}" if float(value).is_integer() else f"{float(value):.1f}"


def _text(value) -> str:
    return MISSING if _is_missing(value) else str(value)


def _yes(value) -> str:
    return "yes" if bool(value) else "no"
