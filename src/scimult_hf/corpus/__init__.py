"""The user's main job: encode a collection of papers once, then search, classify and recommend over it.

* :mod:`.reader` - papers from JSONL / CSV / parquet, streamed through ``datasets``, checked row by row;
* :mod:`.encoders` - text to embeddings for one task (PyTorch or ONNX Runtime);
* :mod:`.writer` - ``encode_corpus``: sharded, atomic, resumable, one share of the shards per process;
* :mod:`.collection` - :class:`Collection`, a finished folder read shard by shard (top-k through
  :mod:`scimult_hf.retrieval.search`);
* :mod:`.commands` - search, classify and recommend over a collection; :mod:`.display` - tables;
* :mod:`.cli` - ``scimult-hf encode``, ``search``, ``classify`` and ``recommend``.
"""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "reader": ["Columns", "PaperFile", "count_papers", "read_papers"],
        "encoders": ["BACKENDS", "Encoder", "load_encoder"],
        "collection": ["Collection", "CollectionError"],
        "writer": ["encode_corpus"],
    },
)
