"""Tests of loading: the fault cases that concern loading, and messy columns and targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.config import DatasetSpec, TaskType
from bench.data import DataError, find_in_data_dir, load_dataset, read_table, safe_file_stem
from bench.splits import Protocol, make_splits


def _load(path: Path, cache_dir: Path, **fields):
    spec = DatasetSpec(name=fields.pop("name", path.stem), file=str(path), **fields)
    return load_dataset(spec, data_dir=None, cache_dir=cache_dir)


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- Targets -------------------------------------------------------------------

@pytest.mark.parametrize("file_name", ["C01-bool_like_target.csv", "C01-bool_like_target.parquet"])
def test_load_bool_like_target_is_binary_labels(cases_dir, tmp_path, file_name):
    dataset = _load(cases_dir / file_name, tmp_path, target="defects")

    assert dataset.task is TaskType.BINARY
    assert dataset.classes == ("False", "True")
    assert dataset.positive_class == "True"
    assert dataset.y.value_counts().to_dict() == {"False": 14, "True": 10}
    assert list(dataset.X.columns) == ["loc", "cyclomatic", "halstead_volume"]


def test_load_bool_target_csv_equals_parquet(cases_dir, tmp_path):
    from_csv = _load(cases_dir / "C01-bool_like_target.csv", tmp_path / "a", target="defects")
    from_parquet = _load(cases_dir / "C01-bool_like_target.parquet", tmp_path / "b", target="defects")

    assert from_csv.y.tolist() == from_parquet.y.tolist()
    pd.testing.assert_frame_equal(from_csv.X, from_parquet.X, check_dtype=False)


def test_load_integer_classes_declared_multiclass(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C02-integer_coded_classes.csv", tmp_path, target="class", task=TaskType.MULTICLASS)

    assert dataset.task is TaskType.MULTICLASS
    assert dataset.classes == ("1", "2", "3")
    assert dataset.y.value_counts().to_dict() == {"1": 10, "2": 10, "3": 10}


def test_load_integer_classes_undeclared_raises(cases_dir, tmp_path):
    with pytest.raises(DataError, match="integer target with 3 distinct values: declare the task type"):
        _load(cases_dir / "C02-integer_coded_classes.csv", tmp_path, target="class")


def test_load_float_target_inference_recorded(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C15-constant_features.csv", tmp_path, target="y_reg", ignore=("y_class",))

    assert dataset.task is TaskType.REGRESSION
    assert "task inferred as regression: the target holds non-integer numbers" in dataset.notes


def test_load_multi_target_string_raises(cases_dir, tmp_path):
    with pytest.raises(DataError, match=r"multiple targets declared \(3\); multi-target not supported"):
        _load(cases_dir / "C03-multi_target.csv", tmp_path, target="desert,mountains,sea")


def test_load_one_of_multi_target_excludes_others(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C03-multi_target.csv", tmp_path, target="desert", ignore=("mountains", "sea"),
                    task=TaskType.BINARY)

    assert list(dataset.X.columns) == ["x1", "x2", "x3", "x4"]
    assert dataset.classes == ("0", "1")
    assert "ignored columns: ['mountains', 'sea']" in dataset.notes


def test_load_no_target_declared_raises(cases_dir, tmp_path):
    with pytest.raises(DataError, match=r"no target declared and no column named 'target'.*set `target: COLUMN`"):
        _load(cases_dir / "C04-no_default_target.csv", tmp_path)


def test_load_named_target_after_no_default(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C04-no_default_target.csv", tmp_path, target="label")

    assert dataset.task is TaskType.BINARY
    assert dataset.classes == ("neg", "pos")


def test_load_canonical_file_needs_no_target(tmp_path):
    path = _write_csv(tmp_path / "small.csv", "a,b,target\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n")

    dataset = _load(path, tmp_path / "cache")

    assert dataset.classes == ("x", "y")
    assert list(dataset.X.columns) == ["a", "b"]


def test_load_feature_named_target_raises(tmp_path):
    path = _write_csv(tmp_path / "clash.csv", "a,target,label\n1,2,x\n2,3,y\n")

    with pytest.raises(DataError, match=r"the feature column 'target' clashes with the canonical target name"):
        _load(path, tmp_path / "cache", target="label")


def test_load_missing_target_values_dropped_and_noted(tmp_path):
    path = _write_csv(tmp_path / "gaps.csv", "a,target\n1,x\n2,?\n3,y\n4,\n5,x\n6,y\n")

    dataset = _load(path, tmp_path / "cache")

    assert dataset.n_samples == 4
    assert "dropped 2 rows with a missing target" in dataset.notes


def test_load_single_class_raises(tmp_path):
    path = _write_csv(tmp_path / "one.csv", "a,target\n1,x\n2,x\n3,x\n")

    with pytest.raises(DataError, match=r"the target has a single class \['x'\]; nothing to classify"):
        _load(path, tmp_path / "cache")


def test_load_regression_text_value_named(tmp_path):
    path = _write_csv(tmp_path / "price.csv", "a,target\n1,1.5\n2,?\n3,high\n4,2.5\n5,3.0\n")

    with pytest.raises(DataError) as error:
        _load(path, tmp_path / "cache", task=TaskType.REGRESSION)

    assert "regression target has 1 non-numeric or infinite value(s), for example 'high' in data row 3" in str(error.value)
    assert "declare `task: binary` or `task: multiclass`" in str(error.value)


def test_load_numeric_text_target_undeclared_raises(tmp_path):
    values = ["0.35", "1.20", "0.35", "2.75", "high", "1.20", "0.80", "2.75", "0.80", "3.10", "3.10", "n/a"]
    path = _write_csv(tmp_path / "mostly_numbers.csv", "a,target\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))

    with pytest.raises(DataError) as error:
        _load(path, tmp_path / "cache")

    assert "the target looks numeric (5 of 6 distinct values are numbers) but holds text such as ['high']" in str(error.value)
    assert "declare `task: regression`" in str(error.value)


def test_load_integer_and_text_labels_stay_classes(tmp_path):
    labels = ["1", "2", "3", "U"] * 3
    path = _write_csv(tmp_path / "grades.csv", "a,target\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))

    dataset = _load(path, tmp_path / "cache")

    assert dataset.task is TaskType.MULTICLASS
    assert dataset.classes == ("1", "2", "3", "U")


def test_load_decimal_comma_target_raises(tmp_path):
    values = ["0,3", "1,25", "0,3", "2,5", "1,25", "2,5"]
    path = _write_csv(tmp_path / "commas.csv", 'a,target\n' + "".join(f'{i},"{v}"\n' for i, v in enumerate(values)))

    with pytest.raises(DataError, match=r"the target holds numbers with decimal commas such as \['0,3', '1,25', '2,5'\]"):
        _load(path, tmp_path / "cache")


def test_load_many_singleton_classes_raises(tmp_path):
    labels = ["a", "b", "c"] + ["x", "y"] * 10
    path = _write_csv(tmp_path / "rare.csv", "a,target\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))

    with pytest.raises(DataError, match=r"3 of 23 rows are the only sample of their class"):
        _load(path, tmp_path / "cache", task=TaskType.MULTICLASS)


def test_load_mostly_singleton_classes_raises(tmp_path):
    labels = ["a", "b", "c", "d", "e", "f", "g", "h", "x", "x"]
    path = _write_csv(tmp_path / "ids.csv", "a,target\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))

    with pytest.raises(DataError, match=r"8 of 10 rows are the only sample of their class, so the target looks continuous"):
        _load(path, tmp_path / "cache", task=TaskType.MULTICLASS)


def test_load_table_without_rows_names_file(tmp_path):
    path = _write_csv(tmp_path / "header_only.csv", "a,target\n")

    with pytest.raises(DataError) as error:
        _load(path, tmp_path / "cache")

    assert "has no rows" in str(error.value)
    assert "header_only.csv" in str(error.value)


# ---- Tiny classes and splits ------------------------------------------------------

def test_load_singleton_class_dropped_before_splits(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C11-tiny_class.csv", tmp_path, target="class")

    assert dataset.classes == ("A", "B")
    assert dataset.n_samples == 12
    assert any("dropped class(es) ['C'] with 1 sample each" in note for note in dataset.notes)


def test_splits_tiny_class_always_in_train(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C11-tiny_class.csv", tmp_path, target="class")

    splits = make_splits(dataset.y, dataset.task, Protocol(n_folds=5, n_repeats=1, seed=0), dataset.name)

    assert len(splits) == 5
    for split in splits:
        assert set(dataset.y.iloc[split.train]) == {"A", "B"}, (split.repeat, split.fold)


# ---- Columns -----------------------------------------------------------------------

def test_load_question_marks_are_missing(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C06-question_mark_missing.csv", tmp_path, target="class")

    assert dataset.X["hardness"].dtype == np.float64
    assert dataset.X["hardness"].isna().sum() == 3
    assert dataset.X["surface"].isna().sum() == 3
    assert sorted(dataset.X["surface"].cat.categories) == ["pitted", "rough", "smooth"]
    assert "6 missing feature cells (counted in the data): {'hardness': 3, 'surface': 3}" in dataset.notes


def test_load_unseen_category_kept_as_category(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C14-unseen_category.csv", tmp_path, target="expensive")

    assert dataset.X["region"].value_counts().to_dict() == {"inland": 12, "coast": 10, "bay": 7, "island": 1}


def test_load_constant_columns_noted(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C15-constant_features.csv", tmp_path, target="y_class", ignore=("y_reg",))

    assert "1 constant feature column(s), kept: ['const_all']" in dataset.notes
    assert "near_const" in dataset.X.columns


def test_load_all_missing_column_dropped(tmp_path):
    path = _write_csv(tmp_path / "empty_column.csv", "a,blank,target\n1,?,x\n2,,y\n3,NA,x\n4,?,y\n")

    dataset = _load(path, tmp_path / "cache")

    assert list(dataset.X.columns) == ["a"]
    assert "dropped 1 all-missing feature column(s): ['blank']" in dataset.notes


def test_load_p_much_greater_than_n_noted(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C17-p_much_greater_n.parquet", tmp_path, target="class")

    assert dataset.X.shape == (20, 200)
    assert "p >> n: 200 features for 20 samples" in dataset.notes


def test_load_mixed_type_columns_one_type_each(cases_dir, tmp_path):
    dataset = _load(cases_dir / "C25-mixed_type_object.csv", tmp_path)

    assert list(dataset.X["state"].cat.categories) == ["46", "charge", "discharge", "rest"]
    assert dataset.X["visit_count"].dtype == np.float64
    assert dataset.X["visit_count"].isna().sum() == 2
    assert dataset.X["flag"].tolist() == ["True", "False", "True", "False", "True", "False", "True", "False",
                                          "True", "False"]
    assert any("column 'flag': boolean words" in note for note in dataset.notes)
    assert any("column 'visit_count': numbers; ['n/a', 'unknown'] read as missing" in note for note in dataset.notes)
    assert (tmp_path / "tabular" / "C25-mixed_type_object.parquet").is_file()


def test_load_mixed_python_types_in_parquet(tmp_path):
    frame = pd.DataFrame({"state": ["rest", 46, "charge", 46], "target": ["a", "b", "a", "b"]})
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    object_frame = pd.DataFrame({"state": pd.Series(["rest", 46, "charge", 46], dtype=object)})

    table, notes = read_table(path)
    from bench.data import coerce_columns
    coerced, coerce_notes = coerce_columns(object_frame, where="frame")

    assert list(table["state"].cat.categories) == ["46", "charge", "rest"]
    assert list(coerced["state"].cat.categories) == ["46", "charge", "rest"]
    assert coerce_notes == ["column 'state': values of types ['int', 'str'] read as text categories"]


def test_load_duplicate_csv_columns_raise(tmp_path):
    path = _write_csv(tmp_path / "dup.csv", "a,b,a,target\n1,2,3,x\n4,5,6,y\n")

    with pytest.raises(DataError, match=r"dup.csv: duplicate column names \['a'\]; rename them in the source"):
        _load(path, tmp_path / "cache")


def test_load_duplicate_parquet_columns_raise(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1, 2], [3, 4], ["x", "y"]], names=["a", "a", "target"]), path)

    with pytest.raises(DataError, match=r"duplicate column names \['a'\]"):
        _load(path, tmp_path / "cache")


def test_load_odd_column_names_kept_as_labels(tmp_path):
    long_name = "x" * 300
    names = ["gène_α", long_name, "", "a/b", "tab\there"]
    frame = pd.DataFrame({name: [1.0, 2.0, 3.0, 4.0] for name in names})
    frame["target"] = ["p", "q", "p", "q"]
    path = tmp_path / "odd.parquet"
    frame.to_parquet(path)

    dataset = _load(path, tmp_path / "cache", name="odd/../name\twith tab")

    assert list(dataset.X.columns) == ["gène_α", long_name, "column_2", "a/b", "tab\there"]
    assert "column 2 has an empty name; named 'column_2'" in dataset.notes
    cached = list((tmp_path / "cache").rglob("*.parquet"))
    assert len(cached) == 1
    assert cached[0].parent == tmp_path / "cache" / "tabular"


@pytest.mark.parametrize("name", ["../escape", "a/b", "tab\tname", "", "ü" * 200, "..", "con:sole"])
def test_safe_file_stem_never_leaves_folder(name):
    stem = safe_file_stem(name)

    assert stem
    assert "/" not in stem
    assert "\t" not in stem
    assert not stem.startswith(".")
    assert len(stem) <= 90
    assert Path(stem).name == stem


def test_safe_file_stem_keeps_pack_names(data_dir):
    for path in sorted(data_dir.glob("*/*.parquet")):
        assert safe_file_stem(path.stem) == path.stem
        assert find_in_data_dir(path.stem, data_dir) == path


def test_safe_file_stem_distinguishes_names():
    assert safe_file_stem("a/b") != safe_file_stem("a_b")


# ---- Files ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["C07-empty.parquet", "C07-truncated.parquet"])
def test_load_invalid_user_parquet_raises(cases_dir, tmp_path, case):
    user_file = tmp_path / "user.parquet"
    shutil.copy(cases_dir / case, user_file)

    with pytest.raises(DataError, match=r"user.parquet: not a valid Parquet file"):
        _load(user_file, tmp_path / "cache", target="class")


def test_load_missing_file_names_path(tmp_path):
    with pytest.raises(DataError, match=r"file not found: .*absent.csv"):
        _load(tmp_path / "absent.csv", tmp_path / "cache")


def test_load_arff_file(tmp_path):
    path = tmp_path / "tiny.arff"
    path.write_text(
        "@relation tiny\n@attribute size numeric\n@attribute colour {red,blue}\n@attribute class {yes,no}\n"
        "@data\n1,red,yes\n?,blue,no\n3,?,yes\n4,red,no\n",
        encoding="utf-8",
    )

    dataset = _load(path, tmp_path / "cache", target="class")

    assert dataset.X["size"].isna().sum() == 1
    assert list(dataset.X["colour"].cat.categories) == ["red", "blue"]
    assert dataset.classes == ("no", "yes")


def test_load_pack_dataset_from_data_dir(data_dir, tmp_path):
    spec = DatasetSpec(name="iris", openml=61, task=TaskType.MULTICLASS)

    dataset = load_dataset(spec, data_dir=data_dir, cache_dir=tmp_path / "cache")

    assert (dataset.n_samples, dataset.n_features, dataset.n_classes) == (150, 4, 3)
    assert dataset.source == "openml:61 (read from the data directory: tabular/iris.parquet)"
    assert str(data_dir) not in dataset.source
    assert not (tmp_path / "cache").exists()


def test_load_pack_omics_entry_offline(data_dir, tmp_path):
    from bench.config import load_config

    config = load_config(Path(__file__).resolve().parent.parent / "datasets.yaml")
    (spec,) = config.select(["alon"])

    dataset = load_dataset(spec, data_dir=data_dir, cache_dir=tmp_path / "cache")

    assert (dataset.n_samples, dataset.n_features) == (62, 2000)
    assert dataset.task is TaskType.BINARY
