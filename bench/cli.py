"""Command line: `occam-bench run`, `report`, `export`, `ladder`, `datasets`, `simulate`, `analyze`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench.analysis_cli import add_analysis_commands
from bench.config import ConfigError
from bench.data import DATA_DIR_ENV, DataError, resolve_data_dir
from bench.datasets_cli import add_datasets_parser
from bench.naming import load_named_config
from bench.workers import BenchmarkError

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
    except (ConfigError, DataError, ValueError, FileNotFoundError, BenchmarkError) as error:
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
    run.add_argument("--time-limit", type=float, metavar="SECONDS",
                     help="time limit per run in seconds; a run over it fails with error kind time_limit")
    run.add_argument("--memory-limit", type=float, metavar="MIB",
                     help="address-space limit per worker process in MiB (RLIMIT_AS, virtual memory; at least "
                          "1536, since importing torch takes about 1 GiB); a run over it fails with error kind memory")
    run.add_argument("--retry-failed", action="store_true",
                     help="run the failed runs of the results database again (by default a rerun skips them)")
    run.add_argument("--no-scaling", action="store_true",
                     help="leave numeric features unscaled (recorded in the results as scaling=0)")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar (default: only when stderr is a terminal)")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    run.add_argument("--threads", type=int, help="BLAS and torch threads per worker (default: cores / workers)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address such as tcp://HOST:8786")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"results database (default {DEFAULT_RESULTS})")
    run.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help=f"reports folder (default {DEFAULT_REPORTS})")
    run.set_defaults(handler=_run)

    export = commands.add_parser("export", help="write every result of the results database to CSV or Parquet")
    export.add_argument("output", type=Path, help="output file ending in .csv or .parquet")
    export.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"results database (default {DEFAULT_RESULTS})")
    export.set_defaults(handler=_export)

    report = commands.add_parser("report", help="rebuild the reports from the results database, without fitting")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"results database to read (default {DEFAULT_RESULTS})")
    report.add_argument("--reports", type=Path, default=DEFAULT_REPORTS,
                        help=f"folder the reports are written to (default {DEFAULT_REPORTS})")
    report.add_argument("--datasets", type=Path,
                        help="datasets file whose `reference:` entries go into references.bib "
                             "(default datasets.yaml, when it exists)")
    report.set_defaults(handler=_report)

    compare = commands.add_parser("compare-reports",
                                  help="check that two report folders have the same tables, datasets and models "
                                       "(numbers are not compared, since they vary with the machine)")
    compare.add_argument("committed", type=Path, help="the reference reports folder, such as reports")
    compare.add_argument("regenerated", type=Path, help="the folder to check against it")
    compare.set_defaults(handler=_compare_reports)

    ladder = commands.add_parser("ladder", help="print every rung with its parameter count for a data shape")
    ladder.add_argument("--n-features", type=int, required=True, help="input features after encoding")
    ladder.add_argument("--n-classes", type=int, default=2, help="classes; 0 or 1 means regression (default 2)")
    ladder.add_argument("--n-samples", type=int, default=100, help="training samples (default 100)")
    ladder.set_defaults(handler=_ladder)

    add_datasets_parser(commands)
    add_analysis_commands(commands)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="datasets file (default datasets.yaml)")
    parser.add_argument("--data-dir", type=Path,
                        help=f"folder of Parquet files in the data pack layout (default ${DATA_DIR_ENV})")
    parser.add_argument("--cache-dir", type=Path, help="cache of fetched datasets (default ~/.cache/occam-bench)")


def _data_dir(args) -> Path | None:
    return resolve_data_dir(args.data_dir)


def _run(args) -> int:
    from bench.report import write_reports
    from bench.results import ResultsStore
    from bench.runner import Settings, run_benchmark
    from bench.runs import DEFAULT_COMPUTE_BUDGET
    from bench.splits import Protocol
    from models import get_rungs

    config = load_named_config(args.datasets, _data_dir(args), args.cache_dir)
    specs = config.select(args.dataset, args.tag)
    if not specs:
        raise ValueError(f"no dataset selected from {args.datasets} (--dataset {args.dataset}, --tag {args.tag})")
    rungs = get_rungs(args.model)
    settings = Settings(
        protocol=Protocol(n_folds=args.folds, n_repeats=args.repeats, seed=args.seed, scale=not args.no_scaling),
        retry_failed=args.retry_failed,
        data_dir=_data_dir(args),
        cache_dir=args.cache_dir,
        compute_budget=args.compute_budget if args.compute_budget is not None else DEFAULT_COMPUTE_BUDGET,
        time_limit_s=args.time_limit,
        memory_limit_mb=args.memory_limit,
        max_samples=args.max_samples,
        progress_bar=args.progress,
        n_workers=args.workers,
        n_threads=args.threads,
        scheduler=args.scheduler,
    )
    with ResultsStore(args.results) as store:
        summary = run_benchmark(specs, rungs, store, settings)
        written = write_reports(store, args.reports, config)
    earlier_failures = (f" ({summary.n_cached_failed} of them failed; --retry-failed runs them again)"
                        if summary.n_cached_failed else "")
    print(f"{summary.n_total} runs: {summary.n_ok} ok, {summary.n_failed} failed, {summary.n_skipped} skipped, "
          f"{summary.n_cached} already finished{earlier_failures}")
    print(f"results: {args.results}")
    print(f"reports: {args.reports}/ ({_listing(written, args.reports)})")
    failed_models = summary.models_all_failed()
    if failed_models:
        print(f"occam-bench: error: every run of model(s) {failed_models} failed; see the failure summary above",
              file=sys.stderr)
        return 1
    return 0


def _listing(written: list[Path], reports_dir: Path) -> str:
    """Return the written files as paths inside the reports folder, such as `figures/gap_vs_params_per_sample.png`."""
    return ", ".join(path.relative_to(reports_dir).as_posix() for path in written)


def _report(args) -> int:
    from bench.report import write_reports
    from bench.results import ResultsStore

    if not args.results.is_file():
        raise ValueError(f"results database not found: {args.results}; run `occam-bench run` first")
    with ResultsStore(args.results) as store:
        datasets = args.datasets or DEFAULT_DATASETS
        if args.datasets is None and not datasets.is_file():
            logger.warning("no %s here, so references.bib gets no reference texts; pass --datasets PATH", datasets)
            config = None
        else:
            # The report needs only the entries that have results, and those are named by the results.
            config = load_named_config(datasets, resolve_data_dir(None), known_names=store.openml_names(),
                                       use_server=False)
        written = write_reports(store, args.reports, config)
    print(f"reports: {args.reports}/ ({_listing(written, args.reports)})")
    return 0


def _export(args) -> int:
    from bench.results import ResultsStore

    if not args.results.is_file():
        raise ValueError(f"results database not found: {args.results}; run `occam-bench run` first")
    if args.output.suffix not in (".csv", ".parquet"):
        raise ValueError(f"export path {args.output} has suffix {args.output.suffix!r}; use .csv or .parquet")
    with ResultsStore(args.results) as store:
        path = store.export(args.output)
    print(f"exported: {path} (provenance: {path.with_suffix('.provenance.json')})")
    return 0


def _compare_reports(args) -> int:
    from bench.report_check import compare_reports

    differences = compare_reports(args.committed, args.regenerated)
    for line in differences:
        print(line)
    if differences:
        return 1
    print(f"{args.regenerated} has the same tables, datasets and models as {args.committed}")
    return 0


def _ladder(args) -> int:
    from tabulate import tabulate

    from bench.config import TaskType
    from models import COUNTING_RULES, NotApplicable, ladder
    from models.base import Shape

    for option, value in (("--n-features", args.n_features), ("--n-samples", args.n_samples)):
        if value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value}")
    if args.n_classes < 0:
        raise ValueError(f"--n-classes must be 0 or 1 for regression or at least 2 classes, got {args.n_classes}")
    if args.n_classes <= 1:
        task, n_classes = TaskType.REGRESSION, 0
    else:
        task, n_classes = (TaskType.BINARY if args.n_classes == 2 else TaskType.MULTICLASS), args.n_classes
    shape = Shape(task, args.n_features, n_classes, args.n_samples)

    applicable, not_applicable = [], []
    for rung in ladder():
        try:
            rung.build(shape, 0)
        except NotApplicable as error:
            not_applicable.append([rung.name, rung.family, "-", "-", f"not applicable: {error}"])
            continue
        applicable.append((rung.estimate(shape), rung))
    # A stable sort keeps the ladder order among rungs with equal estimates.
    applicable.sort(key=lambda pair: pair[0])
    rows = [[rung.name, rung.family, f"{estimate:.3g}", f"{estimate / shape.n_samples:.3g}", ""]
            for estimate, rung in applicable]
    rows += not_applicable
    print(f"task={task.value} n_features={shape.n_features} n_classes={n_classes} n_samples={shape.n_samples}; "
          "rungs sorted by their estimate for this shape, rungs that do not apply last")
    print(tabulate(rows, headers=["model", "family", "n_parameters", "params_per_sample", "note"],
                   tablefmt="github", disable_numparse=True))
    print()
    print("n_parameters: estimated raw parameter count before training; the fitted count can differ "
          "(sparse, tree and support-vector models depend on the data).")
    print("params_per_sample: n_parameters / n_samples.")
    print("Counting rules:")
    for rule in COUNTING_RULES.values():
        print(f"- {rule}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
