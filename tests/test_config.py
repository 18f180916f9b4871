"""Tests of datasets.yaml parsing: the smallest entries, defaults, and errors that name the entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.config import ConfigError, TaskType, load_config

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_openml_id_alone_is_enough(tmp_path):
    config = load_config(_write(tmp_path, "datasets:\n  - openml: 31\n"))

    (spec,) = config.datasets
    assert spec.name == "openml-31"
    assert spec.openml == 31
    assert spec.source == "openml"
    assert spec.domain == "tabular"
    assert spec.task is None


def test_config_file_entry_named_by_stem(tmp_path):
    config = load_config(_write(tmp_path, "datasets:\n  - file: data/my table.csv\n"))

    (spec,) = config.datasets
    assert spec.name == "my table"
    assert spec.source == "file"
    assert spec.config_dir == tmp_path


def test_config_defaults_filled_and_overridden(tmp_path):
    text = "defaults:\n  domain: omics\n  tags: [small]\ndatasets:\n  - openml: 4\n  - openml: 5\n    domain: tabular\n"
    config = load_config(_write(tmp_path, text))

    first, second = config.datasets
    assert first.domain == "omics"
    assert first.tags == ("small",)
    assert second.domain == "tabular"


@pytest.mark.parametrize(
    "entry, message",
    [
        ("  - openml: 31\n    colour: red\n", r"datasets.yaml:2 \(entry 1\): unknown key\(s\) \['colour'\]"),
        ("  - openml: 1.5\n", r"datasets.yaml:2 \(entry 1\): field 'openml' must be int or str, got 1.5"),
        ("  - openml: 31\n    task: classification\n", r"task 'classification' is not one of \['binary', "),
        ("  - openml: 31\n    domain: genomics\n", r"domain 'genomics' is not one of \['tabular', 'omics'\]"),
        ("  - openml: 31\n    file: a.csv\n", r"give exactly one source, got \['openml', 'file'\]"),
        ("  - url: https://example.org/a.csv\n", r"a `url:` source needs `sha256:`"),
        ("  - url: https://example.org/a.csv\n    sha256: abc\n", r"'sha256' must be 64 lowercase hex digits, got 'abc'"),
        ("  - file: a.rds\n    reader: rds\n", r"reader 'rds' is not one of \['parquet', 'csv'"),
        ("  - task: binary\n", r"an entry needs a source"),
        ("  - openml: 31\n    name: ''\n", r"field 'name' is empty"),
        ("  - openml: '61'\n", r"`openml: '61'` is a number written as text, read as a dataset name; write `openml: 61`"),
        ("  - openml: 1e3\n", r"`openml: '1e3'` is a number written as text, .*; write `openml: 1000`"),
        ("  - openml: '+61'\n", r"write `openml: 61` without quotes"),
        ("  - openml: '-5'\n", r"an OpenML id is a positive whole number"),
        ("  - openml: -5\n", r"OpenML dataset id must be a positive integer, got -5"),
        ("  - openml: ' '\n", r"field 'openml' is empty"),
        ("  - openml: 31\n    ignore: [1, 2]\n", r"every item of 'ignore' must be a string"),
    ],
)
def test_config_invalid_entry_names_line_and_fix(tmp_path, entry, message):
    path = _write(tmp_path, "datasets:\n" + entry)

    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_duplicate_names_name_both_lines(tmp_path):
    path = _write(tmp_path, "datasets:\n  - openml: 31\n    name: credit\n  - file: credit.csv\n    name: credit\n")

    with pytest.raises(ConfigError, match=r"datasets.yaml:4: duplicate dataset name 'credit' \(first defined at line 2\)"):
        load_config(path)


def test_config_default_names_collide(tmp_path):
    path = _write(tmp_path, "datasets:\n  - file: a/iris.csv\n  - file: b/iris.parquet\n")

    with pytest.raises(ConfigError, match=r"duplicate dataset name 'iris'.*give one of them another `name:`"):
        load_config(path)


@pytest.mark.parametrize("target", ["desert,mountains,sea", "[desert, mountains, sea]"])
def test_config_multiple_targets_rejected(tmp_path, target):
    path = _write(tmp_path, f"datasets:\n  - file: c03.csv\n    target: {target}\n")

    with pytest.raises(ConfigError, match=r"multiple targets declared \(3\); multi-target not supported"):
        load_config(path)


def test_config_url_with_table_hash_only(tmp_path):
    digest = "ab" * 32
    config = load_config(_write(tmp_path, f"datasets:\n  - url: https://example.org/x.RData\n    table_sha256: {digest}\n"))

    (spec,) = config.datasets
    assert spec.sha256 is None
    assert spec.table_sha256 == digest
    assert spec.name == "x"


def test_config_select_unknown_name_lists_fix(tmp_path):
    config = load_config(_write(tmp_path, "datasets:\n  - openml: 31\n"))

    with pytest.raises(ConfigError, match=r"dataset\(s\) \['iris'\] not found .*add an entry"):
        config.select(["iris"])


def test_config_repository_file_matches_manifest(data_dir):
    config = load_config(REPOSITORY_ROOT / "datasets.yaml")
    manifest = yaml.safe_load((data_dir / "MANIFEST.yaml").read_text(encoding="utf-8"))["datasets"]

    assert config.names() == [entry["name"] for entry in manifest]
    for spec, entry in zip(config.datasets, manifest):
        assert spec.openml == entry["openml_id"], spec.name
        assert spec.task is TaskType(entry["task"]), spec.name
        assert spec.domain == entry["domain"], spec.name
        assert spec.reference == entry["reference"], spec.name
    omics = [spec for spec in config.datasets if spec.domain == "omics"]
    assert len(omics) == 13
    assert all(spec.url.startswith("https://raw.githubusercontent.com/ramhiser/datamicroarray/") for spec in omics)
    assert all(spec.reader == "rdata" and spec.table_sha256 for spec in omics)


def test_config_openml_name_with_version(tmp_path):
    config = load_config(_write(tmp_path, "datasets:\n  - openml: tumor_expr\n    version: 4\n"))

    (spec,) = config.datasets
    assert spec.name == "tumor_expr"
    assert spec.openml == "tumor_expr"
    assert spec.version == 4
    assert spec.describe_source() == "openml:tumor_expr@v4"
