"""The user's main job: encode a collection of papers once, then search, classify and recommend over it.

* :mod:`.reader` - papers from JSONL / CSV / parquet, streamed through ``datasets``, checked row by row;
* :mod:`.encoders` - text to embeddings for one task (PyTorch or ONNX Runtime);
* :mod:`.store` - the collection is a Lance dataset (a folder or an object-store URI) and its run record;
* :mod:`.writer` - ``encode_corpus``: a commit per shard (resumable, several processes), atomic replacement;
* :mod:`.ray_engine` - ``encode_with_ray``: the same collection written by Ray Data workers (a cluster);
* :mod:`.collection` - :class:`Collection`: dense (exact or IVF), lexical (BM25) and hybrid search, filters;
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
        "ray_engine": ["encode_with_ray"],
    },
)
