"""Read and validate `datasets.yaml` into frozen dataset specs."""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class TaskType(str, enum.Enum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not TaskType.REGRESSION


DOMAINS = ("tabular", "omics")
SOURCE_KEYS = ("openml", "file", "url")

# Fields an entry may set, with their expected Python types. `defaults:` may set
# the same fields except the identity ones (name and the source keys).
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    # An OpenML dataset id, or a name resolved by the rule in `bench.sources`.
    "openml": (int, str),
    "version": (int,),
    "file": (str,),
    "url": (str,),
    "sha256": (str,),
    # A list is accepted only to report a multi-target entry with a clear error.
    "target": (str, list),
    "task": (str,),
    "ignore": (list,),
    "domain": (str,),
    "tags": (list,),
    "reference": (str,),
    "reader": (str,),
    "table_sha256": (str,),
}
IDENTITY_FIELDS = ("name", "openml", "file", "url", "sha256", "version", "table_sha256")
READERS = ("parquet", "csv", "tsv", "arff", "rdata")


class ConfigError(ValueError):
    """Raised for an invalid `datasets.yaml`; the message names the entry and its line."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset entry of `datasets.yaml`, with defaults filled in."""

    name: str
    openml: int | str | None = None
    version: int | None = None
    file: str | None = None
    url: str | None = None
    sha256: str | None = None
    target: str | None = None
    task: TaskType | None = None
    ignore: tuple[str, ...] = ()
    domain: str = "tabular"
    tags: tuple[str, ...] = ()
    reference: str | None = None
    reader: str | None = None
    table_sha256: str | None = None
    line: int = 0
    config_dir: Path = field(default=Path("."), compare=False)
    config_file: str = field(default="datasets.yaml", compare=False)
    # True for an `openml: ID` entry without `name:`. `bench.naming` gives it the OpenML
    # dataset's name, and until then it is named `openml-<ID>`.
    name_from_openml: bool = False

    @property
    def entry_text(self) -> str:
        """Return where the entry is written, such as `its entry at line 12 of datasets.yaml`."""
        return f"its entry at line {self.line} of {self.config_file}" if self.line else f"its entry in {self.config_file}"

    @property
    def openml_id(self) -> int | None:
        """Return the OpenML dataset id of an `openml: ID` entry, else None."""
        return self.openml if isinstance(self.openml, int) else None

    @property
    def source(self) -> str:
        """Return the declared source kind: openml, file, url, or data-dir (name only)."""
        for key in SOURCE_KEYS:
            if getattr(self, key) is not None:
                return key
        return "data-dir"

    def describe_source(self) -> str:
        """Return a short, human-readable source such as `openml:31@v1`."""
        if self.openml is not None:
            version = f"@v{self.version}" if self.version is not None else ""
            return f"openml:{self.openml}{version}"
        if self.file is not None:
            return f"file:{self.file}"
        if self.url is not None:
            return f"url:{self.url}"
        return "data-dir"


@dataclass(frozen=True)
class DatasetConfig:
    """All dataset specs of one YAML file, in file order."""

    path: Path
    datasets: tuple[DatasetSpec, ...]

    def names(self) -> list[str]:
        return [spec.name for spec in self.datasets]

    def select(self, names: list[str] | None = None, tags: list[str] | None = None) -> list[DatasetSpec]:
        """Return the specs whose name is in `names` and that carry one of `tags`."""
        chosen = list(self.datasets)
        if names:
            # `openml-<ID>` also selects an entry by its OpenML id, whatever its name.
            known = set(self.names()) | {f"openml-{spec.openml_id}" for spec in chosen if spec.openml_id is not None}
            unknown = [name for name in names if name not in known]
            if unknown:
                raise ConfigError(
                    f"dataset(s) {unknown} not found in {self.path}; "
                    f"add an entry (for example `- openml: 31`) or pick from: {', '.join(sorted(self.names()))}"
                )
            wanted = set(names)
            chosen = [spec for spec in chosen if spec.name in wanted or f"openml-{spec.openml_id}" in wanted]
        if tags:
            wanted_tags = set(tags)
            chosen = [spec for spec in chosen if wanted_tags & set(spec.tags) or spec.domain in wanted_tags]
        return chosen


def load_config(path: str | Path) -> DatasetConfig:
    """Parse `datasets.yaml`, check every entry and fill in the defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"datasets file not found: {path}; pass --datasets PATH")
    text = path.read_text(encoding="utf-8")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    if not isinstance(document, dict) or "datasets" not in document:
        raise ConfigError(f"{path}: expected a mapping with a `datasets:` list at the top level")
    unknown_top = sorted(set(document) - {"defaults", "datasets"})
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown_top}; allowed: defaults, datasets")

    defaults = document.get("defaults") or {}
    _check_fields(defaults, where=f"{path}: defaults", allowed=set(FIELD_TYPES) - set(IDENTITY_FIELDS))
    entries = document["datasets"] or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `datasets:` must be a list of entries, got {type(entries).__name__}")
    lines = _entry_lines(root)

    specs = []
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else 0
        specs.append(_build_spec(entry, defaults, where=f"{path}:{line} (entry {index + 1})", line=line,
                                 config_dir=path.parent, config_file=path.name))
    check_unique_names(path, specs)
    return DatasetConfig(path=path, datasets=tuple(specs))


def check_unique_names(path: Path, specs: list[DatasetSpec]) -> None:
    """Raise ConfigError naming both lines when two entries have the same name."""
    first_line_of: dict[str, int] = {}
    for spec in specs:
        if spec.name in first_line_of:
            origin = " (the OpenML dataset's name)" if spec.name_from_openml else ""
            raise ConfigError(
                f"{path}:{spec.line}: duplicate dataset name {spec.name!r}{origin} (first defined at line "
                f"{first_line_of[spec.name]}); give one of them another `name:`"
            )
        first_line_of[spec.name] = spec.line


def _entry_lines(root: yaml.Node | None) -> list[int]:
    """Return the 1-based line of each item of the top-level `datasets:` list."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key_node, value_node in root.value:
        if key_node.value == "datasets" and isinstance(value_node, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value_node.value]
    return []


def _check_fields(entry: dict[str, Any], where: str, allowed: set[str]) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping such as `- openml: 31`, got {entry!r}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys: {', '.join(sorted(allowed))}")
    for key, value in entry.items():
        expected = FIELD_TYPES[key]
        if value is None or isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"{where}: field {key!r} must be {names}, got {value!r}")


def _build_spec(entry: Any, defaults: dict[str, Any], where: str, line: int, config_dir: Path,
                config_file: str) -> DatasetSpec:
    _check_fields(entry, where=where, allowed=set(FIELD_TYPES))
    merged = {**defaults, **entry}

    sources = [key for key in SOURCE_KEYS if key in entry]
    if len(sources) > 1:
        raise ConfigError(f"{where}: give exactly one source, got {sources}; keep one of openml, file, url")
    # A `url:` is verified by the hash of the downloaded file (`sha256:`) or, when
    # that hash is not known yet, by the hash of the table read from it (`table_sha256:`).
    if "url" in entry and "sha256" not in entry and "table_sha256" not in entry:
        raise ConfigError(
            f"{where}: a `url:` source needs `sha256:` of the file (or `table_sha256:` of the table read "
            f"from it), so the download can be verified"
        )
    for hash_key in ("sha256", "table_sha256"):
        if hash_key in entry and not re.fullmatch(r"[0-9a-f]{64}", entry[hash_key]):
            raise ConfigError(f"{where}: {hash_key!r} must be 64 lowercase hex digits, got {entry[hash_key]!r}")
    openml = entry.get("openml")
    if isinstance(openml, int) and openml <= 0:
        raise ConfigError(f"{where}: OpenML dataset id must be a positive integer, got {openml}")
    if isinstance(openml, str) and _as_number(openml) is not None:
        number = _as_number(openml)
        fix = (f"write `openml: {int(number)}` without quotes for the id" if number.is_integer() and number > 0
               else "an OpenML id is a positive whole number")
        raise ConfigError(f"{where}: `openml: {openml!r}` is a number written as text, read as a dataset name; {fix}")
    if isinstance(openml, str) and not openml.strip():
        raise ConfigError(f"{where}: field 'openml' is empty; give an OpenML dataset id or name")
    reader = merged.get("reader")
    if reader is not None and reader not in READERS:
        raise ConfigError(f"{where}: reader {reader!r} is not one of {list(READERS)}")
    target = merged.get("target")
    target_names = _target_names(target)
    if len(target_names) > 1:
        raise ConfigError(
            f"{where}: multiple targets declared ({len(target_names)}); multi-target not supported; "
            f"set `target:` to one of {target_names} and list the others under `ignore:`"
        )
    if target is not None and not target_names:
        raise ConfigError(f"{where}: field 'target' is empty; name the target column or remove the field")
    if not sources and "name" not in entry:
        raise ConfigError(f"{where}: an entry needs a source (`openml: ID`, `file: PATH`, `url: URL`) or a `name:`")

    if "name" in entry and not entry["name"].strip():
        raise ConfigError(f"{where}: field 'name' is empty; give the dataset a name or remove the field")
    name = merged.get("name") or _default_name(merged)
    task = merged.get("task")
    if task is not None:
        allowed_tasks = [t.value for t in TaskType]
        if task not in allowed_tasks:
            raise ConfigError(f"{where}: task {task!r} is not one of {allowed_tasks}")
        task = TaskType(task)
    domain = merged.get("domain", "tabular")
    if domain not in DOMAINS:
        raise ConfigError(f"{where}: domain {domain!r} is not one of {list(DOMAINS)}")
    for list_key in ("ignore", "tags"):
        bad = [item for item in merged.get(list_key, []) if not isinstance(item, str)]
        if bad:
            raise ConfigError(f"{where}: every item of {list_key!r} must be a string, got {bad!r}")

    known = {f.name for f in dataclasses.fields(DatasetSpec)}
    values = {key: value for key, value in merged.items() if key in known}
    values.update(
        name=name,
        target=target_names[0] if target_names else None,
        task=task,
        domain=domain,
        ignore=tuple(merged.get("ignore", ())),
        tags=tuple(merged.get("tags", ())),
        line=line,
        config_dir=config_dir,
        config_file=config_file,
        name_from_openml=not merged.get("name") and isinstance(merged.get("openml"), int),
    )
    return DatasetSpec(**values)


def _target_names(target: str | list | None) -> list[str]:
    """Return the column names of a target field; OpenML writes several as `a,b,c`."""
    if target is None:
        return []
    items = target if isinstance(target, list) else target.split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _default_name(entry: dict[str, Any]) -> str:
    # An OpenML id gives the provisional name `openml-<id>`, which `bench.naming`
    # replaces with the OpenML dataset's name.
    if "openml" in entry:
        openml = entry["openml"]
        return openml if isinstance(openml, str) else f"openml-{openml}"
    if "file" in entry:
        return Path(entry["file"]).stem
    return Path(entry["url"].split("?")[0]).stem


def _as_number(text: str) -> float | None:
    """Return `text` as a finite number when it reads as one (`61`, `+61`, `1e3`), else None."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
