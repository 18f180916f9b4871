"""Name each `- openml: ID` entry without `name:` after its OpenML dataset.

The name comes from the first of these sources that contains it:
1. the metadata of the dataset in the occam-bench cache (written by an earlier fetch);
2. the description that the openml client cached (`description.xml`);
3. the OpenML server, through the openml client (description only, no data);
4. offline, the name that the data directory's MANIFEST.yaml gives the same OpenML id,
   with a warning, because that name can differ from OpenML's (`us-crime` for `USCrime`);
5. else the entry keeps the name `openml-<ID>`, with a warning.
Result ids contain the name, so an entry that must keep one name online and offline sets `name:`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path

from bench.config import DatasetConfig, DatasetSpec, check_unique_names, load_config
from bench.data import default_cache_dir, manifest_openml_files

logger = logging.getLogger(__name__)

# Attempts to reach the OpenML server for one name, at most, and the time they may take together.
NAME_LOOKUP_ATTEMPTS = 2
NAME_LOOKUP_TIMEOUT_S = 30.0


def name_openml_entries(config: DatasetConfig, data_dir: Path | None = None, cache_dir: Path | None = None,
                        known_names: dict[int, str] | None = None, use_server: bool = True) -> DatasetConfig:
    """Return `config` with the OpenML dataset's name on each `- openml: ID` entry without `name:`.

    `known_names` maps OpenML ids to the names that a results file gave them, and comes first.
    With `use_server` False, the server is not asked, as if it were unreachable.
    """
    unnamed = [spec for spec in config.datasets if spec.name_from_openml]
    if not unnamed:
        return config
    cache_names = {**_cached_openml_names(cache_dir or default_cache_dir()), **(known_names or {})}

    specs = []
    server = _ServerLookup()
    if not use_server:
        server.unreachable = "the OpenML server was not asked"
    for spec in config.datasets:
        if spec.name_from_openml:
            name = cache_names.get(spec.openml_id) or _client_cached_name(spec.openml_id)
            if name is None:
                name, failure = server.name(spec.openml_id)
                if name is None:
                    name = _offline_name(spec, config.path, data_dir, failure)
            spec = dataclasses.replace(spec, name=name)
        specs.append(spec)
    check_unique_names(config.path, specs)
    return dataclasses.replace(config, datasets=tuple(specs))


def _cached_openml_names(cache_dir: Path) -> dict[int, str]:
    """Return `{openml_id: OpenML name}` from the metadata files of the occam-bench cache."""
    names = {}
    for metadata_path in sorted(cache_dir.glob("*/*.json")):
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
            names[int(metadata["openml_id"])] = str(metadata["openml_name"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not the metadata of an OpenML dataset, or damaged: the fetch checks it again
    return names


def _client_cached_name(dataset_id: int) -> str | None:
    """Return the name in the openml client's cached description of `dataset_id`, without the network."""
    from bench.sources import openml_cache_folder, read_openml_description

    path = openml_cache_folder(dataset_id) / "description.xml"
    try:
        return str(read_openml_description(path)["oml:name"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        if path.exists():
            logger.warning("OpenML description %s is unreadable (%s); asking the server", path, error)
        return None


class _ServerLookup:
    """Name lookups on the OpenML server, which stop once the server is unreachable."""

    def __init__(self):
        self.unreachable: str | None = None

    def name(self, dataset_id: int) -> tuple[str | None, str | None]:
        """Return the dataset's name and None, or None and why the server gave no name."""
        if self.unreachable is not None:
            return None, self.unreachable
        import openml

        # A name is worth fewer attempts than a download: openml waits 1 s, 2 s, ... between them.
        saved_attempts = openml.config.connection_n_retries
        openml.config.connection_n_retries = min(saved_attempts, NAME_LOOKUP_ATTEMPTS)
        try:
            dataset = _with_timeout(lambda: openml.datasets.get_dataset(
                dataset_id, download_data=False, download_qualities=False, download_features_meta_data=False
            ), NAME_LOOKUP_TIMEOUT_S)
        except openml.exceptions.OpenMLServerException as error:
            # The server answered, for example that no dataset has this id.
            failure = f"the OpenML server answered: {_shorten(str(error))}"
            logger.warning("reading the name of OpenML dataset %d failed: %s", dataset_id, failure)
            return None, failure
        except Exception as error:  # openml raises requests, urllib3 and file errors
            self.unreachable = f"the OpenML server {openml.config.server} gave no usable answer"
            logger.warning("reading the name of OpenML dataset %d failed: %s (%s: %s)", dataset_id,
                           self.unreachable, type(error).__name__, _shorten(str(error)))
            return None, self.unreachable
        finally:
            openml.config.connection_n_retries = saved_attempts
        return str(dataset.name), None


def _with_timeout(call, seconds: float):
    """Return `call()`, or raise TimeoutError when it has not returned after `seconds`.

    openml-python 0.15.1 sends its requests without a timeout, so a server that accepts the
    connection and never responds would block forever. The call runs in a daemon thread, which
    is left behind when it times out.
    """
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"timed out: no response within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _shorten(text: str, limit: int = 300) -> str:
    """Return `text` cut to about `limit` characters at a space, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def _offline_name(spec: DatasetSpec, config_path: Path, data_dir: Path | None, failure: str) -> str:
    """Return the data directory's name for the entry's OpenML id, else its provisional name."""
    listed = manifest_openml_files(data_dir).get(spec.openml_id) if data_dir is not None else None
    if listed is not None:
        logger.warning("%s:%d: OpenML dataset %d is named %r as in %s, because %s; OpenML may name it "
                       "otherwise, so set `name:` to keep the same name online and offline",
                       config_path, spec.line, spec.openml_id, listed[0], data_dir / "MANIFEST.yaml", failure)
        return listed[0]
    logger.warning("%s:%d: OpenML dataset %d is named %r, because %s and no cache contains its name; "
                   "run `occam-bench datasets fetch` online once, or set `name:`",
                   config_path, spec.line, spec.openml_id, spec.name, failure)
    return spec.name


def load_named_config(path: Path, data_dir: Path | None = None, cache_dir: Path | None = None,
                      known_names: dict[int, str] | None = None, use_server: bool = True) -> DatasetConfig:
    """Read `datasets.yaml` and name its `- openml: ID` entries after their OpenML datasets."""
    return name_openml_entries(load_config(path), data_dir, cache_dir, known_names, use_server)
