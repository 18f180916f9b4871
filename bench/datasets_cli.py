"""The `occam-bench datasets list|check|fetch` subcommands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from bench.config import DatasetSpec
from bench.data import (
    DATA_DIR_ENV,
    DataError,
    default_cache_dir,
    find_in_data_dir,
    load_dataset,
    resolve_data_dir,
)
from bench.naming import load_named_config

logger = logging.getLogger(__name__)

LIST_HEADERS = ["dataset", "n", "p", "classes", "task", "domain", "source", "read from"]


def add_datasets_parser(commands) -> None:
    """Add the `datasets` subcommand and its `list`, `check` and `fetch` actions to `commands`."""
    datasets = commands.add_parser("datasets", help="list, check or fetch the datasets of datasets.yaml")
    actions = datasets.add_subparsers(dest="action", required=True)

    list_parser = actions.add_parser("list", help="print n, p, classes, task, domain and source of each dataset")
    check_parser = actions.add_parser("check", help="validate datasets.yaml and load every reachable dataset")
    fetch_parser = actions.add_parser("fetch", help="fill the cache from each dataset's source, for offline runs")
    for parser, handler in ((list_parser, _list), (check_parser, _check), (fetch_parser, _fetch)):
        parser.add_argument("--datasets", type=Path, default=Path("datasets.yaml"),
                            help="datasets file (default datasets.yaml)")
        parser.add_argument("--data-dir", type=Path,
                            help=f"read-only folder of Parquet files in the data pack layout (default ${DATA_DIR_ENV})")
        parser.add_argument("--cache-dir", type=Path, help="cache of fetched datasets (default ~/.cache/occam-bench)")
        parser.add_argument("--dataset", nargs="+", metavar="NAME", help="only these datasets")
        parser.add_argument("--tag", nargs="+", metavar="TAG", help="only datasets with one of these tags or domains")
        parser.set_defaults(handler=handler)


def _selected(args) -> tuple[list[DatasetSpec], Path | None, Path]:
    data_dir = resolve_data_dir(args.data_dir)
    cache_dir = args.cache_dir or default_cache_dir()
    config = load_named_config(args.datasets, data_dir, cache_dir)
    return config.select(args.dataset, args.tag), data_dir, cache_dir


def _is_reachable(spec: DatasetSpec, data_dir: Path | None, cache_dir: Path) -> bool:
    """Return whether `spec` loads without the network: data directory, cache or local file."""
    from bench.sources import cache_paths

    return (find_in_data_dir(spec.name, data_dir, spec.openml_id) is not None
            or cache_paths(spec, cache_dir)[0].is_file()
            or spec.file is not None)


def _list(args) -> int:
    from tabulate import tabulate

    specs, data_dir, cache_dir = _selected(args)
    rows = []
    for spec in specs:
        if not _is_reachable(spec, data_dir, cache_dir):
            rows.append([spec.name, "", "", "", spec.task.value if spec.task else "", spec.domain,
                         spec.describe_source(), "not fetched"])
            continue
        try:
            dataset = load_dataset(spec, data_dir, cache_dir)
        except DataError as error:
            rows.append([spec.name, "", "", "", "", spec.domain, spec.describe_source(), f"error: {error}"])
            continue
        located = find_in_data_dir(spec.name, data_dir, spec.openml_id)
        rows.append([spec.name, dataset.n_samples, dataset.n_features, dataset.n_classes or "", dataset.task.value,
                     dataset.domain, spec.describe_source(), "data dir" if located else "cache"])
    print(tabulate(rows, headers=LIST_HEADERS, tablefmt="github", disable_numparse=True))
    return 0


def _check(args) -> int:
    specs, data_dir, cache_dir = _selected(args)
    print(f"{args.datasets}: {len(specs)} dataset entries are valid")
    n_loaded, n_unreachable, failures = 0, 0, []
    for spec in specs:
        if not _is_reachable(spec, data_dir, cache_dir):
            n_unreachable += 1
            continue
        try:
            load_dataset(spec, data_dir, cache_dir)
            n_loaded += 1
        except DataError as error:
            failures.append(f"{spec.name}: {error}")
    hint = " (run `occam-bench datasets fetch` to fill the cache)" if n_unreachable else ""
    print(f"loaded {n_loaded}, failed {len(failures)}, not fetched {n_unreachable}{hint}")
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _fetch(args) -> int:
    from bench.sources import fetch_canonical

    specs, data_dir, cache_dir = _selected(args)
    n_fetched, n_present, failures = 0, 0, []
    for spec in specs:
        if find_in_data_dir(spec.name, data_dir, spec.openml_id) is not None:
            n_present += 1
            continue
        try:
            canonical = fetch_canonical(spec, cache_dir)
            logger.info("dataset %s: cached at %s", spec.name, canonical.path)
            n_fetched += 1
        except DataError as error:
            failures.append(f"{spec.name}: {error}")
    print(f"cache {cache_dir}: {n_fetched} cached, {n_present} already in the data directory, {len(failures)} failed")
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    return 1 if failures else 0

