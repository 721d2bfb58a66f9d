"""Chunked exact top-k, the FAISS option, and the embedding cache."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest
import torch

from scimult_hf.retrieval.cache import EmbeddingCache, model_fingerprint, texts_fingerprint
from scimult_hf.retrieval.search import exact_topk, faiss_topk, topk_to_run


def _random(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk_size,query_batch_size", [(7, 3), (50, 1000), (1000, 5), (1, 1)])
def test_exact_topk_matches_full_matrix(chunk_size, query_batch_size):
    q, c = _random(23, 16, 0), _random(101, 16, 1)
    scores, idx = exact_topk(q, c, 10, chunk_size=chunk_size, query_batch_size=query_batch_size)
    full = torch.from_numpy(q @ c.T)
    ref_scores, ref_idx = torch.topk(full, 10, dim=1)
    assert torch.allclose(scores, ref_scores, atol=1e-6)
    assert torch.equal(idx, ref_idx)  # random scores: no ties


def test_exact_topk_k_larger_than_corpus_and_memmap(tmp_path):
    c = _random(5, 4, 2)
    path = tmp_path / "c.npy"
    np.save(path, c)
    mm = np.load(path, mmap_mode="r")
    scores, idx = exact_topk(_random(2, 4, 3), mm, 100, chunk_size=2)
    assert scores.shape == (2, 5) and sorted(idx[0].tolist()) == [0, 1, 2, 3, 4]
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_exact_topk_errors():
    with pytest.raises(ValueError, match="Embedding sizes differ"):
        exact_topk(np.zeros((1, 3), np.float32), np.zeros((2, 4), np.float32), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        exact_topk(np.zeros((1, 3), np.float32), np.zeros((2, 3), np.float32), 0)


def test_topk_to_run_drops_identical_ids():
    scores = torch.tensor([[0.9, 0.5, 0.1]])
    idx = torch.tensor([[0, 1, 2]])
    run = topk_to_run(["a"], ["a", "b", "c"], scores, idx, ignore_identical_ids=True, k=2)
    assert run == {"a": {"b": 0.5, "c": pytest.approx(0.1)}}


def test_faiss_missing_names_the_install(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r"pip install faiss-cpu"):
        faiss_topk(_random(2, 4, 0), _random(5, 4, 1), 3)


def test_faiss_matches_exact_when_installed():
    pytest.importorskip("faiss", reason="faiss is optional (pip install faiss-cpu)")
    q, c = _random(10, 8, 0), _random(200, 8, 1)
    s1, i1 = faiss_topk(q, c, 5)
    s2, i2 = exact_topk(q, c, 5)
    assert torch.equal(i1, i2) and torch.allclose(s1, s2, atol=1e-5)


# ---------------------------------------------------------------------------------------------- cache


def test_cache_round_trip_atomic_and_keyed(tmp_path):
    cache = EmbeddingCache(tmp_path / "c")
    content = texts_fingerprint(["a", "b"], ["1", "2"])
    key = cache.key(model="m", task="search", prompt=None, role=None, content=content)
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = cache.put(key, emb, metadata={"task": "search"})
    assert np.array_equal(cache.get(key, expected_rows=2), emb)
    assert sorted(os.listdir(tmp_path / "c")) == [path.name]  # no temporary files left behind
    assert cache.get(key, expected_rows=3) is None  # wrong length is a miss
    # Every part of the key matters.
    others = [
        cache.key(model="m2", task="search", prompt=None, role=None, content=content),
        cache.key(model="m", task="classification", prompt=None, role=None, content=content),
        cache.key(model="m", task="search", prompt="Instruction: ", role=None, content=content),
        cache.key(model="m", task="search", prompt=None, role=None, content=texts_fingerprint(["a", "c"], ["1", "2"])),
    ]
    assert len({key, *others}) == 5


def test_cache_ignores_a_damaged_file(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.path("k").write_bytes(b"not safetensors")
    assert cache.get("k") is None
    cache.put("k", np.ones((1, 2), np.float32))
    assert cache.get("k").shape == (1, 2)


def test_texts_fingerprint_is_order_and_id_sensitive():
    assert texts_fingerprint(["a", "b"]) != texts_fingerprint(["b", "a"])
    assert texts_fingerprint(["a"], ["1"]) != texts_fingerprint(["a"], ["2"])
    assert texts_fingerprint(["ab", "c"]) != texts_fingerprint(["a", "bc"])


def test_model_fingerprint_tracks_weights():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    st = SentenceTransformer(modules=[Dense(4, 3)], device="cpu")
    f1 = model_fingerprint(st)
    assert model_fingerprint(st) == f1
    with torch.no_grad():
        next(st.parameters()).add_(1.0)
    assert model_fingerprint(st) == f1  # memoised per model object
    assert model_fingerprint(st, refresh=True) != f1


def test_faiss_inverted_file_index_for_large_collections():
    """From ``ivf_from`` rows the one FAISS builder makes an inverted-file index (trained on a sample across the
    shards, a share of the lists probed) whose top-10 mostly agrees with exact search on clustered vectors."""
    pytest.importorskip("faiss")
    from scimult_hf.retrieval.search import FAISS_NPROBE_SHARE, faiss_index

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    corpus = centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.standard_normal((20_000, 32)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[rng.integers(0, 20_000, 50)] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    shards = [(s, corpus[s : s + 6000]) for s in range(0, 20_000, 6000)]  # uneven shards, as a collection has
    index = faiss_index(lambda: iter(shards), 20_000, 32, ivf_from=10_000)
    assert type(index).__name__ == "IndexIVFFlat" and index.ntotal == 20_000
    assert index.nlist == int(20_000 ** 0.5) and index.nprobe == max(1, round(index.nlist * FAISS_NPROBE_SHARE))
    _, approx = index.search(queries, 10)
    _, exact = exact_topk(queries, corpus, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.tolist(), exact.tolist())])
    assert recall >= 0.8, recall
    flat = faiss_index(lambda: iter(shards), 20_000, 32, ivf_from=20_001)
    assert type(flat).__name__ == "IndexFlatIP"
