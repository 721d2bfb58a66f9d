"""An on-disk cache of embeddings keyed by (model, task, prompt, role, content hash).

One safetensors file per encoded text list, ``<cache_dir>/<key>.safetensors`` with a single tensor
``embeddings`` and the key's parts in the header metadata. Files are written atomically (a temporary
file in the same folder, then ``os.replace``), so an interrupted run never leaves a truncated entry;
a file that fails to load is ignored and rewritten.

The model part of the key is a fingerprint of the loaded model (a hash of every weight tensor, the
module pipeline, maximum sequence length and prompts), so a retrained model saved to the same path
never hits stale entries, and the same weights loaded from two paths share them.

>>> import tempfile, numpy as np
>>> cache = EmbeddingCache(tempfile.mkdtemp())
>>> key = cache.key(model="m0", task="search", prompt=None, role="document", content=texts_fingerprint(["a"]))
>>> cache.get(key) is None
True
>>> _ = cache.put(key, np.ones((1, 3), dtype=np.float32))
>>> cache.get(key).shape
(1, 3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CacheError
from ..io import atomic_file, remove_leftovers

logger = logging.getLogger(__name__)

__all__ = ["CacheError", "EmbeddingCache", "default_cache_dir", "model_fingerprint", "texts_fingerprint"]

_FORMAT_VERSION = "2"
# Fingerprints of loaded models, computed once per model object (dropped with the model).
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def default_cache_dir() -> Path:
    """``embeddings/`` in scimult-hf's cache folder (``$SCIMULT_HF_CACHE``, else ``~/.cache/scimult_hf``)."""
    from ..defaults import cache_dir

    return cache_dir() / "embeddings"


def texts_fingerprint(texts: Sequence[str], ids: Sequence[str] | None = None) -> str:
    """SHA-256 of the ordered texts (and ids): the content part of a cache key."""
    h = hashlib.sha256()
    h.update(f"n={len(texts)}\n".encode())
    for i, text in enumerate(texts):
        if ids is not None:
            h.update(str(ids[i]).encode("utf-8"))
            h.update(b"\x1f")
        h.update(text.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def model_fingerprint(model, refresh: bool = False) -> str:
    """SHA-256 over a SentenceTransformer's weights and setup (module types, max length, prompts, kwargs).

    Hashing the weights reads every parameter once (about a second for a BERT-base on CPU); the result is
    memoised per model object, so after changing weights in place pass ``refresh=True``.
    """
    cached = _FINGERPRINTS.get(model)
    if cached and not refresh:
        return cached
    import torch

    h = hashlib.sha256()
    setup = {
        "modules": [type(m).__module__ + "." + type(m).__qualname__ for m in model.children()],
        "max_seq_length": getattr(model, "max_seq_length", None),
        "prompts": dict(getattr(model, "prompts", None) or {}),
        "default_prompt_name": getattr(model, "default_prompt_name", None),
        "module_kwargs": {k: list(v) for k, v in (getattr(model, "module_kwargs", None) or {}).items()},
        "similarity": getattr(model, "similarity_fn_name", None),
    }
    h.update(json.dumps(setup, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    _FINGERPRINTS[model] = digest
    return digest


class EmbeddingCache:
    """Embeddings on disk, one atomic safetensors file per key (see the module docstring).

    Each file records its key and the SHA-256 of its embeddings in the header; an entry whose key or
    checksum does not match (a damaged or foreign file) is a miss and is recomputed, never trusted. The
    first write of a cache object removes what interrupted writers left behind.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._swept = False

    @staticmethod
    def key(*, model: str, task: str | None, prompt: str | None, role: str | None, content: str) -> str:
        """The cache key (a hex digest) of one encoding: model fingerprint, task, prompt text, role, content."""
        parts = {
            "v": _FORMAT_VERSION,
            "model": model,
            "task": task,
            "prompt": prompt,
            "role": role,
            "content": content,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def get(self, key: str, expected_rows: int | None = None) -> np.ndarray | None:
        """The cached array, or None when absent, unreadable, not this key's, damaged or of the wrong length."""
        path = self.path(key)
        if not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                array = f.get_tensor("embeddings")
        except Exception as e:  # a damaged file is a cache miss, not an error
            logger.warning("Ignoring unreadable embedding-cache entry %s (%s); it will be recomputed.", path, e)
            return None
        if meta.get("key") != key or meta.get("sha256") != _checksum(array):
            logger.warning("Ignoring embedding-cache entry %s: its key or checksum does not match; it will be "
                           "recomputed.", path)
            return None
        if expected_rows is not None and array.shape[0] != expected_rows:
            logger.warning("Ignoring cache entry %s: %d rows, expected %d.", path, array.shape[0], expected_rows)
            return None
        return array

    def put(self, key: str, embeddings: np.ndarray, metadata: dict[str, str] | None = None) -> Path:
        """Write atomically: a temporary file next to the target, then ``os.replace``."""
        from safetensors.numpy import save_file

        final = self.path(key)
        array = np.ascontiguousarray(embeddings, dtype=np.float32)
        meta = {"format": "scimult_hf.embeddings", "version": _FORMAT_VERSION, "key": key, "sha256": _checksum(array)}
        meta.update({k: "" if v is None else str(v) for k, v in (metadata or {}).items()})
        try:
            if not self._swept:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                remove_leftovers(self.cache_dir)
                self._swept = True
            with atomic_file(final) as tmp:
                save_file({"embeddings": array}, str(tmp), metadata=meta)
        except OSError as e:
            raise CacheError(
                f"cannot write the embedding cache at {self.cache_dir} ({e.strerror or e}). Point it elsewhere "
                "(--cache-dir DIR, or $SCIMULT_HF_CACHE) or turn it off (--no-cache)."
            ) from e
        return final


def _checksum(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()
