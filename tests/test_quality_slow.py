"""Reference figure: the offline default model reproduces SciFact test nDCG@10 = 0.648 +- 0.003.

all-MiniLM-L6-v2 upcycled with equal experts (mean pooling, normalised, max_seq_length 256), documents as
``title [SEP] abstract``, dot product, the full BEIR SciFact test split (300 claims, 5,183 abstracts).
Several minutes on 2 CPU cores: marked slow (run with ``pytest -m slow tests/test_quality_slow.py``).
"""

from __future__ import annotations

import pytest

from scimult_hf import load_sentence_transformer
from scimult_hf.evaluation import evaluate_search

REFERENCE_NDCG10 = 0.648
TOLERANCE = 0.003


@pytest.mark.slow
def test_scifact_ndcg10_of_offline_default_model(minilm_scimult, shared_dir):
    st = load_sentence_transformer(minilm_scimult)
    assert st.max_seq_length == 256
    assert st.similarity_fn_name == "cosine"  # normalised embeddings: cosine == dot product
    result = evaluate_search(st, shared_dir / "data" / "scifact", split="test", show_progress_bar=False)
    assert result["num_queries"] == 300 and result["num_documents"] == 5183
    ndcg = result["metrics"]["ndcg@10"]
    print(f"SciFact test nDCG@10 = {ndcg:.4f} (reference {REFERENCE_NDCG10})")
    assert abs(ndcg - REFERENCE_NDCG10) <= TOLERANCE, result["metrics"]
