"""Tests of the runner: failure isolation, warning capture, determinism, resuming after SIGKILL, Dask."""

from __future__ import annotations

import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bench.cli import main
from bench.config import DatasetSpec, TaskType
from bench.data import load_dataset
from bench.results import ResultsStore, without_volatile
from bench.runner import Settings, Summary, _log_summary, _Progress, plan_tasks, run_benchmark
from bench.runs import FAILED, OK, RunTask, execute_run, execute_task, lost_task_rows
from bench.splits import Protocol, make_splits
from bench.workers import start_pool
from models import ParameterCount, Rung, get_rungs

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
# A grid that runs in a few seconds on one core.
SMALL_DATASETS = ("iris", "labor")
SMALL_MODELS = ("constant", "decision_tree", "knn_5")


# ---- Helpers ----------------------------------------------------------------------

def _case_data_dir(tmp_path: Path, csv_path: Path, target: str, name: str) -> Path:
    """Write a fault case CSV as `<name>.parquet` with its target renamed to `target`."""
    frame = pd.read_csv(csv_path).rename(columns={target: "target"})
    folder = tmp_path / "cases"
    folder.mkdir(exist_ok=True)
    frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _run_rows(spec: DatasetSpec, rung: Rung, data_dir: Path, protocol: Protocol,
              time_limit_s: float | None = None) -> list[dict]:
    """Execute every split of the protocol with a rung that need not be on the ladder."""
    dataset = load_dataset(spec, data_dir)
    splits = make_splits(dataset.y, dataset.task, protocol, dataset.name)
    task = RunTask(spec, rung.name, tuple((s.repeat, s.fold) for s in splits), protocol, data_dir, None,
                   time_limit_s=time_limit_s)
    return [execute_run(task, rung, dataset, split) for split in splits]


class _FaultyEstimator:
    """An estimator that fails on purpose in the way its `fault` names."""

    def __init__(self, fault: str):
        self.fault = fault

    def fit(self, X, y):
        if self.fault == "raise":
            raise ValueError("fit failed on purpose")
        if self.fault == "sleep":
            time.sleep(30)
        if self.fault == "busy":
            # Many short Python steps, like the batches of a training loop.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.01)
        if self.fault == "memory_error":
            raise MemoryError("cannot allocate 8 GiB")
        if self.fault == "allocate_numpy":
            self.block_ = np.ones(2**30)  # 8 GiB of float64
        if self.fault == "allocate_torch":
            import torch

            self.block_ = torch.ones(2**31)  # 8 GiB of float32
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        if self.fault == "nan":
            return np.full(len(X), np.nan)
        return np.full(len(X), self.classes_[0])


def _faulty_rung(fault: str) -> Rung:
    return Rung(name=f"faulty_{fault}", family="test", build=lambda shape, seed: _FaultyEstimator(fault),
                count=lambda estimator, shape, X: ParameterCount(1), estimate=lambda shape: 1.0)


class _Float64LogisticRegression(LogisticRegression):
    """LogisticRegression on float64 input: with float32 input, lbfgs in scikit-learn 1.9.1
    stopped after 5 iterations on the unscaled C18 table without a ConvergenceWarning."""

    def fit(self, X, y):
        return super().fit(np.asarray(X, dtype=np.float64), y)


def _logistic_rung(max_iter: int) -> Rung:
    return Rung(name=f"logistic_{max_iter}", family="linear",
                build=lambda shape, seed: _Float64LogisticRegression(max_iter=max_iter),
                count=lambda estimator, shape, X: ParameterCount(estimator.coef_.size + 1),
                estimate=lambda shape: shape.n_features + 1.0)


def _short_mlp_rung() -> Rung:
    """The ladder's smallest torch MLP with 20 epochs, so that a fit takes well under a second."""
    from models import mlp

    def build(shape, seed):
        cls = mlp.TorchMLPClassifier if shape.task.is_classification else mlp.TorchMLPRegressor
        return cls(budget=100, task=shape.task.value, max_epochs=20, patience=20, random_state=seed)

    return Rung(name="mlp_short", family="mlp", build=build, count=mlp.count, estimate=lambda shape: 100.0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_faulty_on_labor(fault: str, data_dir: Path, time_limit_s: float | None = None) -> dict:
    """Execute one run of a faulty rung on labor; module-level so that worker processes can call it."""
    spec = DatasetSpec(name="labor", task=TaskType.BINARY)
    return _run_rows(spec, _faulty_rung(fault), data_dir, Protocol(n_folds=2, n_repeats=1), time_limit_s)[0]


def _write_datasets_yaml(path: Path) -> Path:
    path.write_text(
        "datasets:\n"
        "  - name: iris\n    task: multiclass\n    tags: [small]\n"
        "  - name: labor\n    task: binary\n"
        "  - name: sleep\n    task: regression\n"
        "  - name: alon\n    task: binary\n    domain: omics\n",
        encoding="utf-8",
    )
    return path


def _stable_results(path: Path) -> pd.DataFrame:
    with ResultsStore(path) as store:
        return without_volatile(store.frame())


# ---- Failure isolation --------------------------------------------------------------

@pytest.mark.parametrize("fault, error_kind, message", [
    ("raise", "exception", "ValueError: fit failed on purpose"),
    ("nan", "non_finite", "NonFiniteError: non-finite predictions"),
    ("memory_error", "memory", "MemoryError: cannot allocate 8 GiB"),
])
def test_execute_run_failure_becomes_row(data_dir, fault, error_kind, message):
    row = run_faulty_on_labor(fault, data_dir)
    assert row["status"] == FAILED
    assert row["error_kind"] == error_kind
    assert row["error"] == message
    assert row.get("test_score") is None


def test_execute_run_exception_keeps_traceback(data_dir):
    row = run_faulty_on_labor("raise", data_dir)
    assert "fit failed on purpose" in row["traceback"]
    assert "Traceback" in row["traceback"]


def test_time_limit_main_thread(data_dir):
    started = time.monotonic()
    row = run_faulty_on_labor("sleep", data_dir, time_limit_s=0.5)
    elapsed = time.monotonic() - started
    assert row["status"] == FAILED
    assert row["error_kind"] == "time_limit"
    assert row["error"] == "TimeLimitError: time limit of 0.5 s exceeded"
    assert elapsed < 10


def test_time_limit_other_thread(data_dir):
    # A Dask worker runs tasks in threads, where SIGALRM cannot be delivered.
    rows: list[dict] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: rows.append(run_faulty_on_labor("busy", data_dir, time_limit_s=0.5)))
    thread.start()
    thread.join(timeout=20)
    elapsed = time.monotonic() - started

    assert not thread.is_alive()
    assert rows[0]["error_kind"] == "time_limit"
    assert rows[0]["error"] == "TimeLimitError: time limit of 0.5 s exceeded"
    assert elapsed < 10


def test_time_limit_unused_leaves_thread_alive(data_dir):
    # A run that finishes within its limit must not receive the exception later.
    rows: list[dict] = []

    def work():
        rows.append(run_faulty_on_labor("raise", data_dir, time_limit_s=0.2))
        time.sleep(0.6)
        rows.append("still running")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=20)
    assert rows[1] == "still running"


@pytest.mark.parametrize("fault", ["allocate_numpy", "allocate_torch"])
def test_memory_limit_fails_run_in_worker(data_dir, fault):
    # 3 GiB of address space holds torch and the data but not an 8 GiB block.
    with start_pool(1, 1, memory_limit_mb=3072) as pool:
        row = pool.submit(run_faulty_on_labor, fault, data_dir).result(timeout=120)
        next_row = pool.submit(run_faulty_on_labor, "raise", data_dir).result(timeout=120)
    assert row["status"] == FAILED
    assert row["error_kind"] == "memory"
    assert next_row["error_kind"] == "exception"


def test_lost_task_rows_fail_every_run():
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    task = RunTask(spec, "constant", ((0, 0), (0, 1)), Protocol(n_folds=2, n_repeats=1), None, None)
    rows = lost_task_rows(task, RuntimeError("worker died"))
    assert [row["run_id"] for row in rows] == ["iris/constant/r0/f0", "iris/constant/r0/f1"]
    assert all(row["status"] == FAILED for row in rows)
    assert all(row["error_kind"] == "worker_lost" for row in rows)
    assert all(row["error"] == "RuntimeError: worker died" for row in rows)


# ---- Summaries of failures and warnings ---------------------------------------------

def test_summary_groups_identical_failures(data_dir):
    summary = Summary()
    protocol = Protocol(n_folds=2, n_repeats=2)
    for name in SMALL_DATASETS:
        spec = DatasetSpec(name=name, task=TaskType.MULTICLASS if name == "iris" else TaskType.BINARY)
        for rung in (_faulty_rung("raise"), _faulty_rung("nan"), get_rungs(["constant"])[0]):
            for row in _run_rows(spec, rung, data_dir, protocol):
                summary.record(row)

    assert summary.n_failed == 16
    assert summary.n_ok == 8
    assert summary.failure_lines() == [
        "faulty_nan: 8/8 run(s) failed",
        "    8 x non_finite: NonFiniteError: non-finite predictions",
        "faulty_raise: 8/8 run(s) failed",
        "    8 x exception: ValueError: fit failed on purpose",
    ]
    assert summary.models_all_failed() == ["faulty_nan", "faulty_raise"]


def test_convergence_warnings_reported_once(tmp_path, cases_dir, caplog):
    data_dir = _case_data_dir(tmp_path, cases_dir / "C18-convergence_flood.csv", "approved", "c18")
    spec = DatasetSpec(name="c18", task=TaskType.BINARY)
    summary = Summary()
    rows = _run_rows(spec, _logistic_rung(100), data_dir, Protocol(n_folds=5, n_repeats=3, scale=False))
    for row in rows:
        summary.record(row)

    assert len(rows) == 15
    assert all(row["status"] == OK for row in rows)
    assert not any(row["converged"] for row in rows)
    lines = summary.warning_lines()
    assert len(lines) == 1
    assert lines[0].startswith("logistic_100 on c18: not converged in 15/15 fits (ConvergenceWarning:")

    caplog.set_level(logging.WARNING, logger="bench.runner")
    _log_summary(summary)
    assert [record.getMessage() for record in caplog.records] == lines


def test_convergence_warnings_absent_with_scaling(tmp_path, cases_dir):
    data_dir = _case_data_dir(tmp_path, cases_dir / "C18-convergence_flood.csv", "approved", "c18")
    spec = DatasetSpec(name="c18", task=TaskType.BINARY)
    rows = _run_rows(spec, _logistic_rung(100), data_dir, Protocol(n_folds=5, n_repeats=3))
    assert all(row["converged"] for row in rows)
    assert all(row["n_warnings"] == 0 for row in rows)
    assert all(row["scaling"] for row in rows)


def test_unscaled_regression_mlp_fails_diverged(tmp_path, cases_dir):
    data_dir = _case_data_dir(tmp_path, cases_dir / "C21-unscaled_regression.csv", "yield", "c21")
    spec = DatasetSpec(name="c21", task=TaskType.REGRESSION)

    scaled = _run_rows(spec, _short_mlp_rung(), data_dir, Protocol(n_folds=2, n_repeats=1))
    unscaled = _run_rows(spec, _short_mlp_rung(), data_dir, Protocol(n_folds=2, n_repeats=1, scale=False))
    ridge_unscaled = execute_task(RunTask(spec, "l2_linear", ((0, 0), (0, 1)),
                                          Protocol(n_folds=2, n_repeats=1, scale=False), data_dir, None))

    assert [row["status"] for row in scaled] == [OK, OK]
    assert all(math.isfinite(row["test_score"]) for row in scaled)
    assert [row["status"] for row in unscaled] == [FAILED, FAILED]
    for row in unscaled:
        assert row["error_kind"] == "non_finite"
        assert "diverged" in row["error"]
        assert " at epoch " in row["error"]
        assert row["scaling"] is False
    assert [row["status"] for row in ridge_unscaled] == [OK, OK]


# ---- Determinism ----------------------------------------------------------------------

def test_mlp_results_repeat_bit_identical(tmp_path, cases_dir):
    data_dir = _case_data_dir(tmp_path, cases_dir / "C23-determinism.csv", "label", "c23")
    spec = DatasetSpec(name="c23", task=TaskType.BINARY)

    def frame_of(seed: int) -> pd.DataFrame:
        rows = _run_rows(spec, _short_mlp_rung(), data_dir, Protocol(n_folds=2, n_repeats=1, seed=seed))
        return without_volatile(pd.DataFrame(rows))

    first, second, other = frame_of(0), frame_of(0), frame_of(1)

    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert not first[["train_score", "test_score"]].equals(other[["train_score", "test_score"]])
    assert (first["seed"] != other["seed"]).all()
    for column in ("seed", "device", "torch_version", "deterministic_algorithms", "dataloader_workers"):
        assert first[column].notna().all(), column
    assert (first["device"] == "cpu").all()
    assert (first["dataloader_workers"] == 0).all()


def test_progress_logs_running_counts(caplog):
    summary = Summary(n_total=5, n_cached=1)
    progress = _Progress(summary, n_runs=4, show_bar=False)
    rows = [
        {"dataset": "iris", "model": "constant", "status": OK, "warnings": "{}"},
        {"dataset": "iris", "model": "constant", "status": FAILED, "error_kind": "exception", "error": "E: x",
         "warnings": "{}"},
    ]
    caplog.set_level(logging.INFO, logger="bench.runner")
    progress.update(rows)

    message = caplog.records[-1].getMessage()
    assert message.startswith("[2/4] done 1, failed 1, skipped 0, cached 1, remaining 2, eta ")
    assert message.endswith("| iris / constant")


# ---- Selection and planning -------------------------------------------------------------

def test_plan_tasks_skips_finished_runs():
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    rungs = get_rungs(["constant", "mlp_1e6"])
    settings = Settings(protocol=Protocol(n_folds=2, n_repeats=2))
    finished = {"iris/constant/r0/f0", "iris/mlp_1e6/r1/f1"}
    tasks, n_cached = plan_tasks([spec], rungs, settings, finished, "p")

    planned = sorted(f"{t.spec.name}/{t.model}/r{r}/f{f}" for t in tasks for r, f in t.splits)
    assert n_cached == 2
    assert len(planned) == 6
    assert not finished & set(planned)
    # Large networks run one split per task, so an interruption loses at most one such run.
    assert all(len(t.splits) == 1 for t in tasks if t.model == "mlp_1e6")


@pytest.mark.parametrize("kwargs, message", [
    ({"time_limit_s": 0}, r"time_limit_s=0 is invalid; use a positive number of seconds"),
    ({"memory_limit_mb": -1}, r"memory_limit_mb=-1 is invalid; a worker needs at least 1536 MiB"),
    ({"memory_limit_mb": 600}, r"memory_limit_mb=600 is invalid; a worker needs at least 1536 MiB"),
    ({"n_workers": 0}, r"n_workers=0 is invalid; use 1 or more"),
    ({"n_threads": 0}, r"n_threads=0 is invalid; use 1 or more"),
    ({"compute_budget": -1.0}, r"compute_budget=-1.0 is invalid; use a positive number of flops"),
    ({"max_samples": 1}, r"max_samples=1 is invalid; use 2 or more samples"),
])
def test_settings_invalid_values_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Settings(**kwargs)


def test_cli_run_selection_options(tmp_path, data_dir, capsys):
    datasets = _write_datasets_yaml(tmp_path / "datasets.yaml")
    results = tmp_path / "results.sqlite"
    code = main(["--quiet", "run", "--datasets", str(datasets), "--data-dir", str(data_dir),
                 "--tag", "small", "omics", "--model", "constant", "knn_5", "--max-samples", "30",
                 "--folds", "3", "--repeats", "2", "--workers", "1", "--no-progress",
                 "--results", str(results), "--reports", str(tmp_path / "reports")])
    frame = _stable_results(results)
    printed = capsys.readouterr().out

    assert code == 0
    assert "figures/" in printed, "the written figures are listed with their folder"
    assert sorted(frame["dataset"].unique()) == ["alon", "iris"]
    assert sorted(frame["model"].unique()) == ["constant", "knn_5"]
    assert sorted(frame["fold"].unique()) == [0, 1, 2]
    assert sorted(frame["repeat"].unique()) == [0, 1]
    assert len(frame) == 2 * 2 * 3 * 2
    assert (frame["n_train_samples"] == 20).all()
    assert (frame["max_samples"] == 30).all()

    # --dataset narrows the same file; a rerun finds every run finished.
    code = main(["--quiet", "run", "--datasets", str(datasets), "--data-dir", str(data_dir), "--dataset", "iris",
                 "--model", "constant", "--max-samples", "30", "--folds", "3", "--repeats", "2", "--no-progress",
                 "--results", str(results), "--reports", str(tmp_path / "reports")])
    assert code == 0
    pd.testing.assert_frame_equal(_stable_results(results), frame)


def test_cli_run_unknown_dataset_exits_2(tmp_path, data_dir, capsys):
    datasets = _write_datasets_yaml(tmp_path / "datasets.yaml")
    code = main(["run", "--datasets", str(datasets), "--data-dir", str(data_dir), "--dataset", "nope",
                 "--results", str(tmp_path / "r.sqlite")])
    assert code == 2
    assert "dataset(s) ['nope'] not found" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_export_writes_file(tmp_path, suffix):
    results = tmp_path / "r.sqlite"
    with ResultsStore(results) as store:
        store.add([{"run_id": "iris/constant/r0/f0", "dataset": "iris", "model": "constant", "repeat": 0,
                    "fold": 0, "status": "ok", "test_score": 0.3}])
    output = tmp_path / f"out{suffix}"
    assert main(["export", str(output), "--results", str(results)]) == 0
    exported = pd.read_csv(output) if suffix == ".csv" else pd.read_parquet(output)
    assert exported["run_id"].tolist() == ["iris/constant/r0/f0"]


def test_cli_export_bad_suffix_exits_2(tmp_path, capsys):
    results = tmp_path / "r.sqlite"
    ResultsStore(results).close()
    assert main(["export", str(tmp_path / "out.json"), "--results", str(results)]) == 2
    assert "suffix '.json'; use .csv or .parquet" in capsys.readouterr().err


# ---- Resuming after SIGKILL ------------------------------------------------------------

def _cli_run_command(data_dir: Path, results: Path, reports: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "--quiet", "run", "--data-dir", str(data_dir),
            "--dataset", "iris", "labor", "sleep",
            "--model", "constant", "decision_tree", "knn_5", "l2_linear",
            "--folds", "2", "--repeats", "2", "--workers", "1", "--no-progress",
            "--results", str(results), "--reports", str(reports)]


def _count_rows(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # file or table not created yet
        return 0


def test_benchmark_resumes_after_sigkill(tmp_path, data_dir):
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)}
    interrupted = tmp_path / "interrupted.sqlite"
    reference = tmp_path / "reference.sqlite"

    process = subprocess.Popen(_cli_run_command(data_dir, interrupted, tmp_path / "reports_a"),
                               cwd=REPOSITORY_ROOT, env=environment, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _count_rows(interrupted) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    still_running = process.poll() is None
    # The whole process group, so the pool's worker dies with the main process.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored_before_kill = _stable_results(interrupted)

    assert still_running, "the benchmark finished before it could be killed; enlarge the grid"
    assert 0 < len(stored_before_kill) < 48

    subprocess.run(_cli_run_command(data_dir, interrupted, tmp_path / "reports_a"), cwd=REPOSITORY_ROOT,
                   env=environment, check=True, capture_output=True)
    subprocess.run(_cli_run_command(data_dir, reference, tmp_path / "reports_b"), cwd=REPOSITORY_ROOT,
                   env=environment, check=True, capture_output=True)
    resumed = _stable_results(interrupted)
    expected = _stable_results(reference)

    assert len(resumed) == 48
    assert resumed["run_id"].is_unique
    # An INTEGER column that is NULL in every row of a subset reads back as object dtype.
    resumed_subset = resumed[resumed["run_id"].isin(stored_before_kill["run_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed_subset, stored_before_kill, check_dtype=False)
    pd.testing.assert_frame_equal(resumed, expected, check_exact=True)


# ---- Dask --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_matches_local_results(tmp_path, data_dir, dask_cluster):
    specs = [DatasetSpec(name="iris", task=TaskType.MULTICLASS), DatasetSpec(name="labor", task=TaskType.BINARY)]
    rungs = get_rungs(list(SMALL_MODELS))
    protocol = Protocol(n_folds=2, n_repeats=1)

    with ResultsStore(tmp_path / "local.sqlite") as store:
        local = run_benchmark(specs, rungs, store, Settings(protocol=protocol, data_dir=data_dir, n_workers=1,
                                                            progress_bar=False))
    with ResultsStore(tmp_path / "dask.sqlite") as store:
        on_dask = run_benchmark(specs, rungs, store, Settings(protocol=protocol, data_dir=data_dir,
                                                              scheduler=dask_cluster.scheduler_address,
                                                              progress_bar=False))

    assert dask_cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert local.n_ok == on_dask.n_ok == 12
    pd.testing.assert_frame_equal(_stable_results(tmp_path / "dask.sqlite"), _stable_results(tmp_path / "local.sqlite"),
                                  check_exact=True)


def test_dask_worker_time_limit(data_dir, dask_cluster):
    from distributed import Client

    with Client(dask_cluster) as client:
        future = client.submit(run_faulty_on_labor, "busy", data_dir, 0.5, pure=False)
        row = future.result(timeout=60)
    assert row["error_kind"] == "time_limit"
    assert row["error"] == "TimeLimitError: time limit of 0.5 s exceeded"


def _iris_settings(data_dir: Path, **kwargs) -> Settings:
    options = dict(protocol=Protocol(n_folds=2, n_repeats=1), data_dir=data_dir, n_workers=1, n_threads=1,
                   progress_bar=False)
    options.update(kwargs)
    return Settings(**options)


def test_rerun_other_protocol_raises(tmp_path, data_dir):
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(data_dir))
        other = _iris_settings(data_dir, protocol=Protocol(n_folds=3, n_repeats=1))
        with pytest.raises(ValueError, match=r"holds runs of another protocol: n_folds=2 \(requested 3\)"):
            run_benchmark([spec], get_rungs(["constant"]), store, other)
        assert len(store.frame()) == 2


def test_rerun_retry_failed_runs_again(tmp_path, data_dir):
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(data_dir))
        store.connection.execute("UPDATE results SET status='failed', error='RuntimeError: on purpose' WHERE fold=0")
        store.connection.commit()

        summary = run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(data_dir))
        assert summary.n_cached == 2
        assert summary.n_cached_failed == 1
        summary = run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(data_dir, retry_failed=True))
        assert summary.n_cached == 1
        assert summary.n_ok == 1
        assert set(store.frame()["status"]) == {OK}


def test_rerun_after_data_fix_runs_again(tmp_path, data_dir):
    broken = DatasetSpec(name="iris", task=TaskType.REGRESSION)
    other = DatasetSpec(name="sonar", task=TaskType.REGRESSION)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run_benchmark([broken, other], get_rungs(["constant"]), store, _iris_settings(data_dir))
        assert set(store.frame()["error_kind"]) == {"data"}

        fixed = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
        summary = run_benchmark([fixed], get_rungs(["constant"]), store, _iris_settings(data_dir))

        frame = store.frame()
        assert summary.n_ok == 2
        assert summary.n_cached == 0
        assert set(frame.loc[frame["dataset"] == "iris", "status"]) == {OK}
        assert set(frame.loc[frame["dataset"] == "sonar", "error_kind"]) == {"data"}, "runs outside the selection stay"


def test_rerun_edited_file_entry_raises(tmp_path, data_dir):
    table = tmp_path / "plants.csv"
    rows = pd.read_parquet(data_dir / "tabular" / "iris.parquet")
    rows.iloc[::2].to_csv(table, index=False)
    spec = DatasetSpec(name="plants", file=str(table), task=TaskType.MULTICLASS)
    settings = _iris_settings(data_dir, cache_dir=tmp_path / "cache")
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run_benchmark([spec], get_rungs(["constant"]), store, settings)
        assert set(store.frame()["status"]) == {OK}

        rows.to_csv(table, index=False)
        with pytest.raises(ValueError, match=r"dataset 'plants' changed since its results were stored .* now from "):
            run_benchmark([spec], get_rungs(["constant"]), store, settings)
        assert len(store.frame()) == 2


def test_rerun_larger_budget_runs_skipped(tmp_path, data_dir):
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    rungs = get_rungs(["mlp_1e3"])
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_benchmark([spec], rungs, store, _iris_settings(data_dir, compute_budget=1.0))
        assert summary.n_skipped == 2
        assert set(store.frame()["error_kind"]) == {"compute_budget"}

        summary = run_benchmark([spec], rungs, store, _iris_settings(data_dir))
        assert summary.n_ok == 2
        assert set(store.frame()["status"]) == {OK}


def test_rerun_changed_dataset_raises(tmp_path, data_dir):
    pack = tmp_path / "pack"
    pack.mkdir()
    table = pd.read_parquet(data_dir / "tabular" / "iris.parquet")
    table.to_parquet(pack / "iris.parquet")
    spec = DatasetSpec(name="iris", task=TaskType.MULTICLASS)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(pack))
        table.iloc[:100].to_parquet(pack / "iris.parquet")
        with pytest.raises(ValueError, match="dataset 'iris' changed since its results were stored"):
            run_benchmark([spec], get_rungs(["constant"]), store, _iris_settings(pack))
