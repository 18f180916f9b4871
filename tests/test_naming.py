"""Tests of the names that `- openml: ID` entries without `name:` get from OpenML."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.config import ConfigError, load_config
from bench.data import find_in_data_dir
from bench.naming import load_named_config


@pytest.fixture
def openml_offline(tmp_path):
    """Point openml at an empty cache and at a closed port on 127.0.0.1, with one attempt per request."""
    import openml

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = (openml.config.get_cache_directory(), openml.config.server, openml.config.connection_n_retries)
    openml.config.set_root_cache_directory(tmp_path / "openml-cache")
    openml.config.server = f"http://127.0.0.1:{port}/api/v1/xml"
    openml.config.connection_n_retries = 1
    yield openml.config.server
    openml.config.set_root_cache_directory(Path(saved[0]).parents[2])
    openml.config.server, openml.config.connection_n_retries = saved[1], saved[2]


def _write_yaml(path: Path, body: str) -> Path:
    path.write_text("datasets:\n" + body, encoding="utf-8")
    return path


def _write_cache_metadata(cache_dir: Path, stem: str, dataset_id: int, name: str) -> None:
    folder = cache_dir / "tabular"
    folder.mkdir(parents=True)
    metadata = {"openml_id": dataset_id, "openml_name": name, "version": 1}
    (folder / f"{stem}.json").write_text(json.dumps(metadata), encoding="utf-8")


def test_id_entry_provisional_name_before_naming(tmp_path):
    config = load_config(_write_yaml(tmp_path / "datasets.yaml", "  - openml: 31\n"))

    assert config.datasets[0].name == "openml-31"
    assert config.datasets[0].name_from_openml


def test_named_entry_keeps_its_name(tmp_path, openml_offline):
    path = _write_yaml(tmp_path / "datasets.yaml", "  - name: german\n    openml: 31\n")

    config = load_named_config(path, cache_dir=tmp_path / "cache")

    assert config.names() == ["german"]
    assert not config.datasets[0].name_from_openml


def test_name_from_cache_metadata(tmp_path, openml_offline):
    cache = tmp_path / "cache"
    _write_cache_metadata(cache, "USCrime", 1089, "USCrime")
    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 1089\n")

    config = load_named_config(path, cache_dir=cache)

    assert config.names() == ["USCrime"]


def test_name_from_openml_client_cache(tmp_path, data_dir):
    import openml

    root = tmp_path / "openml-cache"
    shutil.copytree(data_dir / "openml-cache", root)
    saved = (openml.config.get_cache_directory(), openml.config.server)
    openml.config.set_root_cache_directory(root)
    openml.config.server = "https://test.openml.org/api/v1/xml"
    try:
        config = load_named_config(_write_yaml(tmp_path / "datasets.yaml", "  - openml: 2\n"),
                                   cache_dir=tmp_path / "cache")
    finally:
        openml.config.set_root_cache_directory(Path(saved[0]).parents[2])
        openml.config.server = saved[1]

    assert config.names() == ["anneal"]


def test_offline_name_from_data_dir_manifest(tmp_path, data_dir, openml_offline, caplog):
    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 1089\n  - openml: 61\n")

    with caplog.at_level(logging.WARNING, logger="bench.naming"):
        config = load_named_config(path, data_dir=data_dir, cache_dir=tmp_path / "cache")

    assert config.names() == ["us-crime", "iris"]
    unreached = [record for record in caplog.records if "reading the name of OpenML" in record.getMessage()]
    assert len(unreached) == 1, "the server is asked once, then taken as unreachable"
    assert any("set `name:` to keep the same name online and offline" in record.getMessage()
               for record in caplog.records)


def test_offline_without_any_source_keeps_provisional_name(tmp_path, openml_offline, caplog):
    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 31\n")

    with caplog.at_level(logging.WARNING, logger="bench.naming"):
        config = load_named_config(path, data_dir=None, cache_dir=tmp_path / "cache")

    assert config.names() == ["openml-31"]
    assert f"{path}:2: OpenML dataset 31 is named 'openml-31'" in caplog.text
    assert "run `occam-bench datasets fetch` online once, or set `name:`" in caplog.text


def test_openml_name_clash_names_both_lines(tmp_path, openml_offline):
    cache = tmp_path / "cache"
    _write_cache_metadata(cache, "credit-g", 31, "credit-g")
    path = _write_yaml(tmp_path / "datasets.yaml",
                       "  - name: credit-g\n    file: german.csv\n    target: class\n  - openml: 31\n")

    with pytest.raises(ConfigError) as error:
        load_named_config(path, cache_dir=cache)

    assert f"{path}:5: duplicate dataset name 'credit-g' (the OpenML dataset's name)" in str(error.value)
    assert "first defined at line 2" in str(error.value)


def test_select_by_openml_id_alias(tmp_path, openml_offline):
    cache = tmp_path / "cache"
    _write_cache_metadata(cache, "credit-g", 31, "credit-g")
    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 31\n  - name: iris\n    openml: 61\n")

    config = load_named_config(path, cache_dir=cache)

    assert [spec.name for spec in config.select(["openml-31"])] == ["credit-g"]
    assert [spec.name for spec in config.select(["openml-61"])] == ["iris"]


def test_data_dir_file_found_by_openml_id(data_dir):
    located = find_in_data_dir("USCrime", data_dir, openml_id=1089)

    assert located == data_dir / "tabular" / "us-crime.parquet"
    assert find_in_data_dir("USCrime", data_dir) is None


def test_one_line_entry_runs_offline_by_name(tmp_path, data_dir, openml_offline):
    datasets = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 61\n")
    results = tmp_path / "results.sqlite"

    code = main(["--quiet", "run", "--datasets", str(datasets), "--data-dir", str(data_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--dataset", "iris", "--model", "constant",
                 "--folds", "2", "--repeats", "1", "--workers", "1", "--no-progress",
                 "--results", str(results), "--reports", str(tmp_path / "reports")])

    assert code == 0
    with sqlite3.connect(results) as connection:
        frame = pd.read_sql_query("SELECT dataset, status FROM results", connection)
    assert set(frame["dataset"]) == {"iris"}
    assert (frame["status"] == "ok").all()


def test_report_names_entries_from_results(tmp_path, data_dir, openml_offline, monkeypatch):
    datasets = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 61\n    reference: Fisher 1936\n")
    results = tmp_path / "results.sqlite"
    assert main(["--quiet", "run", "--datasets", str(datasets), "--data-dir", str(data_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--model", "constant", "--folds", "2", "--repeats", "1",
                 "--workers", "1", "--no-progress", "--results", str(results),
                 "--reports", str(tmp_path / "reports")]) == 0
    monkeypatch.delenv("OCCAM_DATA_DIR", raising=False)

    code = main(["--quiet", "report", "--results", str(results), "--reports", str(tmp_path / "rebuilt"),
                 "--datasets", str(datasets)])

    bib = (tmp_path / "rebuilt" / "references.bib").read_text(encoding="utf-8")
    assert code == 0
    assert "@misc{occam-bench:iris," in bib
    assert "Fisher 1936" in bib
    assert r"\url{https://www.openml.org/d/61}" in bib


def test_report_without_datasets_file(tmp_path, data_dir, monkeypatch):
    results = tmp_path / "results.sqlite"
    datasets = _write_yaml(tmp_path / "datasets.yaml", "  - name: iris\n    openml: 61\n")
    assert main(["--quiet", "run", "--datasets", str(datasets), "--data-dir", str(data_dir),
                 "--model", "constant", "--folds", "2", "--repeats", "1", "--workers", "1", "--no-progress",
                 "--results", str(results), "--reports", str(tmp_path / "reports")]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    code = main(["--quiet", "report", "--results", str(results), "--reports", "rebuilt"])

    assert code == 0
    assert "No datasets file was given" in (elsewhere / "rebuilt" / "references.bib").read_text(encoding="utf-8")


def test_one_line_entry_takes_manifest_task(tmp_path, data_dir, openml_offline):
    from bench.config import TaskType
    from bench.data import load_dataset

    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 1089\n")
    (spec,) = load_named_config(path, data_dir=data_dir, cache_dir=tmp_path / "cache").datasets

    dataset = load_dataset(spec, data_dir=data_dir, cache_dir=tmp_path / "cache")

    assert dataset.name == "us-crime"
    assert dataset.task is TaskType.REGRESSION
    assert f"task regression as declared in {data_dir.name}/MANIFEST.yaml" in dataset.notes


def test_undeclared_integer_target_error_names_line(tmp_path):
    from bench.data import DataError, load_dataset

    table = tmp_path / "grades.csv"
    table.write_text("a,target\n" + "".join(f"{i},{i % 3}\n" for i in range(12)), encoding="utf-8")
    path = _write_yaml(tmp_path / "datasets.yaml", f"  - openml: 61\n    name: iris\n  - file: {table}\n")
    spec = load_config(path).datasets[1]

    with pytest.raises(DataError, match=r"declare the task type \(`task: binary`, `multiclass` or `regression` "
                                         r"in its entry at line 4 of datasets.yaml\)"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path / "cache")


def test_file_entry_errors_name_file_and_line(tmp_path):
    from bench.data import DataError, load_dataset

    table = tmp_path / "plain.csv"
    table.write_text("a,label\n1,x\n2,y\n", encoding="utf-8")
    path = tmp_path / "my-sets.yaml"
    path.write_text(f"datasets:\n  - file: {table}\n  - file: {tmp_path / 'absent.csv'}\n", encoding="utf-8")
    plain, absent = load_config(path).datasets

    with pytest.raises(DataError, match=r"set `target: COLUMN` in its entry at line 2 of my-sets.yaml"):
        load_dataset(plain, data_dir=None, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"absent.csv; check the `file:` of its entry at line 3 of my-sets.yaml"):
        load_dataset(absent, data_dir=None, cache_dir=tmp_path / "cache")


def test_provisional_name_failures_removed_once_named(tmp_path, data_dir, openml_offline):
    datasets = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 61\n")
    results = tmp_path / "results.sqlite"
    common = ["--datasets", str(datasets), "--cache-dir", str(tmp_path / "cache"), "--model", "constant",
              "--folds", "2", "--repeats", "1", "--workers", "1", "--no-progress", "--results", str(results),
              "--reports", str(tmp_path / "reports")]

    main(["--quiet", "run", *common])
    with sqlite3.connect(results) as connection:
        first = pd.read_sql_query("SELECT dataset, error_kind FROM results", connection)
    assert set(first["dataset"]) == {"openml-61"}
    assert set(first["error_kind"]) == {"data"}

    assert main(["--quiet", "run", "--data-dir", str(data_dir), *common]) == 0
    with sqlite3.connect(results) as connection:
        second = pd.read_sql_query("SELECT dataset, status FROM results", connection)
    assert set(second["dataset"]) == {"iris"}
    assert (second["status"] == "ok").all()


def test_silent_server_times_out(tmp_path, monkeypatch, caplog):
    import openml

    import bench.naming

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    saved = (openml.config.get_cache_directory(), openml.config.server, openml.config.connection_n_retries)
    openml.config.set_root_cache_directory(tmp_path / "openml-cache")
    openml.config.server = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1/xml"
    openml.config.connection_n_retries = 1
    monkeypatch.setattr(bench.naming, "NAME_LOOKUP_TIMEOUT_S", 1.0)
    path = _write_yaml(tmp_path / "datasets.yaml", "  - openml: 31\n  - openml: 61\n")
    try:
        with caplog.at_level(logging.WARNING, logger="bench.naming"):
            config = load_named_config(path, cache_dir=tmp_path / "cache")
    finally:
        listener.close()
        openml.config.set_root_cache_directory(Path(saved[0]).parents[2])
        openml.config.server, openml.config.connection_n_retries = saved[1], saved[2]

    assert config.names() == ["openml-31", "openml-61"]
    assert "gave no usable answer (TimeoutError: timed out: no response within 1 s)" in caplog.text
    assert caplog.text.count("reading the name of OpenML dataset") == 1
