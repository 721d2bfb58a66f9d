"""Retrieval over papers: validated data loaders, encoding through a task's expert, the embedding cache
and exact / FAISS top-k search. Used by evaluation, the corpus commands and the inference handler.

* :mod:`.data` - BEIR folders and classification JSONL folders, checked row by row;
* :mod:`.encoding` - the one task dispatch (``encode(task=...)`` for SciMult, ``encode_query`` /
  ``encode_document`` for plain models), with an optional cache;
* :mod:`.cache` - embeddings on disk keyed by (model, task, prompt, content);
* :mod:`.search` - the one running top-k over shards or chunks (bounded memory) and the one FAISS index
  builder (flat, or inverted-file for large collections).
"""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        'cache': ['CacheError', 'EmbeddingCache', 'default_cache_dir', 'model_fingerprint', 'texts_fingerprint'],
        'data': ['ClassificationData', 'DataFormatError', 'RetrievalData', 'detect_layout', 'load_beir', 'load_candidates', 'load_classification', 'load_labels', 'load_qrels'],
        'encoding': ['check_device', 'encode_by_task', 'encode_for_task', 'encode_texts', 'model_label', 'resolve_model', 'similarity_kind'],
        'search': ['FAISS_IVF_FROM', 'exact_topk', 'faiss_index', 'faiss_topk', 'l2_normalize', 'require_faiss', 'set_nprobe', 'sharded_topk', 'topk_to_run'],
    },
)
