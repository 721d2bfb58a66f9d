"""Where a collection lives: one Lance dataset (``pylance``), in a local folder or in object storage.

A collection is a Lance table with a row per paper:

============================  ===========================================================================
``id``                        the paper's id (unique)
``title``                     its title (at most 300 characters, for display)
``text``                      the model input, ``title [SEP] abstract``; the full-text (BM25) index is on it
``shard``                     the input's chunk that wrote the row (the unit of committing and resuming)
*the input's other columns*   passed through as they are (year, venue, fields, ...): ``--where`` filters
``vector_<task>``             float32 embeddings through the task's expert, one column per task
============================  ===========================================================================

The collection's own record (model, weights, input, tasks, size: :data:`CONFIG_KEY`) is in the dataset's
config, so it travels with the data (``s3://...`` included). Every write is a Lance commit, atomic: a shard
is in the collection whole or not at all.

Object storage: give the URI (``s3://bucket/papers``, ``gs://...``, ``az://...``); credentials and endpoint
come from the usual environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` for an S3-compatible server, ``AWS_ALLOW_HTTP=true`` for a plain-http one), or from
``storage_options`` in Python (Lance's names).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError, MissingDependencyError

__all__ = ["CONFIG_KEY", "FORMAT", "CollectionError", "create_dataset", "is_remote", "open_dataset", "read_record",
           "require_lance", "uri_of", "vector_column", "write_record"]

FORMAT = 2
CONFIG_KEY = "scimult.collection"
#: Columns of our own; an input column with one of these names is not passed through.
OWN_COLUMNS = ("id", "title", "text", "shard")


class CollectionError(InputError):
    """The collection is not (or not yet) usable, or belongs to another input or model."""


def require_lance():
    try:
        import lance
    except ImportError:
        raise MissingDependencyError("collections are Lance datasets: `pip install pylance` (a dependency of "
                                     "scimult-hf; reinstall the package).") from None
    return lance


def vector_column(task: str) -> str:
    return f"vector_{task}"


def is_remote(uri: str | os.PathLike) -> bool:
    return "://" in os.fspath(uri)


def uri_of(location: str | os.PathLike) -> str:
    """A local folder as an absolute path (the collection is usable from any directory); a URI as it is."""
    return os.fspath(location) if is_remote(location) else os.fspath(Path(location).resolve())


def open_dataset(uri: str, storage_options: dict | None = None, version: int | None = None):
    """The Lance dataset at ``uri``, or None when there is none."""
    lance = require_lance()
    if not is_remote(uri) and not (Path(uri) / "_versions").is_dir():
        return None
    try:
        return lance.dataset(uri, version=version, storage_options=storage_options)
    except ValueError as err:
        if "not found" in str(err).lower():
            return None
        raise


def read_record(dataset) -> dict | None:
    """The collection's record in ``dataset``'s config (None: a Lance dataset that is not a collection)."""
    raw = dataset.config().get(CONFIG_KEY)
    return None if raw is None else json.loads(raw)


def write_record(dataset, record: dict) -> None:
    dataset.update_config({CONFIG_KEY: json.dumps(record)})


def create_dataset(uri: str, schema, record: dict, storage_options: dict | None = None):
    """A new, empty collection with ``schema`` and ``record`` (two commits; the record says it is unfinished)."""
    lance = require_lance()
    dataset = lance.write_dataset(schema.empty_table(), uri, schema=schema, mode="create",
                                  storage_options=storage_options)
    write_record(dataset, record)
    return dataset


def delete_dataset(uri: str, storage_options: dict | None = None) -> None:
    """Remove the dataset at ``uri`` (a folder, or every object under the prefix)."""
    if not is_remote(uri):
        import shutil

        shutil.rmtree(uri, ignore_errors=True)
        return
    lance = require_lance()
    lance.LanceDataset.drop(uri, storage_options=storage_options)
