"""An MTEB (2.x) encoder that sends every MTEB task to one SciMult expert.

:class:`SciMultMTEBEncoder` implements mteb's ``EncoderProtocol`` (``encode(inputs, *, task_metadata,
hf_split, hf_subset, prompt_type, **kwargs)``, ``similarity``, ``similarity_pairwise``,
``mteb_model_meta``). The expert of a task is chosen, in this order, by

1. ``task_to_expert[task name]`` or ``task_to_expert[task type]`` (your overrides);
2. :data:`NAME_TO_EXPERT` - tasks whose type hides what they measure: citation prediction such as
   ``SciDocsRR`` (a Reranking task) and ``SCIDOCS`` (a Retrieval task) -> ``link_prediction``;
3. :data:`TYPE_TO_EXPERT` - Retrieval / Reranking (and their instruction forms) -> ``search``;
   Classification / MultilabelClassification / ZeroShotClassification / Clustering / Regression ->
   ``classification``;
4. ``default_expert`` (``"search"``) for the rest (STS, PairClassification, BitextMining, Summarization, ...).

Both sides of a task use its expert (queries and documents alike), as in the paper. For a plain
SentenceTransformer (no experts) the wrapper falls back to ``encode_query`` / ``encode_document`` /
``encode`` like mteb's own wrapper, and still records the routing it would have used.

Every call is recorded in :attr:`SciMultMTEBEncoder.routing` as ``(task name, task type, expert,
prompt type)``.

>>> import mteb                                                                  # doctest: +SKIP
>>> encoder = SciMultMTEBEncoder("path/to/scimult-folder")                       # doctest: +SKIP
>>> results = mteb.evaluate(encoder, mteb.get_tasks(tasks=["SciDocsRR"]))        # doctest: +SKIP
>>> encoder.expert_for(mteb.get_task("SciDocsRR").metadata)                      # doctest: +SKIP
'link_prediction'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from ..models.export import exported_task
from ..models.tasks import task_names
from ..retrieval import encode_for_task, model_label, resolve_model
from ..text import paper_text

logger = logging.getLogger(__name__)

__all__ = ["NAME_TO_EXPERT", "TYPE_TO_EXPERT", "SciMultMTEBEncoder", "expert_for_task"]

TYPE_TO_EXPERT: dict[str, str] = {
    "Retrieval": "search",
    "InstructionRetrieval": "search",
    "Reranking": "search",
    "InstructionReranking": "search",
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "ZeroShotClassification": "classification",
    "Clustering": "classification",
    "Regression": "classification",
}

NAME_TO_EXPERT: dict[str, str] = {
    # SciDocs citation prediction: given a paper, rank the papers it cites / that co-cite it.
    "SciDocsRR": "link_prediction",
    "SCIDOCS": "link_prediction",
}


def expert_for_task(
    task_metadata,
    task_to_expert: Mapping[str, str] | None = None,
    default_expert: str = "search",
) -> str:
    """The expert for an MTEB task (its ``TaskMetadata``, or anything with ``.name`` and ``.type``)."""
    overrides = task_to_expert or {}
    name, ttype = getattr(task_metadata, "name", None), getattr(task_metadata, "type", None)
    for table in (overrides, NAME_TO_EXPERT):
        if name in table:
            return table[name]
    if ttype in overrides:
        return overrides[ttype]
    return TYPE_TO_EXPERT.get(ttype, default_expert)


def _result_name(model, st) -> str:
    """The name mteb files results under: a Hub id as it is, a local folder by its folder name (never an
    absolute path), so that results compare with the leaderboard's."""
    label = model_label(model, st, fallback="scimult-hf/model")
    if os.path.isabs(label) or os.path.exists(label):
        return os.path.basename(os.path.normpath(label))
    return label


class SciMultMTEBEncoder:
    """mteb 2.x encoder over a SentenceTransformer, routing each task to an expert (see module docs).

    Args:
        model: SentenceTransformer, folder or Hub id (a SciMult folder loads with remote code).
        task_to_expert: overrides {MTEB task name or task type: expert}.
        default_expert: expert for task types without a rule.
        prompt_name: a prompt of the model to use for every task; by default the prompt named after the
            expert is used when the model has one (the instruction variant's convention), else none.
        model_name: name for mteb's results (default: the model's own name, or the folder).
        revision: revision string recorded in mteb's results.
    """

    def __init__(
        self,
        model,
        task_to_expert: Mapping[str, str] | None = None,
        default_expert: str = "search",
        prompt_name: str | None = None,
        model_name: str | None = None,
        revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        from mteb.models import ModelMeta

        self.model = resolve_model(model, device=kwargs.pop("device", None))
        self.task_to_expert = dict(task_to_expert or {})
        self.default_expert = default_expert
        self.prompt_name = prompt_name
        self.is_scimult = task_names(self.model) is not None
        #: A per-task export embeds for its one task whatever is asked: the routing records that task.
        self.export_task = exported_task(model) if isinstance(model, (str, os.PathLike)) and os.path.isdir(model) \
            else None
        if self.export_task is not None:
            others = sorted({*self.task_to_expert.values()} - {self.export_task})
            if others:
                raise InputError(f"{model} is the per-task export of {self.export_task!r}: it embeds for that task "
                                 f"only, so it cannot route to {others}. Evaluate the SciMult folder instead.")
            self.default_expert = self.export_task
        experts = self._experts()
        for expert in list(self.task_to_expert.values()) + [default_expert]:
            if experts is not None and expert not in experts:
                raise InputError(f"Unknown expert {expert!r}; this model's tasks are {sorted(experts)}.")
        meta = ModelMeta.from_sentence_transformer_model(self.model)
        known = meta.name if meta.name and not meta.name.startswith("no_model_name") else None
        name = model_name or known or _result_name(model, self.model)
        if "/" not in name:  # mteb expects "org/name"
            name = f"local/{name}"
        self.mteb_model_meta = meta.model_copy(update={"name": name, "revision": revision or meta.revision})
        self.routing: list[tuple[str, str, str, str | None]] = []

    def _experts(self) -> set[str] | None:
        names = task_names(self.model)
        return None if names is None else set(names)

    def expert_for(self, task_metadata) -> str:
        """The expert this encoder uses for a task (a per-task export: always its own task)."""
        if self.export_task is not None:
            return self.export_task
        return expert_for_task(task_metadata, self.task_to_expert, self.default_expert)

    def encode(
        self,
        inputs,
        *,
        task_metadata,
        hf_split: str,
        hf_subset: str,
        prompt_type=None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Encode an MTEB DataLoader of text batches with the task's expert."""
        expert = self.expert_for(task_metadata)
        ptype = getattr(prompt_type, "value", prompt_type)
        texts = [text for batch in inputs for text in self._texts(batch)]
        self.routing.append((task_metadata.name, task_metadata.type, expert, ptype))
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        return encode_for_task(
            self.model,
            texts,
            expert if self.is_scimult else None,
            role=ptype if ptype in ("query", "document") else None,
            prompt_name=self.prompt_name,
            batch_size=kwargs.get("batch_size", 32),
            show_progress_bar=kwargs.get("show_progress_bar", False),
        )

    @staticmethod
    def _texts(batch) -> list[str]:
        """The model input of a batch: documents that come with their ``title`` and ``body`` (mteb joins them
        as ``title text``) become SciMult's ``title [SEP] abstract``; everything else is mteb's ``text``."""
        bodies = batch.get("body")
        if bodies is None:
            return list(batch["text"])
        titles = batch.get("title") or [None] * len(bodies)
        return [paper_text(title, body) for title, body in zip(titles, bodies)]

    def similarity(self, embeddings1, embeddings2):
        """The model's similarity matrix (cosine or dot product)."""
        return self.model.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        """The model's row-wise similarity."""
        return self.model.similarity_pairwise(embeddings1, embeddings2)

    def routing_by_task(self) -> dict[str, set[str]]:
        """{task name: experts used}, from :attr:`routing`."""
        out: dict[str, set[str]] = {}
        for name, _type, expert, _ptype in self.routing:
            out.setdefault(name, set()).add(expert)
        return out
