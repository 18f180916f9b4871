"""Fixtures of the speed benchmarks: the data pack, one thread per process, machine details."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import data_dir  # noqa: F401 - re-exported as a fixture


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Workers of `bench.cli run` train with one torch and BLAS thread each, so the suite measures that.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch_version"] = torch.__version__
    machine_info["torch_threads"] = 1
    machine_info["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    machine_info["n_cores"] = os.cpu_count()
    # One-minute load average at the start: a value above the core count means other work ran too.
    machine_info["load_average_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
