"""The released SciMult models: the authors' four checkpoints in ``yuz9yuz/SciMult`` (MIT), pinned by size and
sha256. The table alone: fetching and converting them is :mod:`scimult_hf.convert.fetch`, what a model name means
(a folder, a released name, a Hub id, the default) is :mod:`scimult_hf.resolve`.

>>> sorted(RELEASED)
['scimult-moe', 'scimult-moe-pmcpatients-par', 'scimult-moe-pmcpatients-ppr', 'scimult-vanilla']
>>> RELEASED["scimult-moe"].filename
'scimult_moe.ckpt'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .defaults import cache_dir

__all__ = ["RELEASED", "REPO_ID", "TOKENIZER_FILES", "TOKENIZER_REPO", "ReleasedModel", "is_released_name",
           "released_folder"]

#: The Hub repository of the authors' checkpoints, and the base model whose tokenizer they use.
REPO_ID = "yuz9yuz/SciMult"
TOKENIZER_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
TOKENIZER_FILES = ("config.json", "vocab.txt")


@dataclass(frozen=True)
class ReleasedModel:
    """One released checkpoint: where it is, what it must hash to, and what it is."""

    filename: str
    size: int
    sha256: str
    description: str
    #: Bytes of ``model_dict`` (what a partial fetch reads, about a third of the file).
    model_bytes: int
    #: The task its model card's examples use (None: a dense model, no task).
    example_task: str | None = "search"
    repo_id: str = REPO_ID
    revision: str = "main"

    @property
    def card(self) -> str:
        """Its card template in ``model_cards/`` and its repository name when published: the file's stem."""
        return Path(self.filename).stem


RELEASED: dict[str, ReleasedModel] = {
    "scimult-vanilla": ReleasedModel(
        "scimult_vanilla.ckpt", 1_309_392_285, "65b9f1e48ab9b13fb4917ae6446e8a546c3c21b726670c9deabbf9862d26e7ba",
        "SciMult without experts (BERT-base)", 436_000_000, example_task=None),
    "scimult-moe": ReleasedModel(
        "scimult_moe.ckpt", 1_649_705_885, "0410d0b8a49fab7bc0623d4385afa7b7824c289690241884761513d99c5e21ec",
        "SciMult-MoE: one attention expert per task in every second layer", 549_000_000),
    "scimult-moe-pmcpatients-par": ReleasedModel(
        "scimult_moe_pmcpatients_par.ckpt", 1_649_722_333,
        "46d4452232fc3cdbf14049ab1694950d3fbacf8bed9397666f1717f92315951e",
        "SciMult-MoE trained further on PMC-Patients patient-to-article retrieval", 549_000_000,
        example_task="link_prediction"),
    "scimult-moe-pmcpatients-ppr": ReleasedModel(
        "scimult_moe_pmcpatients_ppr.ckpt", 1_649_716_317,
        "3f3a9c03964019f92afbc933011174480fb3682fbfc8e2e4b808146383b6ec12",
        "SciMult-MoE trained further on PMC-Patients patient-to-patient retrieval", 549_000_000,
        example_task="link_prediction"),
}


def is_released_name(name: str | os.PathLike) -> bool:
    """True for a name of :data:`RELEASED` that is not also an existing local path (a folder wins)."""
    return isinstance(name, str) and name in RELEASED and not os.path.exists(name)


def released_folder(name: str) -> Path:
    """Where the converted folder of a released model lives (it may not exist yet)."""
    return cache_dir() / "released" / name
