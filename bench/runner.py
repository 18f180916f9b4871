"""The benchmark grid: which runs to execute, where, and what to say about them."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet

from bench import provenance
from bench.config import DatasetSpec
from bench.data import DataError, default_cache_dir, file_sha256, find_in_data_dir
from bench.results import ResultsStore
from bench.runs import DEFAULT_COMPUTE_BUDGET, FAILED, OK, SKIPPED, RunKey, RunTask, execute_task, lost_task_rows
from bench.splits import Protocol
from bench.workers import BenchmarkError, plan_workers, set_memory_limit, set_thread_count, start_pool
from models import Rung

logger = logging.getLogger(__name__)

# Prefix of the recorded warning messages of solvers that stopped before convergence.
CONVERGENCE_WARNING = "ConvergenceWarning"

# Rungs whose every run is a task of its own, so that a long MLP fit is never queued
# behind another one in the same worker and an interrupted benchmark loses at most one run.
SINGLE_RUN_MIN_BUDGET = 1e6
# Address space a worker needs before its first run: importing torch, scikit-learn and pandas
# reserved 1.04 GiB of virtual memory (VmPeak) with torch 2.13 on Linux x86_64.
MIN_MEMORY_LIMIT_MB = 1536


@dataclass
class Settings:
    """Everything that decides which runs execute and how."""

    protocol: Protocol = Protocol()
    data_dir: Path | None = None
    cache_dir: Path | None = None
    compute_budget: float = DEFAULT_COMPUTE_BUDGET
    time_limit_s: float | None = None
    max_samples: int | None = None
    memory_limit_mb: float | None = None
    n_workers: int | None = None
    n_threads: int | None = None
    scheduler: str | None = None
    # None shows a tqdm progress bar only when stderr is a terminal.
    progress_bar: bool | None = None
    retry_failed: bool = False

    def __post_init__(self):
        for name in ("n_workers", "n_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} is invalid; use 1 or more")
        if not self.compute_budget > 0:
            raise ValueError(f"compute_budget={self.compute_budget} is invalid; use a positive number of flops")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s={self.time_limit_s} is invalid; use a positive number of seconds")
        if self.memory_limit_mb is not None and not self.memory_limit_mb >= MIN_MEMORY_LIMIT_MB:
            raise ValueError(f"memory_limit_mb={self.memory_limit_mb} is invalid; a worker needs at least "
                             f"{MIN_MEMORY_LIMIT_MB} MiB to import torch and scikit-learn")
        if self.max_samples is not None and self.max_samples < 2:
            raise ValueError(f"max_samples={self.max_samples} is invalid; use 2 or more samples")

    def protocol_fields(self) -> dict:
        """Return what decides the splits and the data of every run, stored with the results file."""
        return {
            "n_folds": self.protocol.n_folds,
            "n_repeats": self.protocol.n_repeats,
            "seed": self.protocol.seed,
            "scaling": self.protocol.scale,
            "max_samples": self.max_samples,
        }

    def describe(self) -> dict:
        return {
            "n_folds": self.protocol.n_folds,
            "n_repeats": self.protocol.n_repeats,
            "seed": self.protocol.seed,
            "scaling": self.protocol.scale,
            "compute_budget": self.compute_budget,
            "time_limit_s": self.time_limit_s,
            "memory_limit_mb": self.memory_limit_mb,
            "max_samples": self.max_samples,
            "scheduler": self.scheduler or "local processes",
        }


@dataclass
class Summary:
    """Counts of one benchmark execution and the failures, grouped."""

    n_total: int = 0
    n_cached: int = 0
    # Finished runs found in the results file that had failed; --retry-failed runs them again.
    n_cached_failed: int = 0
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    failures: dict[str, collections.Counter] = field(default_factory=dict)
    warnings: dict[tuple[str, str], collections.Counter] = field(default_factory=dict)
    runs_per_pair: collections.Counter = field(default_factory=collections.Counter)
    runs_per_model: collections.Counter = field(default_factory=collections.Counter)
    failed_per_model: collections.Counter = field(default_factory=collections.Counter)

    def models_all_failed(self) -> list[str]:
        return sorted(m for m, n in self.runs_per_model.items() if n and self.failed_per_model[m] == n)

    def record(self, row: dict) -> None:
        """Count one finished result row: its status, its failure message and its warnings."""
        model = row["model"]
        pair = (model, row["dataset"])
        self.runs_per_model[model] += 1
        self.runs_per_pair[pair] += 1
        if row["status"] == OK:
            self.n_ok += 1
        elif row["status"] == SKIPPED:
            self.n_skipped += 1
        else:
            self.n_failed += 1
            self.failed_per_model[model] += 1
            self.failures.setdefault(model, collections.Counter())[f"{row['error_kind']}: {row['error']}"] += 1
        # A run counts once per distinct warning message, however often it raised it.
        messages = json.loads(row.get("warnings") or "{}")
        if messages:
            self.warnings.setdefault(pair, collections.Counter()).update({message: 1 for message in messages})

    def warning_lines(self) -> list[str]:
        """Return one line per (model, dataset) and warning message, with how many runs raised it."""
        lines = []
        for (model, dataset), counter in sorted(self.warnings.items()):
            n_runs = self.runs_per_pair[(model, dataset)]
            for message, n_with in sorted(counter.items()):
                if message.startswith(CONVERGENCE_WARNING):
                    lines.append(f"{model} on {dataset}: not converged in {n_with}/{n_runs} fits ({message})")
                else:
                    lines.append(f"{model} on {dataset}: warning in {n_with}/{n_runs} runs: {message}")
        return lines

    def failure_lines(self) -> list[str]:
        """Return per model the failed-run count, then each distinct `error_kind: message` with its count."""
        lines = []
        for model, counter in sorted(self.failures.items()):
            lines.append(f"{model}: {sum(counter.values())}/{self.runs_per_model[model]} run(s) failed")
            for message, count in sorted(counter.items(), key=lambda item: (-item[1], item[0])):
                lines.append(f"    {count} x {message}")
        return lines


def plan_tasks(specs: list[DatasetSpec], rungs: list[Rung], settings: Settings, finished: set[str],
               provenance_id: str) -> tuple[list[RunTask], int]:
    """Return the tasks for every run not yet finished, and how many runs were already finished."""
    protocol = settings.protocol
    all_splits = [(repeat, fold) for repeat in range(protocol.n_repeats) for fold in range(protocol.n_folds)]
    tasks: list[tuple[float, int, RunTask]] = []
    n_cached = 0
    for order, spec in enumerate(specs):
        size = _dataset_size(spec, settings.data_dir)
        for rung in rungs:
            pending = tuple(s for s in all_splits if RunKey(spec.name, rung.name, *s).run_id not in finished)
            n_cached += len(all_splits) - len(pending)
            if not pending:
                continue
            budget = rung.config.get("budget", 0)
            groups = [(s,) for s in pending] if budget >= SINGLE_RUN_MIN_BUDGET else [pending]
            for group in groups:
                task = RunTask(spec, rung.name, group, protocol, settings.data_dir, settings.cache_dir,
                               settings.compute_budget, settings.time_limit_s, settings.max_samples, provenance_id)
                tasks.append((size, order, -budget, task))
    # The runs of one dataset stay together, because workers cache the last dataset they
    # loaded. The largest datasets go first, and within one dataset the largest rungs.
    tasks.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [item[-1] for item in tasks], n_cached


def _grid_run_ids(names: list[str], rungs: list[Rung], protocol: Protocol) -> set[str]:
    """Return the run ids of every run of the datasets `names` and the `rungs`."""
    return {RunKey(name, rung.name, repeat, fold).run_id
            for name in names for rung in rungs
            for repeat in range(protocol.n_repeats) for fold in range(protocol.n_folds)}


def _dataset_size(spec: DatasetSpec, data_dir: Path | None) -> float:
    located = find_in_data_dir(spec.name, data_dir, spec.openml_id)
    if located is None:
        return 0.0
    try:
        meta = pyarrow.parquet.read_metadata(located)
    except (OSError, pyarrow.ArrowInvalid):
        return 0.0
    return float(meta.num_rows) * float(meta.num_columns)


def run_benchmark(specs: list[DatasetSpec], rungs: list[Rung], store: ResultsStore, settings: Settings) -> Summary:
    """Execute every unfinished run of the grid, writing each result as it arrives."""
    # Start
    store.bind_protocol(settings.protocol_fields())
    _check_dataset_hashes(specs, store, settings.data_dir, settings.cache_dir)
    grid = _grid_run_ids([spec.name for spec in specs], rungs, settings.protocol)
    _forget_rerunnable(store, settings, specs, rungs, grid)
    provenance_id, content = provenance.collect(settings.describe())
    store.add_provenance(provenance_id, content)
    finished = store.finished_run_ids()
    tasks, n_cached = plan_tasks(specs, rungs, settings, finished, provenance_id)
    n_runs = sum(len(task.splits) for task in tasks)
    summary = Summary(n_total=n_runs + n_cached, n_cached=n_cached,
                      n_cached_failed=len(store.failed_run_ids() & grid))
    logger.info("benchmark: %d datasets x %d models: %d runs, %d already finished, %d to run",
                len(specs), len(rungs), summary.n_total, n_cached, n_runs)
    if not tasks:
        return summary

    # Execution
    progress = _Progress(summary, n_runs, settings.progress_bar)
    try:
        with progress.redirect_logging():
            if settings.scheduler:
                _run_on_dask(tasks, store, settings, progress)
            else:
                _run_locally(tasks, store, settings, progress)
    finally:
        progress.close()

    # Finish
    _log_summary(summary)
    return summary


def _check_dataset_hashes(specs: list[DatasetSpec], store: ResultsStore, data_dir: Path | None,
                          cache_dir: Path | None) -> None:
    """Raise if a dataset file changed since its results were stored: a data-directory file, or the
    table built from a `file:` entry (another file at that path, or the same file edited)."""
    stored = store.dataset_hashes()
    for spec in specs:
        if spec.name not in stored:
            continue
        located = find_in_data_dir(spec.name, data_dir, spec.openml_id)
        if located is not None:
            current, where = file_sha256(located), located
        elif spec.file is not None:
            current, where = _file_entry_sha256(spec, cache_dir), spec.file
            if current is None:
                continue
        else:
            # NOTE: a dataset fetched from OpenML or a URL is not checked here. Its cache file
            # is checked against its recorded sha256, or its pinned hash, when it is fetched.
            continue
        if stored[spec.name] != {current}:
            old = ", ".join(sorted(value[:12] for value in stored[spec.name]))
            raise ValueError(
                f"dataset {spec.name!r} changed since its results were stored in {store.path} "
                f"(sha256 {old} stored, {current[:12]} now from {where}); use another --results file"
            )


def _file_entry_sha256(spec: DatasetSpec, cache_dir: Path | None) -> str | None:
    """Return the sha256 of the table that a `file:` entry loads as now, or None when it fails to load."""
    # NOTE: this is the sha256 of the cache's Parquet file. A cache file rebuilt from an unchanged
    # source by another pandas or pyarrow version can differ in bytes, and then counts as a change.
    from bench.sources import fetch_canonical

    try:
        return fetch_canonical(spec, cache_dir or default_cache_dir()).sha256
    except DataError:
        return None  # the runs record the error


def _forget_rerunnable(store: ResultsStore, settings: Settings, specs: list[DatasetSpec], rungs: list[Rung],
                       grid: set[str]) -> None:
    """Delete the rows of `grid` that this execution runs again: failed runs with --retry-failed, runs
    whose data failed to load or split, and runs skipped by a compute budget that the current budget admits."""
    if settings.retry_failed:
        forgotten = store.forget("status = 'failed'", among=grid)
        if forgotten:
            logger.info("retrying %d failed run(s) (--retry-failed)", len(forgotten))
    # A data failure comes from the dataset or its entry, which the user may have fixed since,
    # and it fails again quickly when nothing changed.
    # A data failure stored under the provisional name `openml-<ID>` of an entry that has its
    # OpenML name now belongs to no run of the grid, so it is removed too.
    provisional_names = [f"openml-{spec.openml_id}" for spec in specs
                         if spec.name_from_openml and spec.name != f"openml-{spec.openml_id}"]
    provisional = _grid_run_ids(provisional_names, rungs, settings.protocol)
    reloaded = store.forget("status = 'failed' AND error_kind = 'data'", among=grid | provisional)
    if reloaded:
        logger.info("running again %d run(s) whose data failed to load before", len(reloaded))
    admitted = store.forget("status = 'skipped' AND error_kind = 'compute_budget' AND estimated_flops <= ?",
                            (settings.compute_budget,), among=grid)
    if admitted:
        logger.info("running %d run(s) skipped before by a smaller compute budget", len(admitted))


def _run_locally(tasks: list[RunTask], store: ResultsStore, settings: Settings, progress: "_Progress") -> None:
    n_workers, n_threads = plan_workers(settings.n_workers, settings.n_threads)
    logger.info("running on %d local worker process(es) with %d thread(s) each", n_workers, n_threads)
    from concurrent.futures import as_completed

    # NOTE: a worker killed from outside (the kernel's OOM killer, SIGKILL) breaks the whole
    # pool, so the benchmark stops with BrokenProcessPool. The finished results stay stored and
    # a rerun resumes, but the killed run is not recorded as failed. --memory-limit avoids this.
    with start_pool(n_workers, n_threads, settings.memory_limit_mb) as pool:
        futures = [pool.submit(execute_task, task) for task in tasks]
        try:
            for future in as_completed(futures):
                rows = future.result()
                store.add(rows)
                progress.update(rows)
        except BrokenProcessPool as error:
            for future in futures:
                future.cancel()
            limit = f" under --memory-limit {settings.memory_limit_mb:g} MiB" if settings.memory_limit_mb else ""
            raise BenchmarkError(
                f"a worker process died{limit} ({error}); the finished results are kept in {store.path} "
                f"and a rerun resumes. If this happens at start-up, raise --memory-limit or free memory"
            ) from error
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_on_dask(tasks: list[RunTask], store: ResultsStore, settings: Settings, progress: "_Progress") -> None:
    from distributed import Client, as_completed

    n_threads = settings.n_threads or 1
    try:
        client = Client(settings.scheduler, timeout="30s")
    except OSError as error:
        raise BenchmarkError(f"cannot connect to the Dask scheduler {settings.scheduler}: {error}; "
                             f"check --scheduler ADDRESS and that the scheduler is running") from error
    with client:
        # NOTE: workers that join after these calls keep their own thread and memory settings.
        client.run(set_thread_count, n_threads)
        if settings.memory_limit_mb is not None:
            client.run(set_memory_limit, settings.memory_limit_mb)
        logger.info("running on Dask scheduler %s with %d worker(s)", settings.scheduler,
                    len(client.scheduler_info()["workers"]))
        futures = [client.submit(execute_task, task, pure=False) for task in tasks]
        task_of = {future.key: task for future, task in zip(futures, tasks)}
        try:
            for future in as_completed(futures):
                try:
                    rows = future.result()
                except Exception as error:  # noqa: BLE001 - e.g. KilledWorker after a nanny's memory kill
                    logger.error("task %s / %s lost: %s: %s", task_of[future.key].spec.name,
                                 task_of[future.key].model, type(error).__name__, error)
                    rows = lost_task_rows(task_of[future.key], error)
                store.add(rows)
                progress.update(rows)
        except BaseException:
            client.cancel(futures)
            raise


class _Progress:
    """Reports running counts and the estimated time left: a log line per task, and a tqdm bar on a terminal."""

    def __init__(self, summary: Summary, n_runs: int, show_bar: bool | None = None):
        self.summary = summary
        self.n_runs = n_runs
        self.n_done = 0
        self.started = time.monotonic()
        if show_bar is None:
            show_bar = sys.stderr.isatty()
        self.bar = None
        if show_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=n_runs, unit="run", dynamic_ncols=True)

    def update(self, rows: list[dict]) -> None:
        summary = self.summary
        for row in rows:
            self.n_done += 1
            summary.record(row)
        elapsed = time.monotonic() - self.started
        remaining = self.n_runs - self.n_done
        eta = elapsed / self.n_done * remaining if self.n_done else 0.0
        first = rows[0] if rows else {"dataset": "?", "model": "?"}
        logger.info("[%d/%d] done %d, failed %d, skipped %d, cached %d, remaining %d, eta %s | %s / %s",
                    self.n_done, self.n_runs, summary.n_ok, summary.n_failed, summary.n_skipped, summary.n_cached,
                    remaining, _duration(eta), first["dataset"], first["model"])
        if self.bar is not None:
            self.bar.set_postfix(done=summary.n_ok, failed=summary.n_failed, skipped=summary.n_skipped,
                                 cached=summary.n_cached, refresh=False)
            self.bar.update(len(rows))

    def redirect_logging(self):
        """Return a context in which log lines print above the progress bar instead of through it."""
        if self.bar is None:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _log_summary(summary: Summary) -> None:
    for line in summary.warning_lines():
        logger.warning("%s", line)
    for line in summary.failure_lines():
        logger.warning("%s", line)
