"""Tests of the cache: canonical files, metadata, corrupt entries, and `url:` downloads over loopback."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.config import DatasetSpec, TaskType, load_config
from bench.data import TARGET, DataError, DataWarning, file_sha256, load_dataset
from bench.sources import cache_paths, fetch_canonical, read_rdata, table_sha256

C02 = "C02-integer_coded_classes.csv"


@pytest.fixture
def c02_spec(cases_dir, tmp_path) -> DatasetSpec:
    source = tmp_path / "source" / C02
    source.parent.mkdir()
    shutil.copy(cases_dir / C02, source)
    return DatasetSpec(name="c02", file=str(source), target="class", task=TaskType.MULTICLASS)


@pytest.fixture
def http_folder(tmp_path):
    """Serve a temporary folder over HTTP on 127.0.0.1 and yield (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


# ---- Canonical form ------------------------------------------------------------

def test_fetch_file_writes_canonical_parquet_and_metadata(c02_spec, tmp_path):
    cache = tmp_path / "cache"

    canonical = fetch_canonical(c02_spec, cache)

    path, metadata_path = cache_paths(c02_spec, cache)
    assert canonical.path == path == cache / "tabular" / "c02.parquet"
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["f1", "f2", "f3", "f4", TARGET]
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    assert metadata["sha256"] == file_sha256(path)
    assert metadata["source"] == "file"
    assert metadata["original_target"] == "class"
    assert metadata["feature_types"] == {"f1": "float64", "f2": "float64", "f3": "float64", "f4": "float64"}
    assert metadata["table_sha256"] == table_sha256(frame)
    assert metadata["source_sha256"] == file_sha256(Path(c02_spec.file))


def test_fetch_reuses_valid_cache(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_canonical(c02_spec, cache)
    written_at = first.path.stat().st_mtime_ns

    second = fetch_canonical(c02_spec, cache)

    assert second.path.stat().st_mtime_ns == written_at
    assert second.sha256 == first.sha256


def test_fetch_rebuilds_when_source_file_changes(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_canonical(c02_spec, cache)
    source = Path(c02_spec.file)
    source.write_text(source.read_text(encoding="utf-8").replace("\n1.", "\n2.", 1), encoding="utf-8")

    second = fetch_canonical(c02_spec, cache)

    assert second.sha256 != first.sha256


def test_fetch_rebuilds_for_same_name_other_folder(c02_spec, tmp_path, caplog):
    import dataclasses
    import logging

    cache = tmp_path / "cache"
    fetch_canonical(c02_spec, cache)
    other = tmp_path / "other" / Path(c02_spec.file).name
    other.parent.mkdir()
    shutil.copy(c02_spec.file, other)

    with caplog.at_level(logging.INFO, logger="bench.sources"):
        fetch_canonical(dataclasses.replace(c02_spec, file=str(other)), cache)

    assert f"it was built from {Path(c02_spec.file).resolve()}, the entry now names {other.resolve()}" in caplog.text
    assert "changed since it was cached" not in caplog.text


def test_fetch_rebuilds_when_target_changes(tmp_path):
    table = tmp_path / "two.csv"
    table.write_text("x,y1,y2\n" + "".join(f"{i},{i % 2},{i % 3}\n" for i in range(12)), encoding="utf-8")
    cache = tmp_path / "cache"
    first = DatasetSpec(name="two", file=str(table), target="y1", task=TaskType.BINARY)
    second = DatasetSpec(name="two", file=str(table), target="y2", task=TaskType.MULTICLASS)

    assert load_dataset(first, cache_dir=cache).n_classes == 2
    assert load_dataset(second, cache_dir=cache).n_classes == 3
    missing = DatasetSpec(name="two", file=str(table), target="nosuch")
    with pytest.raises(DataError, match="nosuch"):
        load_dataset(missing, cache_dir=cache)


@pytest.mark.parametrize("case", ["C07-empty.parquet", "C07-truncated.parquet"])
def test_fetch_corrupt_cache_rebuilt_once_with_warning(cases_dir, c02_spec, tmp_path, case):
    cache = tmp_path / "cache"
    fetch_canonical(c02_spec, cache)
    path, _ = cache_paths(c02_spec, cache)
    shutil.copy(cases_dir / case, path)

    with pytest.warns(DataWarning, match=rf"cache file {path} is invalid .*removed it and building it again"):
        dataset = load_dataset(c02_spec, data_dir=None, cache_dir=cache)

    assert dataset.n_samples == 30
    assert dataset.classes == ("1", "2", "3")
    assert pd.read_parquet(path).shape == (30, 5)


def test_fetch_cache_without_metadata_rebuilt(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    fetch_canonical(c02_spec, cache)
    path, metadata_path = cache_paths(c02_spec, cache)
    metadata_path.unlink()

    with pytest.warns(DataWarning, match=r"metadata file c02.json is missing"):
        fetch_canonical(c02_spec, cache)

    assert metadata_path.is_file()


def test_fetch_cache_with_changed_bytes_rebuilt(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    fetch_canonical(c02_spec, cache)
    path, _ = cache_paths(c02_spec, cache)
    pd.DataFrame({"f1": [1.0, 2.0], TARGET: ["1", "2"]}).to_parquet(path)

    with pytest.warns(DataWarning, match=r"its sha256 differs from the one recorded"):
        canonical = fetch_canonical(c02_spec, cache)

    assert pd.read_parquet(canonical.path).shape == (30, 5)


def test_fetch_without_source_names_data_dir_fix(tmp_path):
    spec = DatasetSpec(name="nowhere")

    with pytest.raises(DataError, match=r"'nowhere' has no source .*pass --data-dir DIR holding nowhere.parquet"):
        load_dataset(spec, data_dir=tmp_path, cache_dir=tmp_path / "cache")


# ---- url: sources over loopback ------------------------------------------------------

def _write_rdata(path: Path, n_samples: int = 6, n_features: int = 4) -> None:
    import rdata

    x = np.arange(n_samples * n_features, dtype=float).reshape(n_samples, n_features)
    y = pd.Categorical(["tumor", "normal"] * (n_samples // 2))
    rdata.write_rda(path, {"toy": {"x": x, "y": y}})


def test_read_rdata_microarray_layout(tmp_path):
    path = tmp_path / "toy.RData"
    _write_rdata(path)

    frame = read_rdata(path, "toy")

    assert list(frame.columns) == ["g00000", "g00001", "g00002", "g00003", TARGET]
    assert frame["g00000"].dtype == np.float32
    assert list(frame[TARGET].cat.categories) == ["normal", "tumor"]


R_FILES = Path(__file__).parent / "files" / "rdata"


@pytest.mark.parametrize("file_name, columns", [
    ("named_bzip2.RData", ["X1", "X2", "X3", "X4"]),
    ("unnamed_gzip.RData", ["g00000", "g00001", "g00002", "g00003"]),
    ("frame_xz.RData", ["X1", "X2", "X3", "X4"]),
])
def test_read_rdata_written_by_r(file_name, columns):
    expected = pd.read_csv(R_FILES / "expected.csv")

    frame = read_rdata(R_FILES / file_name, "toy")

    assert list(frame.columns) == [*columns, TARGET]
    assert list(frame.index) == list(range(6)), "row names of the R matrix are dropped"
    np.testing.assert_array_equal(frame[columns].to_numpy(), expected[["X1", "X2", "X3", "X4"]].to_numpy(np.float32))
    assert list(frame[TARGET].astype(str)) == list(expected["y"])
    assert list(frame[TARGET].cat.categories) == ["n", "t"]


@pytest.mark.filterwarnings("ignore:Unknown file type:UserWarning", "ignore:Wrong extension:UserWarning")
def test_read_rdata_invalid_file_raises(tmp_path):
    path = tmp_path / "broken.RData"
    path.write_bytes(b"not an R file")

    with pytest.raises(DataError, match=r"broken.RData is not a readable R data file"):
        read_rdata(path, "broken")


def test_fetch_url_rdata_with_table_hash(http_folder, tmp_path):
    folder, base_url = http_folder
    _write_rdata(folder / "toy.RData")
    expected = table_sha256(read_rdata(folder / "toy.RData", "toy"))
    spec = DatasetSpec(name="toy", url=f"{base_url}/toy.RData", reader="rdata", table_sha256=expected,
                       domain="omics", task=TaskType.BINARY)

    dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path / "cache")

    assert (dataset.n_samples, dataset.n_features) == (6, 4)
    assert dataset.classes == ("normal", "tumor")
    assert any(note.startswith("download sha256 not pinned") for note in dataset.notes)
    assert (tmp_path / "cache" / "omics" / "toy.parquet").is_file()


def test_fetch_url_table_hash_mismatch_raises(http_folder, tmp_path):
    folder, base_url = http_folder
    _write_rdata(folder / "toy.RData")
    spec = DatasetSpec(name="toy", url=f"{base_url}/toy.RData", reader="rdata", table_sha256="ab" * 32)

    with pytest.raises(DataError, match=r"has table sha256 [0-9a-f]{64}, the entry pins abab"):
        fetch_canonical(spec, tmp_path / "cache")

    assert not (tmp_path / "cache" / "tabular" / "toy.parquet").exists()


def test_fetch_url_csv_with_pinned_sha256(cases_dir, http_folder, tmp_path):
    folder, base_url = http_folder
    shutil.copy(cases_dir / C02, folder / C02)
    digest = hashlib.sha256((folder / C02).read_bytes()).hexdigest()
    spec = DatasetSpec(name="c02", url=f"{base_url}/{C02}", sha256=digest, target="class", task=TaskType.MULTICLASS)

    dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path / "cache")

    assert dataset.classes == ("1", "2", "3")
    assert not any("not pinned" in note for note in dataset.notes)


def test_fetch_url_sha256_mismatch_raises(cases_dir, http_folder, tmp_path):
    folder, base_url = http_folder
    shutil.copy(cases_dir / C02, folder / C02)
    spec = DatasetSpec(name="c02", url=f"{base_url}/{C02}", sha256="cd" * 32, target="class")

    with pytest.raises(DataError, match=r"sha256 of http://127.0.0.1:\d+/C02.* the entry pins cdcd"):
        fetch_canonical(spec, tmp_path / "cache")


def test_fetch_url_unreachable_keeps_cache(cases_dir, http_folder, tmp_path):
    folder, base_url = http_folder
    shutil.copy(cases_dir / C02, folder / C02)
    digest = hashlib.sha256((folder / C02).read_bytes()).hexdigest()
    spec = DatasetSpec(name="c02", url=f"{base_url}/{C02}", sha256=digest, target="class", task=TaskType.MULTICLASS)
    cache = tmp_path / "cache"
    fetch_canonical(spec, cache)
    (folder / C02).unlink()

    offline = load_dataset(spec, data_dir=None, cache_dir=cache)
    moved = DatasetSpec(name="c02", url=f"{base_url}/gone.csv", sha256=digest, target="class")
    with pytest.raises(DataError, match=r"download of http://127.0.0.1:\d+/gone.csv failed .*HTTP Error 404"):
        fetch_canonical(moved, cache)

    assert offline.n_samples == 30
    assert cache_paths(spec, cache)[0].is_file()


# ---- occam-bench datasets -------------------------------------------------------------

def _write_config(tmp_path: Path, cases_dir: Path) -> Path:
    shutil.copy(cases_dir / C02, tmp_path / C02)
    shutil.copy(cases_dir / "C01-bool_like_target.parquet", tmp_path / "defects.parquet")
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "datasets:\n"
        f"  - file: {C02}\n    target: class\n    task: multiclass\n"
        "  - file: defects.parquet\n    target: defects\n"
        "  - name: iris\n    openml: 61\n    task: multiclass\n",
        encoding="utf-8",
    )
    return path


def test_datasets_fetch_then_list(cases_dir, data_dir, tmp_path, capsys):
    config = _write_config(tmp_path, cases_dir)
    cache = tmp_path / "cache"
    common = ["--datasets", str(config), "--cache-dir", str(cache), "--data-dir", str(data_dir)]

    fetch_code = cli_main(["--quiet", "datasets", "fetch", *common])
    fetch_output = capsys.readouterr().out
    list_code = cli_main(["--quiet", "datasets", "list", *common])
    list_output = capsys.readouterr().out

    assert fetch_code == 0
    assert "2 cached, 1 already in the data directory, 0 failed" in fetch_output
    assert list_code == 0
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in list_output.splitlines()[2:]}
    assert rows["C02-integer_coded_classes"][:4] == ["30", "4", "3", "multiclass"]
    assert rows["defects"][:4] == ["24", "3", "2", "binary"]
    assert rows["iris"] == ["150", "4", "3", "multiclass", "tabular", "openml:61", "data dir"]


def test_datasets_check_reports_failures(cases_dir, tmp_path, capsys):
    config = _write_config(tmp_path, cases_dir)
    (tmp_path / "defects.parquet").write_bytes(b"")

    code = cli_main(["--quiet", "datasets", "check", "--datasets", str(config), "--cache-dir", str(tmp_path / "c")])
    captured = capsys.readouterr()

    assert code == 1
    assert "3 dataset entries are valid" in captured.out
    assert "loaded 1, failed 1, not fetched 1" in captured.out
    assert "defects: " in captured.err
    assert "not a valid Parquet file" in captured.err


def test_datasets_check_invalid_yaml_exits_2(tmp_path, capsys):
    config = tmp_path / "datasets.yaml"
    config.write_text("datasets:\n  - openml: 31\n    colour: red\n", encoding="utf-8")

    code = cli_main(["--quiet", "datasets", "check", "--datasets", str(config)])

    assert code == 2
    assert "unknown key(s) ['colour']" in capsys.readouterr().err


def test_datasets_list_pack_entries(data_dir, capsys):
    config = load_config(Path(__file__).resolve().parent.parent / "datasets.yaml")
    assert "us-crime" in config.names()

    code = cli_main(["--quiet", "datasets", "list", "--data-dir", str(data_dir), "--dataset", "us-crime", "sleep",
                     "--datasets", str(config.path)])

    output = capsys.readouterr().out
    assert code == 0
    assert "| us-crime " in output
    assert "| 47 " in output
    assert "| regression " in output


def test_fetch_concurrent_loads_build_once(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_canonical(c02_spec, cache).sha256)
        except Exception as error:  # collected so the assert below shows it
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == 4
    assert len(set(results)) == 1
    assert sorted(path.name for path in (cache / "tabular").iterdir()) == [".c02.lock", "c02.json", "c02.parquet"]


def test_fetch_unlockable_cache_serves_valid_file(c02_spec, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_canonical(c02_spec, cache)
    # A folder in place of the lock file makes the lock fail even for root, as a
    # read-only cache does for other users.
    lock = cache / "tabular" / ".c02.lock"
    lock.unlink()
    lock.mkdir()

    second = fetch_canonical(c02_spec, cache)
    cache_paths(c02_spec, cache)[0].unlink()
    with pytest.raises(DataError, match=r"cache folder .*tabular is not writable .*pass --cache-dir DIR"):
        fetch_canonical(c02_spec, cache)

    assert second.sha256 == first.sha256
