"""Encoding for retrieval and evaluation: any SentenceTransformer (SciMult or plain), a task's expert, optional cache.

A SciMult model (its Transformer module lists ``"task"`` in ``modules.json`` kwargs, i.e.
``st.module_kwargs``) is called as ``st.encode(texts, task=<task>)``, so both sides of every comparison
go through the task's expert. A plain SentenceTransformer gets no ``task``: search queries and documents
use ``encode_query`` / ``encode_document`` (its own query/document prompts, if any, as MTEB does), every
other text ``encode``. ``prompt_name`` selects a prompt of the model (the instruction variant).

sentence-transformers sorts each call's texts by length before batching, so batches hold texts of
similar length.

>>> from scimult_hf.retrieval.encoding import encode_texts, resolve_model   # doctest: +SKIP
>>> st = resolve_model("path/to/scimult-folder")                              # doctest: +SKIP
>>> encode_texts(st, ["BERT [SEP] We introduce ..."], task="search").shape   # doctest: +SKIP
(1, 768)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..models.tasks import check_task, prompt_for, task_names
from .cache import EmbeddingCache, model_fingerprint, texts_fingerprint

logger = logging.getLogger(__name__)

__all__ = ["check_device", "encode_by_task", "encode_for_task", "encode_texts", "model_label", "resolve_model", "similarity_kind"]


def resolve_model(model, device: str | None = None):
    """A SentenceTransformer from an instance, a released model's name, a local folder or a Hub id
    (``trust_remote_code=True``)."""
    from sentence_transformers import SentenceTransformer

    if isinstance(model, SentenceTransformer):
        return model
    if isinstance(model, (str, os.PathLike)):
        from ..models.folder import load_sentence_transformer
        from ..resolve import resolve_model_path

        kwargs = {"device": check_device(device)} if device else {}
        return load_sentence_transformer(resolve_model_path(model), **kwargs)
    raise TypeError(
        f"Expected a SentenceTransformer, a folder or a Hub id, got {type(model).__name__}. "
        "Load the model with scimult_hf.load_sentence_transformer(path) first."
    )


def check_device(device: str) -> str:
    """``device`` if torch can use it here, else ValueError naming the devices that exist."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"--device {device!r} is not a torch device ({e}); use cpu, cuda, cuda:N or mps.") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(parsed.type, False):
        have = ", ".join(k for k, ok in available.items() if ok)
        raise InputError(f"--device {device!r}: no {parsed.type} device on this machine (available: {have}).")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InputError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device


def model_label(model, st=None, fallback: str = "model") -> str:
    """A human-readable name for results: the path or id ``model`` was given as, else the model card's id."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    st = model if st is None else st
    return getattr(getattr(st, "model_card_data", None), "model_id", None) or fallback


def similarity_kind(st) -> str:
    """``"cosine"`` or ``"dot"``: how the model's embeddings are compared (cosine = dot of normalised rows)."""
    name = getattr(st, "similarity_fn_name", None) or "cosine"
    name = str(getattr(name, "value", name)).lower()
    if name in ("cosine", "cos_sim"):
        return "cosine"
    if name in ("dot", "dot_score", "dot_product"):
        return "dot"
    raise InputError(
        f"The model's similarity function is {name!r}; evaluation ranks by dot product or cosine only. "
        "Set model.similarity_fn_name = 'cosine' or 'dot'."
    )


def encode_for_task(st, texts: Sequence[str], task: str | None, *, role: str | None = None,
                    prompt_name: str | None = None, **encode_kwargs) -> np.ndarray:
    """The one task dispatch: float32 embeddings of ``texts`` through ``task``'s expert.

    A SciMult model gets ``encode(texts, task=task)`` (the task checked against the model's own names, see
    :mod:`scimult_hf.models.tasks`); a plain model ignores ``task`` and gets ``encode_query`` /
    ``encode_document`` / ``encode`` by ``role`` (``"query"``, ``"document"`` or None), as mteb's own wrapper
    calls it. The prompt is :func:`~scimult_hf.models.tasks.prompt_for`'s: ``prompt_name`` when given, else
    the model's prompt named after the task (the instruction variant), else none.
    """
    routed = task_names(st) is not None
    task = check_task(st, task) if routed else None
    encode_kwargs.setdefault("convert_to_numpy", True)
    prompt = prompt_for(st, task, prompt_name)
    if prompt is not None:
        encode_kwargs["prompt_name"] = prompt
    if routed:
        emb = st.encode(list(texts), task=task, **encode_kwargs)
    elif role == "query":
        emb = st.encode_query(list(texts), **encode_kwargs)
    elif role == "document":
        emb = st.encode_document(list(texts), **encode_kwargs)
    else:
        emb = st.encode(list(texts), **encode_kwargs)
    return np.asarray(emb, dtype=np.float32)


def encode_by_task(st, texts: Sequence[str], tasks: Sequence[str], **encode_kwargs) -> np.ndarray:
    """Embeddings of ``texts`` where row i goes through ``tasks[i]``'s expert, in the original row order.

    ``SentenceTransformer.encode`` sorts texts by length before batching and passes a per-row ``task`` list
    unchanged, so it cannot take one (SciMult refuses it there). This encodes each task's rows in one call
    and puts the rows back in order.
    """
    texts, tasks = list(texts), list(tasks)
    if len(texts) != len(tasks):
        raise InputError(f"encode_by_task: {len(texts)} texts but {len(tasks)} tasks; give one task per text.")
    out: np.ndarray | None = None
    for task in dict.fromkeys(tasks):
        rows = [i for i, t in enumerate(tasks) if t == task]
        emb = encode_for_task(st, [texts[i] for i in rows], task, **encode_kwargs)
        if out is None:
            out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
        out[rows] = emb
    if out is None:
        raise InputError("encode_by_task: no texts to encode.")
    return out


def encode_texts(
    st,
    texts: Sequence[str],
    task: str | None,
    *,
    role: str | None = None,
    prompt_name: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    cache: EmbeddingCache | None = None,
    ids: Sequence[str] | None = None,
    desc: str | None = None,
) -> np.ndarray:
    """Embeddings (float32, N x d) of ``texts`` through ``task``'s expert; cached when ``cache`` is given.

    ``role`` is ``"query"``, ``"document"`` or None; it only changes how a plain (non-SciMult) model is
    called (``encode_query`` / ``encode_document``) and is part of the cache key.
    """
    texts = list(texts)
    if not texts:
        raise InputError("No texts to encode.")
    scimult = task_names(st) is not None
    if scimult:
        task = check_task(st, task)
    prompt = prompt_for(st, task if scimult else None, prompt_name)
    prompt_text = (st.prompts or {}).get(prompt) if prompt is not None else None
    key = None
    if cache is not None:
        key = cache.key(
            model=model_fingerprint(st),
            task=task if scimult else None,
            prompt=prompt_text,
            role=None if scimult else role,
            content=texts_fingerprint(texts, ids),
        )
        hit = cache.get(key, expected_rows=len(texts))
        if hit is not None:
            logger.info("Loaded %d cached embeddings%s.", len(texts), f" ({desc})" if desc else "")
            return hit
    emb = encode_for_task(
        st, texts, task if scimult else None, role=role, prompt_name=prompt_name, batch_size=batch_size,
        show_progress_bar=show_progress_bar,
    )
    if cache is not None:
        cache.put(
            key,
            emb,
            metadata={"task": task, "prompt_name": prompt_name, "role": role, "rows": len(texts), "desc": desc},
        )
    return emb
