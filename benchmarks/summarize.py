"""Print Markdown tables of a speed benchmark JSON file written by pytest-benchmark.

Usage: python -m benchmarks.summarize benchmarks/results/speed-cpu-2core.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(path: Path) -> str:
    """Build Markdown text: the machine, small-rung speed-ups, large-rung throughput, ladder times."""
    data = json.loads(path.read_text())
    by_name = {benchmark["name"]: benchmark for benchmark in data["benchmarks"]}
    lines = [_machine(data), ""]

    lines += ["| rung | per-fold (s) | stacked (s) | stacked speed-up |", "|---|---:|---:|---:|"]
    for name, benchmark in by_name.items():
        if not name.startswith("test_small_rung_training[per_fold-"):
            continue
        rung = name.split("-", 1)[1].rstrip("]")
        stacked = by_name.get(name.replace("per_fold-", "stacked-"))
        if stacked is None:
            continue
        per_fold_s, stacked_s = benchmark["stats"]["min"], stacked["stats"]["min"]
        lines.append(f"| {rung} | {per_fold_s:.2f} | {stacked_s:.2f} | {per_fold_s / stacked_s:.1f}x |")
    lines.append("")

    lines += ["| rung | layer shapes | MLP training (GFLOP/s) | plain matmul (GFLOP/s) | MLP / matmul |",
              "|---|---|---:|---:|---:|"]
    for name, benchmark in by_name.items():
        if not name.startswith("test_large_rung_throughput[mlp_training-"):
            continue
        matmul = by_name.get(name.replace("mlp_training-", "plain_matmul-"))
        if matmul is None:
            continue
        rung = name.split("-", 1)[1].rstrip("]")
        mlp_rate = benchmark["extra_info"]["gflop_per_s"]
        matmul_rate = matmul["extra_info"]["gflop_per_s"]
        shapes = " ".join(f"{n_in}x{n_out}" for n_in, n_out in benchmark["extra_info"]["layer_shapes"])
        lines.append(f"| {rung} | {shapes} | {mlp_rate:.1f} | {matmul_rate:.1f} | {mlp_rate / matmul_rate:.0%} |")
    lines.append("")

    ladder = by_name.get("test_ladder_on_omics_dataset")
    if ladder is not None:
        info = ladder["extra_info"]
        lines += [f"Whole ladder on {info['dataset']} ({info['n_folds']} folds x {info['n_repeats']} repeat): "
                  f"{ladder['stats']['min']:.1f} s", "", "| rung | time (s) | status |", "|---|---:|---|"]
        for rung, time_s in info["rung_time_s"].items():
            lines.append(f"| {rung} | {time_s:.2f} | {', '.join(info['rung_status'][rung])} |")
    return "\n".join(lines)


def _machine(data: dict) -> str:
    machine = data["machine_info"]
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    commit = data.get("commit_info", {})
    return (
        f"Machine: {cpu}, {machine.get('n_cores')} cores, Python {machine.get('python_version')}, "
        f"torch {machine.get('torch_version')} on 1 thread, CUDA device: {machine.get('cuda_device')}, "
        f"1-minute load average at start: {machine.get('load_average_1min'):.1f}. "
        f"Run {data.get('datetime', '?')[:19]} UTC at commit {commit.get('id', '?')[:10]}"
        f"{' (dirty)' if commit.get('dirty') else ''}."
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m benchmarks.summarize BENCHMARK_JSON")
    print(summarize(Path(sys.argv[1])))
