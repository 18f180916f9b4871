"""Command line: `occam-bench run`, `report`, `ladder`, `datasets`, `simulate`, `analyze`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.analysis_cli import add_analysis_commands
from bench.config import ConfigError, load_config
from bench.data import DATA_DIR_ENV, DataError

logger = logging.getLogger("bench")

DEFAULT_DATASETS = Path("datasets.yaml")
DEFAULT_RESULTS = Path("results/results.sqlite")
DEFAULT_REPORTS = Path("reports")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.handler(args)
    except (ConfigError, DataError, ValueError) as error:
        print(f"occam-bench: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occam-bench", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the benchmark and write the reports")
    _add_data_options(run)
    run.add_argument("--dataset", nargs="+", metavar="NAME", help="only these datasets (names from datasets.yaml)")
    run.add_argument("--tag", nargs="+", metavar="TAG", help="only datasets with one of these tags or domains")
    run.add_argument("--model", nargs="+", metavar="NAME", help="only these models (see `occam-bench ladder`)")
    run.add_argument("--folds", type=int, default=5, help="folds per repeat (default 5)")
    run.add_argument("--repeats", type=int, default=2, help="repeats of k-fold (default 2)")
    run.add_argument("--seed", type=int, default=0, help="base seed of splits and models (default 0)")
    run.add_argument("--max-samples", type=int, help="subsample each dataset to at most this many samples")
    run.add_argument("--compute-budget", type=float,
                     help="largest estimated training cost of one network run, in floating-point operations "
                          "(default 6e11)")
    run.add_argument("--time-limit", type=float, metavar="SECONDS", help="time limit per run in seconds")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    run.add_argument("--threads", type=int, help="BLAS and torch threads per worker (default: cores / workers)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address such as tcp://HOST:8786")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"results database (default {DEFAULT_RESULTS})")
    run.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help=f"reports folder (default {DEFAULT_REPORTS})")
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="rebuild the reports from the results database, without fitting")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    report.add_argument("--reports", type=Path, default=DEFAULT_REPORTS)
    report.set_defaults(handler=_report)

    ladder = commands.add_parser("ladder", help="print every rung with its parameter count for a data shape")
    ladder.add_argument("--n-features", type=int, required=True, help="input features after encoding")
    ladder.add_argument("--n-classes", type=int, default=2, help="classes; 0 or 1 means regression (default 2)")
    ladder.add_argument("--n-samples", type=int, default=100, help="training samples (default 100)")
    ladder.set_defaults(handler=_ladder)

    add_analysis_commands(commands)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="datasets file (default datasets.yaml)")
    parser.add_argument("--data-dir", type=Path,
                        help=f"folder of Parquet files in the data pack layout (default ${DATA_DIR_ENV})")
    parser.add_argument("--cache-dir", type=Path, help="cache of fetched datasets (default ~/.cache/occam-bench)")


def _data_dir(args) -> Path | None:
    if args.data_dir is not None:
        path = args.data_dir
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    else:
        return None
    if not path.is_dir():
        raise ValueError(f"data directory not found: {path}; pass --data-dir DIR or set {DATA_DIR_ENV}")
    return path.resolve()


def _run(args) -> int:
    from bench.report import write_reports
    from bench.results import ResultsStore
    from bench.runner import Settings, run_benchmark
    from bench.runs import DEFAULT_COMPUTE_BUDGET
    from bench.splits import Protocol
    from models import get_rungs

    config = load_config(args.datasets)
    specs = config.select(args.dataset, args.tag)
    if not specs:
        raise ValueError(f"no dataset selected from {args.datasets} (--dataset {args.dataset}, --tag {args.tag})")
    rungs = get_rungs(args.model)
    settings = Settings(
        protocol=Protocol(n_folds=args.folds, n_repeats=args.repeats, seed=args.seed),
        data_dir=_data_dir(args),
        cache_dir=args.cache_dir,
        compute_budget=args.compute_budget if args.compute_budget is not None else DEFAULT_COMPUTE_BUDGET,
        time_limit_s=args.time_limit,
        max_samples=args.max_samples,
        n_workers=args.workers,
        n_threads=args.threads,
        scheduler=args.scheduler,
    )
    with ResultsStore(args.results) as store:
        summary = run_benchmark(specs, rungs, store, settings)
        written = write_reports(store, args.reports)
    print(f"{summary.n_total} runs: {summary.n_ok} ok, {summary.n_failed} failed, {summary.n_skipped} skipped, "
          f"{summary.n_cached} already finished")
    print(f"results: {args.results}")
    print(f"reports: {args.reports}/ ({', '.join(p.name for p in written)})")
    failed_models = summary.models_all_failed()
    if failed_models:
        print(f"occam-bench: error: every run of model(s) {failed_models} failed; see the failure summary above",
              file=sys.stderr)
        return 1
    return 0


def _report(args) -> int:
    from bench.report import write_reports
    from bench.results import ResultsStore

    if not args.results.is_file():
        raise ValueError(f"results database not found: {args.results}; run `occam-bench run` first")
    with ResultsStore(args.results) as store:
        written = write_reports(store, args.reports)
    print(f"reports: {args.reports}/ ({', '.join(p.name for p in written)})")
    return 0


def _ladder(args) -> int:
    from tabulate import tabulate

    from bench.config import TaskType
    from models import NotApplicable, ladder
    from models.base import Shape

    if args.n_classes <= 1:
        task, n_classes = TaskType.REGRESSION, 0
    else:
        task, n_classes = (TaskType.BINARY if args.n_classes == 2 else TaskType.MULTICLASS), args.n_classes
    shape = Shape(task, args.n_features, n_classes, args.n_samples)
    rows = []
    for rung in ladder():
        try:
            rung.build(shape, 0)
            estimate = f"{rung.estimate(shape):.3g}"
            per_sample = f"{rung.estimate(shape) / shape.n_samples:.3g}"
        except NotApplicable as error:
            estimate, per_sample = "not applicable", str(error)
        rows.append([rung.name, rung.family, estimate, per_sample])
    print(tabulate(rows, headers=["model", "family", "n_parameters (estimate)", "params_per_sample"],
                   tablefmt="github", disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
