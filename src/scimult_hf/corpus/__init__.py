"""The user's main job: encode a collection of papers once, then search, classify and recommend over it.

* :mod:`.reader` - papers from JSONL / CSV / parquet, streamed through ``datasets``, checked row by row;
* :mod:`.encoders` - text to embeddings for one task (PyTorch or ONNX Runtime);
* :mod:`.collection` - ``encode_corpus`` (sharded, atomic, resumable, one share per process) and
  :class:`Collection` (exact shard-by-shard or FAISS top-k);
* :mod:`.cli` - ``scimult-hf encode``, ``search``, ``classify`` and ``recommend``.
"""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "reader": ["Columns", "PaperFile", "count_papers", "read_papers"],
        "encoders": ["BACKENDS", "Encoder", "load_encoder"],
        "collection": ["Collection", "CollectionError", "encode_corpus"],
    },
)
