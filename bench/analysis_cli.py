"""Command line of the analyses: `occam-bench simulate` and `occam-bench analyze`."""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_SIMULATION_DIR = Path("results/simulations")
# Cheap rungs from about 1 to about p parameters, for learning curves.
DEFAULT_CURVE_MODELS = ("l1_linear", "l2_linear", "random_forest_16_d3")


def add_analysis_commands(commands) -> None:
    """Add the `simulate` and `analyze` subcommands to the subparsers of `occam-bench`."""
    from bench.answer import GAP_THRESHOLD
    from bench.cli import DEFAULT_DATASETS, DEFAULT_REPORTS
    from bench.simulate import DEFAULT_MODELS
    from bench.sweep import DEFAULT_MAX_EPOCHS

    simulate = commands.add_parser(
        "simulate", help="run the ladder on simulated omics-like data and check that the planted k and best size are recovered"
    )
    simulate.add_argument("--n-samples", type=int, nargs="+", default=[100], help="samples per dataset (default 100)")
    simulate.add_argument("--n-features", type=int, nargs="+", default=[2000], help="features (default 2000)")
    simulate.add_argument("--n-informative", type=int, nargs="+", default=[5],
                          help="informative features k, one per block (default 5)")
    simulate.add_argument("--block-size", type=int, default=20, help="features per correlated block (default 20)")
    simulate.add_argument("--correlation", type=float, default=0.8,
                          help="correlation of features within a block (default 0.8)")
    simulate.add_argument("--noise", type=float, default=0.5,
                          help="noise standard deviation against a signal of variance 1 (default 0.5)")
    simulate.add_argument("--task", choices=["binary", "regression"], default="binary", help="task (default binary)")
    simulate.add_argument("--seed", type=int, nargs="+", default=[0], help="one dataset per seed (default 0)")
    simulate.add_argument("--model", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME",
                          help=f"models to run (default: {' '.join(DEFAULT_MODELS)})")
    simulate.add_argument("--folds", type=int, default=5, help="folds of cross-validation (default 5)")
    simulate.add_argument("--work-dir", type=Path, default=DEFAULT_SIMULATION_DIR,
                          help=f"folder for the simulated data and results (default {DEFAULT_SIMULATION_DIR})")
    simulate.add_argument("--reports", type=Path, default=DEFAULT_REPORTS,
                          help=f"reports folder; simulations.csv is updated there (default {DEFAULT_REPORTS})")
    simulate.set_defaults(handler=_simulate)

    analyze = commands.add_parser(
        "analyze", help="write the 'How many parameters?' report: effective dimension, budgets, observed best parameter counts"
    )
    analyze.add_argument("--results", type=Path, help="results database from `occam-bench run` (optional)")
    analyze.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS,
                         help=f"datasets file (default {DEFAULT_DATASETS})")
    analyze.add_argument("--data-dir", type=Path, help="folder of Parquet files in the data pack layout")
    analyze.add_argument("--dataset", nargs="+", metavar="NAME",
                         help="only these datasets (default: those in --results, else every dataset)")
    analyze.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help=f"reports folder (default {DEFAULT_REPORTS})")
    analyze.add_argument("--dimension-splits", type=int, default=5,
                         help="training parts of one 5-fold repeat on which the dimension is averaged (default 5)")
    analyze.add_argument("--gap-threshold", type=float, default=GAP_THRESHOLD,
                         help=f"gap above which a model counts as overfitting (default {GAP_THRESHOLD})")
    analyze.add_argument("--curve-dataset", nargs="+", default=[], metavar="NAME",
                         help="datasets on which to measure learning curves (default: none)")
    analyze.add_argument("--curve-model", nargs="+", default=list(DEFAULT_CURVE_MODELS), metavar="NAME",
                         help=f"models of the learning curves (default: {' '.join(DEFAULT_CURVE_MODELS)})")
    analyze.add_argument("--sweep-dataset", nargs="+", default=[], metavar="NAME",
                         help="datasets on which to run the MLP double-descent sweep (default: none)")
    analyze.add_argument("--sweep-epochs", type=int, default=DEFAULT_MAX_EPOCHS,
                         help=f"training epochs of each sweep network (default {DEFAULT_MAX_EPOCHS})")
    analyze.set_defaults(handler=_analyze)


def _simulate(args) -> int:
    from tabulate import tabulate

    from bench.analysis_report import SIMULATIONS_CSV
    from bench.config import TaskType
    from bench.simulate import SimulationSpec, run_simulation

    specs = [
        SimulationSpec(n_samples=n, n_features=p, n_informative=k, block_size=args.block_size,
                       correlation=args.correlation, noise=args.noise, task=TaskType(args.task), seed=seed)
        for n, p, k, seed in itertools.product(args.n_samples, args.n_features, args.n_informative, args.seed)
    ]
    rows = []
    for index, spec in enumerate(specs, start=1):
        logger.info("[%d/%d] simulating %s", index, len(specs), spec.name)
        outcome = run_simulation(spec, args.work_dir, tuple(args.model), n_folds=args.folds,
                                 results_path=args.work_dir / "results.sqlite")
        rows.append(outcome.as_row())

    # Rows of earlier calls stay, and a simulation run again replaces its row.
    args.reports.mkdir(parents=True, exist_ok=True)
    path = args.reports / SIMULATIONS_CSV
    table = pd.DataFrame(rows)
    if path.is_file():
        earlier = pd.read_csv(path)
        table = pd.concat([earlier[~earlier["dataset"].isin(table["dataset"])], table], ignore_index=True)
    table.to_csv(path, index=False, float_format="%.6g")

    shown = [[row["dataset"], row["planted_k"], row["estimated_n_lasso_features"], row["k_recovered"],
              row["planted_best_n_parameters"], row["observed_one_se_model"],
              f"{row['observed_one_se_n_parameters']:.3g}", row["best_size_recovered"]] for row in rows]
    print(tabulate(shown, headers=["simulation", "k", "lasso", "k recovered", "planted P", "1-SE model", "1-SE P",
                                   "P recovered"], tablefmt="github"))
    print(f"simulations: {path}")
    return 0


def _analyze(args) -> int:
    from bench.analysis_report import (
        DIMENSION_PROTOCOL,
        SIMULATIONS_CSV,
        predict_datasets,
        run_curves,
        run_sweeps,
        write_analysis_report,
    )
    from bench.cli import _data_dir
    from bench.naming import load_named_config
    from bench.results import ResultsStore
    from bench.splits import Protocol

    data_dir = _data_dir(args)
    results, known_names = None, None
    protocol, max_samples = DIMENSION_PROTOCOL, None
    if args.results is not None:
        if not args.results.is_file():
            raise ValueError(f"results database not found: {args.results}; run `occam-bench run` first or omit --results")
        with ResultsStore(args.results) as store:
            results, known_names, recorded = store.frame(), store.openml_names(), store.protocol()
        # The budgets are computed on the training parts that the runs used.
        if recorded is not None:
            protocol = Protocol(n_folds=recorded["n_folds"], n_repeats=1, seed=recorded["seed"])
            max_samples = recorded.get("max_samples")
    config = load_named_config(args.datasets, data_dir, known_names=known_names)
    # With results and no --dataset, only the datasets that have results are analysed.
    names = args.dataset
    if names is None and results is not None and not results.empty:
        names = [name for name in config.names() if name in set(results["dataset"])]
    specs = config.select(names)
    if not specs:
        raise ValueError(f"no dataset selected from {args.datasets} (--dataset {args.dataset})")

    predicted = predict_datasets(specs, data_dir, n_splits=args.dimension_splits, protocol=protocol,
                                 max_samples=max_samples)
    if results is not None:
        _check_same_data(predicted, results, args.results)
    curves = run_curves(config.select(args.curve_dataset), data_dir, args.curve_model) if args.curve_dataset else None
    sweep = run_sweeps(config.select(args.sweep_dataset), data_dir, args.sweep_epochs) if args.sweep_dataset else None
    simulations_path = args.reports / SIMULATIONS_CSV
    simulations = pd.read_csv(simulations_path) if simulations_path.is_file() else None
    written = write_analysis_report(predicted, results, args.reports, simulations, args.gap_threshold, curves, sweep)
    n_failed = int(predicted["error"].notna().sum())
    print(f"analysed {len(predicted)} datasets ({n_failed} failed)")
    print(f"reports: {args.reports}/ ({', '.join(path.relative_to(args.reports).as_posix() for path in written)})")
    return 1 if n_failed == len(predicted) else 0


def _check_same_data(predicted: pd.DataFrame, results: pd.DataFrame, results_path) -> None:
    """Raise when a dataset's table differs from the one its results were computed on."""
    stored = results.dropna(subset=["dataset_sha256"]).groupby("dataset")["dataset_sha256"].agg(set)
    changed = [
        f"{row.dataset} (results {', '.join(sorted(h[:12] for h in stored[row.dataset]))}, now {row.dataset_sha256[:12]})"
        for row in predicted.itertuples()
        if isinstance(getattr(row, "dataset_sha256", None), str) and row.dataset in stored.index
        and stored[row.dataset] != {row.dataset_sha256}
    ]
    if changed:
        raise ValueError(
            f"dataset(s) changed since their results in {results_path} were computed: {'; '.join(changed)}; "
            f"rerun the benchmark into another --results file, or analyse without --results"
        )
