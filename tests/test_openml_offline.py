"""Tests of the OpenML source with the real openml client, offline, on a copy of real cache files."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from bench.config import DatasetSpec, TaskType
from bench.data import DataError, DataWarning, load_dataset
from bench.sources import OPENML_STATUS_RULE, cache_paths, check_openml_status, resolve_openml_version

TEST_SERVER = "https://test.openml.org/api/v1/xml"


@pytest.fixture
def openml_cache(data_dir, tmp_path):
    """Point openml at a writable copy of the pack's OpenML cache; return the datasets folder."""
    import openml

    root = tmp_path / "openml-cache"
    shutil.copytree(data_dir / "openml-cache", root)
    saved = (openml.config.get_cache_directory(), openml.config.server, openml.config.connection_n_retries)
    openml.config.set_root_cache_directory(root)
    openml.config.server = TEST_SERVER
    # One attempt: without a network every retry fails the same way, after a back-off.
    openml.config.connection_n_retries = 1
    yield root / "org" / "openml" / "test" / "datasets"
    # The cache directory is <root>/org/openml/<server>, so the root is three levels up.
    openml.config.set_root_cache_directory(Path(saved[0]).parents[2])
    openml.config.server, openml.config.connection_n_retries = saved[1], saved[2]


def _edit_description(datasets_folder: Path, dataset_id: int, old: str, new: str) -> None:
    path = datasets_folder / str(dataset_id) / "description.xml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _metadata(spec: DatasetSpec, cache_dir: Path) -> dict:
    return json.loads(cache_paths(spec, cache_dir)[1].read_text(encoding="utf-8"))


def test_openml_anneal_loads_offline(openml_cache, tmp_path):
    spec = DatasetSpec(name="anneal", openml=2)
    cache = tmp_path / "cache"

    dataset = load_dataset(spec, data_dir=None, cache_dir=cache)

    assert dataset.n_samples == 898
    assert dataset.task is TaskType.MULTICLASS
    assert dataset.classes == ("1", "2", "3", "5", "U")
    assert dataset.source == "openml:2@v1 (anneal, active)"
    assert "OpenML dataset 2 'anneal' version 1, status active" in dataset.notes
    frame = pd.read_parquet(cache_paths(spec, cache)[0])
    assert frame.shape == (898, 39)
    assert frame.columns[-1] == "target"
    assert int(frame.drop(columns=["target"]).isna().sum().sum()) == 22175


def test_openml_metadata_recorded(openml_cache, tmp_path):
    spec = DatasetSpec(name="anneal", openml=2)
    load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    metadata = _metadata(spec, tmp_path)

    assert metadata["openml_id"] == 2
    assert metadata["openml_name"] == "anneal"
    assert metadata["version"] == 1
    assert metadata["status"] == "active"
    assert metadata["original_target"] == "class"
    assert metadata["dropped_attributes"] == []
    assert metadata["openml_feature_types"]["family"] == "nominal"
    assert metadata["openml_feature_types"]["carbon"] == "numeric"
    assert metadata["feature_types"]["family"] == "category"
    assert len(metadata["sha256"]) == 64


def test_openml_second_load_needs_no_openml_cache(openml_cache, tmp_path):
    spec = DatasetSpec(name="anneal", openml=2)
    first = load_dataset(spec, data_dir=None, cache_dir=tmp_path)
    shutil.rmtree(openml_cache / "2")

    second = load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert second.sha256 == first.sha256
    assert second.y.tolist() == first.y.tolist()


def test_openml_missing_description_fails_and_keeps_cache(openml_cache, tmp_path):
    spec = DatasetSpec(name="thirty", openml=30)

    with pytest.raises(DataError, match=r"fetching OpenML dataset 30 failed \(ConnectionError: .*the local caches were kept"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert (openml_cache / "30" / "dataset_30.pq").is_file()
    assert not cache_paths(spec, tmp_path)[0].exists()


def test_openml_wrong_version_raises(openml_cache, tmp_path):
    spec = DatasetSpec(name="anneal", openml=2, version=3)

    with pytest.raises(DataError, match=r"OpenML id 2 is version 1 of 'anneal', but the entry names version 3"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path)


def test_openml_deactivated_loads_with_warning(openml_cache, tmp_path):
    _edit_description(openml_cache, 2, "<oml:status>active</oml:status>", "<oml:status>deactivated</oml:status>")
    spec = DatasetSpec(name="anneal", openml=2)

    with pytest.warns(DataWarning, match=r"OpenML dataset 2 is deactivated"):
        dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert dataset.source == "openml:2@v1 (anneal, deactivated)"
    assert any(note.startswith("warning: OpenML dataset 2 is deactivated") for note in dataset.notes)
    assert _metadata(spec, tmp_path)["status"] == "deactivated"


def test_openml_in_preparation_rejected(openml_cache, tmp_path):
    _edit_description(openml_cache, 2, "<oml:status>active</oml:status>", "<oml:status>in_preparation</oml:status>")
    spec = DatasetSpec(name="anneal", openml=2)

    with pytest.raises(DataError, match=r"OpenML dataset 2 has status 'in_preparation' and is not loaded"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path)


def test_openml_no_default_target_raises(openml_cache, tmp_path):
    _edit_description(openml_cache, 2, "<oml:default_target_attribute>class</oml:default_target_attribute>", "")
    spec = DatasetSpec(name="anneal", openml=2)

    with pytest.raises(DataError, match=r"no target declared \(OpenML dataset 2 has no default target\)"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path)


def test_openml_declared_target_overrides_missing_default(openml_cache, tmp_path):
    _edit_description(openml_cache, 2, "<oml:default_target_attribute>class</oml:default_target_attribute>", "")
    spec = DatasetSpec(name="anneal", openml=2, target="class")

    dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert dataset.n_classes == 5


def test_openml_multiple_default_targets_raise(openml_cache, tmp_path):
    _edit_description(openml_cache, 2, "<oml:default_target_attribute>class<",
                      "<oml:default_target_attribute>class,family,steel<")
    spec = DatasetSpec(name="anneal", openml=2)

    with pytest.raises(DataError, match=r"multiple targets declared \(3\); multi-target not supported"):
        load_dataset(spec, data_dir=None, cache_dir=tmp_path)


def test_openml_row_id_and_ignore_dropped(openml_cache, tmp_path):
    _edit_description(
        openml_cache, 2, "<oml:default_target_attribute>class</oml:default_target_attribute>",
        "<oml:default_target_attribute>class</oml:default_target_attribute>"
        "<oml:row_id_attribute>family</oml:row_id_attribute><oml:ignore_attribute>steel</oml:ignore_attribute>",
    )
    spec = DatasetSpec(name="anneal", openml=2)

    dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert "family" not in dataset.X.columns
    assert "steel" not in dataset.X.columns
    assert "dropped OpenML row-id and ignore attribute(s): ['family', 'steel']" in dataset.notes
    assert _metadata(spec, tmp_path)["dropped_attributes"] == ["family", "steel"]


def test_openml_missing_count_mismatch_noted(openml_cache, tmp_path):
    path = openml_cache / "2" / "qualities.xml"
    text = path.read_text(encoding="utf-8")
    marker = "<oml:name>NumberOfMissingValues</oml:name>"
    start = text.index(marker) + len(marker)
    value_start = text.index("<oml:value>", start) + len("<oml:value>")
    value_end = text.index("</oml:value>", value_start)
    path.write_text(text[:value_start] + "0" + text[value_end:], encoding="utf-8")
    spec = DatasetSpec(name="anneal", openml=2)

    dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path)

    assert "OpenML metadata gives 0 missing values, but the data contains 22175; the count from the data is used" in dataset.notes


# ---- Versions and status on a catalogue --------------------------------------------------

@pytest.fixture
def catalogue(cases_dir) -> pd.DataFrame:
    return pd.read_csv(cases_dir / "C10-dataset_versions.csv")


def test_resolve_name_alone_lowest_active_version(catalogue):
    row = resolve_openml_version(catalogue, name="tumor_expr")

    assert (row["dataset_id"], row["version"], row["default_target"]) == (900002, 2, "class")
    assert check_openml_status(row["dataset_id"], row["status"], "tumor_expr") == []


def test_resolve_deactivated_id_loads_with_warning(catalogue):
    row = resolve_openml_version(catalogue, dataset_id=900001)

    with pytest.warns(DataWarning, match=r"OpenML dataset 900001 is deactivated"):
        notes = check_openml_status(row["dataset_id"], row["status"], "tumor_expr")

    assert row["version"] == 1
    assert notes == [f"warning: OpenML dataset 900001 is deactivated: its uploader or OpenML withdrew it; "
                     f"results may not be comparable"]


def test_resolve_in_preparation_id_rejected(catalogue):
    row = resolve_openml_version(catalogue, dataset_id=900003)

    with pytest.raises(DataError, match=r"OpenML dataset 900003 has status 'in_preparation' and is not loaded"):
        check_openml_status(row["dataset_id"], row["status"], "tumor_expr")


def test_resolve_name_with_version_uses_its_target(catalogue):
    row = resolve_openml_version(catalogue, name="tumor_expr", version=4)

    assert (row["dataset_id"], row["default_target"]) == (900004, "subtype")


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"dataset_id": 42}, r"OpenML dataset id 42 not found in the catalogue"),
        ({"name": "no_such"}, r"OpenML dataset name 'no_such' not found"),
        ({"name": "tumor_expr", "version": 9}, r"OpenML dataset 'tumor_expr' has no version 9"),
        ({}, r"an OpenML request needs a dataset id or a name"),
    ],
)
def test_resolve_invalid_request_raises(catalogue, request_fields, message):
    with pytest.raises(DataError, match=message):
        resolve_openml_version(catalogue, **request_fields)


def test_resolve_requests_file_all_answered(cases_dir, catalogue):
    requests = pd.read_csv(cases_dir / "C10-requests.csv")
    outcomes = []
    for request in requests.itertuples():
        row = resolve_openml_version(
            catalogue,
            name=None if pd.isna(request.name) else request.name,
            dataset_id=None if pd.isna(request.dataset_id) else int(request.dataset_id),
            version=None if pd.isna(request.version) else int(request.version),
        )
        outcomes.append((int(row["dataset_id"]), OPENML_STATUS_RULE[row["status"]]))

    assert outcomes == [(900002, "load"), (900001, "load with a warning"), (900003, "reject"), (900004, "load")]


@pytest.mark.online
def test_openml_live_server_iris(tmp_path):
    import openml

    saved_root = Path(openml.config.get_cache_directory()).parents[2]
    openml.config.set_root_cache_directory(tmp_path / "openml")
    spec = DatasetSpec(name="iris", openml=61)

    try:
        dataset = load_dataset(spec, data_dir=None, cache_dir=tmp_path / "cache")
    finally:
        openml.config.set_root_cache_directory(saved_root)

    assert (dataset.n_samples, dataset.n_features, dataset.n_classes) == (150, 4, 3)


# ---- Versions and status through the real client and a loopback stub server ------------

STUB_ROWS = [
    "1.0,0.5,A,x", "1.2,0.4,A,y", "0.9,0.6,A,x", "1.1,0.5,A,y", "1.3,0.7,A,z", "0.8,0.4,A,z",
    "2.0,1.5,B,x", "2.2,1.4,B,y", "1.9,1.6,B,x", "2.1,1.5,B,y", "2.3,1.7,B,z", "1.8,1.4,B,z",
]


class _OpenMLStub(http.server.BaseHTTPRequestHandler):
    """Serve the OpenML XML API calls of `get_dataset` and `list_datasets` for a catalogue."""

    catalogue: pd.DataFrame
    base_url: str

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["files", parts[1]] and parts[1].endswith(".arff"):
            return self._send(200, self._arff(int(parts[1].removesuffix(".arff"))))
        api = parts[3:] if parts[:3] == ["api", "v1", "xml"] else []
        if api[:2] == ["data", "list"]:
            return self._list(dict(zip(api[2::2], api[3::2])))
        if len(api) == 2 and api[0] == "data":
            return self._send(200, self._description(self._row(int(api[1]))))
        if len(api) == 3 and api[:2] == ["data", "features"]:
            return self._send(200, self._features())
        if len(api) == 3 and api[:2] == ["data", "qualities"]:
            return self._send(200, '<oml:data_qualities xmlns:oml="http://openml.org/openml"><oml:quality>'
                                   "<oml:name>NumberOfMissingValues</oml:name><oml:value>0</oml:value>"
                                   "</oml:quality></oml:data_qualities>")
        return self._send(404, "not found")

    def _row(self, dataset_id: int) -> pd.Series:
        return self.catalogue[self.catalogue["dataset_id"] == dataset_id].iloc[0]

    def _list(self, filters: dict[str, str]):
        rows = self.catalogue[self.catalogue["name"] == filters.get("data_name")]
        if filters.get("status", "active") != "all":
            rows = rows[rows["status"] == filters.get("status", "active")]
        if "data_version" in filters:
            rows = rows[rows["version"] == int(filters["data_version"])]
        if int(filters.get("offset", 0)) > 0 or rows.empty:
            return self._send(412, '<oml:error xmlns:oml="http://openml.org/openml"><oml:code>372</oml:code>'
                                   "<oml:message>No results</oml:message></oml:error>")
        items = "".join(
            f"<oml:dataset><oml:did>{row.dataset_id}</oml:did><oml:name>{row.name}</oml:name>"
            f"<oml:version>{row.version}</oml:version><oml:status>{row.status}</oml:status>"
            f"<oml:format>ARFF</oml:format></oml:dataset>"
            for row in rows.itertuples()
        )
        return self._send(200, f'<oml:data xmlns:oml="http://openml.org/openml">{items}</oml:data>')

    def _description(self, row: pd.Series) -> str:
        return (
            '<oml:data_set_description xmlns:oml="http://openml.org/openml">'
            f"<oml:id>{row['dataset_id']}</oml:id><oml:name>{row['name']}</oml:name>"
            f"<oml:version>{row['version']}</oml:version><oml:description>fictional</oml:description>"
            f"<oml:format>ARFF</oml:format><oml:upload_date>{row['upload_date']}T00:00:00</oml:upload_date>"
            f"<oml:licence>Public</oml:licence><oml:url>{self.base_url}/files/{row['dataset_id']}.arff</oml:url>"
            f"<oml:file_id>{row['dataset_id']}</oml:file_id>"
            f"<oml:default_target_attribute>{row['default_target']}</oml:default_target_attribute>"
            f"<oml:visibility>public</oml:visibility><oml:status>{row['status']}</oml:status>"
            "</oml:data_set_description>"
        )

    def _features(self) -> str:
        features = [("g1", "numeric", []), ("g2", "numeric", []), ("class", "nominal", ["A", "B"]),
                    ("subtype", "nominal", ["x", "y", "z"])]
        items = "".join(
            f"<oml:feature><oml:index>{index}</oml:index><oml:name>{name}</oml:name>"
            f"<oml:data_type>{kind}</oml:data_type>"
            + "".join(f"<oml:nominal_value>{value}</oml:nominal_value>" for value in values)
            + "<oml:is_target>false</oml:is_target><oml:is_ignore>false</oml:is_ignore>"
            "<oml:is_row_identifier>false</oml:is_row_identifier>"
            "<oml:number_of_missing_values>0</oml:number_of_missing_values></oml:feature>"
            for index, (name, kind, values) in enumerate(features)
        )
        return f'<oml:data_features xmlns:oml="http://openml.org/openml">{items}</oml:data_features>'

    def _arff(self, dataset_id: int) -> str:
        header = ("@relation tumor_expr\n@attribute g1 numeric\n@attribute g2 numeric\n"
                  "@attribute class {A,B}\n@attribute subtype {x,y,z}\n@data\n")
        return header + "\n".join(STUB_ROWS) + "\n"

    def _send(self, code: int, body: str):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/xml" if code != 404 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def openml_stub(catalogue, tmp_path):
    """Serve the versions catalogue as an OpenML server on 127.0.0.1 and point openml at it."""
    import openml

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpenMLStub)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    _OpenMLStub.catalogue = catalogue
    _OpenMLStub.base_url = base_url
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    saved = (openml.config.get_cache_directory(), openml.config.server, openml.config.connection_n_retries)
    openml.config.set_root_cache_directory(tmp_path / "openml-cache")
    openml.config.server = f"{base_url}/api/v1/xml"
    openml.config.connection_n_retries = 1
    yield tmp_path / "cache"
    openml.config.set_root_cache_directory(Path(saved[0]).parents[2])
    openml.config.server, openml.config.connection_n_retries = saved[1], saved[2]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_stub_name_alone_loads_lowest_active(openml_stub):
    spec = DatasetSpec(name="tumor_expr", openml="tumor_expr")

    dataset = load_dataset(spec, data_dir=None, cache_dir=openml_stub)

    assert dataset.source == "openml:900002@v2 (tumor_expr, active)"
    assert dataset.classes == ("A", "B")
    assert "subtype" in dataset.X.columns
    metadata = _metadata(spec, openml_stub)
    assert (metadata["openml_id"], metadata["version"], metadata["original_target"]) == (900002, 2, "class")


def test_stub_id_entry_named_by_server(openml_stub, tmp_path):
    from bench.naming import load_named_config

    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n  - openml: 900002\n", encoding="utf-8")

    config = load_named_config(path, cache_dir=openml_stub)

    assert config.names() == ["tumor_expr"]
    dataset = load_dataset(config.datasets[0], data_dir=None, cache_dir=openml_stub)
    assert _metadata(config.datasets[0], openml_stub)["openml_name"] == "tumor_expr"
    assert dataset.source == "openml:900002@v2 (tumor_expr, active)"


def test_stub_deactivated_id_loads_with_warning(openml_stub):
    spec = DatasetSpec(name="tumor_v1", openml=900001)

    with pytest.warns(DataWarning, match=r"OpenML dataset 900001 is deactivated"):
        dataset = load_dataset(spec, data_dir=None, cache_dir=openml_stub)

    assert dataset.source == "openml:900001@v1 (tumor_expr, deactivated)"


def test_stub_in_preparation_id_rejected(openml_stub):
    spec = DatasetSpec(name="tumor_v3", openml=900003)

    with pytest.raises(DataError, match=r"OpenML dataset 900003 has status 'in_preparation' and is not loaded"):
        load_dataset(spec, data_dir=None, cache_dir=openml_stub)

    assert not cache_paths(spec, openml_stub)[0].exists()


def test_stub_name_with_version_uses_its_target(openml_stub):
    spec = DatasetSpec(name="tumor_v4", openml="tumor_expr", version=4)

    dataset = load_dataset(spec, data_dir=None, cache_dir=openml_stub)

    assert dataset.source == "openml:900004@v4 (tumor_expr, active)"
    assert dataset.classes == ("x", "y", "z")
    assert "class" in dataset.X.columns
    assert _metadata(spec, openml_stub)["original_target"] == "subtype"


def test_stub_unknown_name_raises(openml_stub):
    spec = DatasetSpec(name="other", openml="no_such_dataset")

    with pytest.raises(DataError, match=r"OpenML dataset name 'no_such_dataset' not found"):
        load_dataset(spec, data_dir=None, cache_dir=openml_stub)
