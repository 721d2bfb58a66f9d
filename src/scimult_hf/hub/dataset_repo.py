"""Push training data (``scimult-hf prepare`` output) to the Hub as a dataset repository with a card.

Each task becomes one configuration of the dataset (``TASK/train.parquet``, declared under ``configs`` in
the card's metadata, so ``load_dataset(repo, "search")`` reads it); the card records the license, task
categories, size category, every task's source (from its ``provenance.json``), sizes and fields, and the
citation. The whole repository is one commit (``upload_folder``): ``Dataset.push_to_hub`` writes one
configuration per call, each its own commit with its own card edit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..io import atomic_directory, check_output
from .cards import BIBTEX

__all__ = ["dataset_card", "prepare_dataset_repo", "push_dataset"]

_TASK_CATEGORIES = {"search": "text-retrieval", "link_prediction": "text-retrieval",
                    "classification": "text-classification"}


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def dataset_card(tasks: dict[str, dict], license: str, pretty_name: str, citation: str | None = None) -> str:
    """The dataset card (YAML metadata and markdown) for ``tasks`` ({task: provenance with rows and columns})."""
    from huggingface_hub import DatasetCard, DatasetCardData

    total = sum(t["rows"] for t in tasks.values())
    data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        task_categories=sorted({"sentence-similarity", *(_TASK_CATEGORIES.get(t, "sentence-similarity") for t in tasks)}),
        size_categories=[_size_category(total)],
        tags=["scimult", "scientific-literature", "contrastive-learning"],
        configs=[{"config_name": task, "data_files": [{"split": "train", "path": f"{task}/train.parquet"}]}
                 for task in sorted(tasks)],
    )
    lines = [f"# {pretty_name}", "",
             "Training pairs for SciMult's multi-task contrastive training, one configuration per task "
             "(`load_dataset(REPO, TASK)`), written by `scimult-hf prepare`.", "",
             "| configuration (task) | rows | fields | source | split | hard negatives |", "|---|---:|---|---|---|---:|"]
    for task, t in sorted(tasks.items()):
        lines.append(f"| `{task}` | {t['rows']:,} | {', '.join(f'`{c}`' for c in t['columns'])} | "
                     f"{t.get('format', '')}: `{Path(str(t.get('path', ''))).name}` | {t.get('split', '')} | "
                     f"{t.get('negatives', 0)} |")
    lines += ["", "`anchor` is the query (a search query, a paper as `title [SEP] abstract`), `positive` a relevant "
              "paper or label text, `negative*` mined hard negatives (never a known positive of the anchor).", "",
              f"License: {license} (check the licenses of the sources above).", "", "## Citation", "", "```bibtex",
              citation or BIBTEX, "```", ""]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def prepare_dataset_repo(prepared: str | os.PathLike, output: str | os.PathLike, license: str,
                         pretty_name: str = "SciMult training pairs", citation: str | None = None,
                         overwrite: bool = False) -> Path:
    """Write the dataset repository (``--dry-run``): ``TASK/train.parquet`` per task and ``README.md``."""
    import pyarrow.parquet as pq

    prepared = Path(prepared)
    folders = sorted(p for p in prepared.iterdir() if (p / "pairs.parquet").is_file()) if prepared.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{prepared}: no TASK/pairs.parquet inside (write it with `scimult-hf prepare`).")
    check_output(output, [prepared], overwrite)
    tasks = {}
    for folder in folders:
        provenance = folder / "provenance.json"
        info = json.loads(provenance.read_text(encoding="utf-8")) if provenance.is_file() else {}
        schema = pq.read_schema(folder / "pairs.parquet")
        tasks[folder.name] = {**info, "rows": pq.read_metadata(folder / "pairs.parquet").num_rows,
                              "columns": list(schema.names)}
    with atomic_directory(output) as tmp:
        for folder in folders:
            (tmp / folder.name).mkdir()
            shutil.copy2(folder / "pairs.parquet", tmp / folder.name / "train.parquet")
        (tmp / "README.md").write_text(dataset_card(tasks, license, pretty_name, citation), encoding="utf-8")
    return Path(output)


def push_dataset(prepared: str | os.PathLike, repo_id: str, license: str, *, api=None, private: bool = False,
                 commit_message: str | None = None, token: str | None = None, dry_run: str | os.PathLike | None = None,
                 pretty_name: str = "SciMult training pairs", citation: str | None = None, overwrite: bool = False):
    """Push the prepared tasks to the dataset repository ``repo_id`` in one commit (or write it to ``dry_run``,
    replacing an existing one only with ``overwrite``)."""
    if dry_run is not None:
        return prepare_dataset_repo(prepared, dry_run, license, pretty_name, citation, overwrite=overwrite)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="scimult-dataset-") as tmp:
        folder = prepare_dataset_repo(prepared, Path(tmp) / "repo", license, pretty_name, citation)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        return api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                 commit_message=commit_message or "Upload SciMult training pairs")
