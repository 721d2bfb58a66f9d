"""Text -> embeddings for one task, with the PyTorch (sentence-transformers) or the ONNX Runtime backend.

An :class:`Encoder` is what the corpus commands call: ``encoder(texts, role)`` returns float32 rows, unit
length when the model compares by cosine (so a dot product ranks by the model's similarity either way).

* ``torch``: the SentenceTransformer itself, ``encode(task=...)`` through the task's expert (bf16 on a GPU
  unless told otherwise);
* ``onnx`` / ``onnx-int8``: the task's plain-BERT export run by onnxruntime (:mod:`scimult_hf.models.onnx`),
  built once per model and task and kept in the scimult-hf cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")

__all__ = ["BACKENDS", "Encoder", "load_encoder", "load_sentence_model"]


@dataclass
class Encoder:
    """Embeds texts for one task; ``similarity`` is ``"cosine"`` (rows returned unit length) or ``"dot"``."""

    task: str | None
    backend: str
    similarity: str
    dimension: int
    _encode: object = field(repr=False)

    def __call__(self, texts: list[str], role: str = "document") -> np.ndarray:
        emb = np.asarray(self._encode(texts, role), dtype=np.float32)
        if self.similarity == "cosine":
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb


def _torch_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else None
    if dtype in ("float32", "fp32"):
        return None
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise InputError(f"--dtype {dtype!r}: use auto, float32, bfloat16 or float16.")
    return names[dtype]


def load_sentence_model(model: str, device: str = "cpu", dtype: str | None = None):
    """The SentenceTransformer of ``model`` on ``device`` (bf16 on a GPU unless ``dtype`` says otherwise)."""
    from ..models.folder import load_sentence_transformer

    torch_dtype = _torch_dtype(dtype, device)
    kwargs = {"model_kwargs": {"dtype": torch_dtype}} if torch_dtype is not None else {}
    return load_sentence_transformer(model, device=device, **kwargs)


def load_encoder(model: str, task: str | None, *, backend: str = "torch", device: str | None = None,
                 dtype: str | None = None, batch_size: int = 32, prompt_name: str | None = None,
                 st=None) -> Encoder:
    """An :class:`Encoder` of ``model`` (folder or Hub id) for ``task`` with ``backend``.

    ``st``: an already loaded SentenceTransformer of ``model`` (the torch backend then reuses it).
    """
    from ..models.tasks import check_task
    from ..retrieval import check_device, encode_for_task, similarity_kind

    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    device = check_device(device) if device else "cpu"
    if backend == "torch":
        if st is None:
            st = load_sentence_model(model, device, dtype)
        task = check_task(st, task, model)

        def run(texts, role):
            return encode_for_task(st, texts, task, role=role, prompt_name=prompt_name,
                                   batch_size=batch_size, show_progress_bar=False)

        return Encoder(task, backend, similarity_kind(st), st.get_embedding_dimension(), run)
    from ..models.onnx import onnx_encoder

    if device != "cpu":
        raise InputError(f"--backend {backend} runs on the CPU; drop --device {device} or use --backend torch.")
    onnx = onnx_encoder(model, task, quantize=backend == "onnx-int8", prompt_name=prompt_name)
    return Encoder(task, backend, onnx.similarity, onnx.dimension,
                   lambda texts, role: onnx.encode(texts, batch_size=batch_size))
