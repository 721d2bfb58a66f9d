"""Peak memory of retrieval evaluation against a 200,000-document corpus (target: < 2 GB).

    python benchmarks/eval_memory.py [--docs 200000] [--queries 1000] [--dim 384] [--top-k 100]

Each stage runs in a fresh subprocess; its peak resident set size is that process's own
``VmHWM`` (:func:`scimult_hf.environment.peak_rss_mib`), printed as JSON. Stages:

* ``baseline``: import torch, numpy, scimult_hf.evaluation (the floor every stage pays);
* ``write``: generate the synthetic corpus embeddings (random, L2-normalised, float32; stand-ins for the
  encoder output) in blocks and store them through the embedding cache (atomic safetensors write);
* ``search``: what ``scimult-hf evaluate`` does after encoding - read the corpus embeddings back from
  the cache, exact chunked top-k for the queries (never a full queries x corpus matrix), build the run
  dict and score it with pytrec_eval against synthetic qrels (3 relevant documents per query);
* ``search-faiss``: the same with ``--faiss`` (skipped when faiss is not installed).

For scale: the corpus embeddings are docs x dim x 4 bytes (307 MB at the defaults); a full score matrix
would be queries x docs x 4 bytes (800 MB), which the chunked top-k never allocates (one
1,024 x 16,384 block, 64 MiB, at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from scimult_hf.environment import peak_rss_mib


def _random_unit(rng, n, d):
    import numpy as np

    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def stage(name: str, args) -> dict:
    import numpy as np

    from scimult_hf.evaluation import retrieval_metrics
    from scimult_hf.retrieval import EmbeddingCache
    from scimult_hf.retrieval.search import exact_topk, faiss_topk, topk_to_run

    out: dict = {"stage": name}
    cache = EmbeddingCache(args.cache_dir)
    key = f"synthetic-{args.docs}x{args.dim}"
    t0 = time.perf_counter()
    if name == "write":
        rng = np.random.default_rng(0)
        corpus = np.empty((args.docs, args.dim), dtype=np.float32)
        for start in range(0, args.docs, 50_000):
            stop = min(start + 50_000, args.docs)
            corpus[start:stop] = _random_unit(rng, stop - start, args.dim)
        cache.put(key, corpus, metadata={"rows": args.docs})
        out["file_mib"] = round(cache.path(key).stat().st_size / 2**20, 1)
    elif name.startswith("search"):
        corpus = cache.get(key, expected_rows=args.docs)
        assert corpus is not None, "run the write stage first"
        rng = np.random.default_rng(1)
        queries = _random_unit(rng, args.queries, args.dim)
        if name == "search-faiss":
            scores, idx = faiss_topk(queries, corpus, args.top_k)
        else:
            scores, idx = exact_topk(queries, corpus, args.top_k)
        doc_ids = [f"d{i}" for i in range(args.docs)]
        query_ids = [f"q{i}" for i in range(args.queries)]
        run = topk_to_run(query_ids, doc_ids, scores, idx)
        # Synthetic judgements: each query's top hit plus two random documents.
        qrels = {q: {next(iter(run[q])): 1, f"d{rng.integers(args.docs)}": 1, f"d{rng.integers(args.docs)}": 1}  # noqa: F601 (two random ids)
                 for q in query_ids}
        metrics = retrieval_metrics(run, qrels)
        out["metrics"] = {k: round(v, 4) for k, v in metrics.items()}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--cache-dir", default=None, help="(internal) cache folder shared by the stages")
    parser.add_argument("--stage", default=None, help="(internal) run one stage in this process")
    parser.add_argument("--limit-mib", type=float, default=2048.0)
    args = parser.parse_args(argv)

    if args.stage:
        if args.stage == "baseline":
            import numpy  # noqa: F401
            import torch  # noqa: F401

            import scimult_hf.evaluation  # noqa: F401

            print(json.dumps({"stage": "baseline", "peak_rss_mib": round(peak_rss_mib(), 1)}))
        else:
            print(json.dumps(stage(args.stage, args)))
        return 0

    import importlib.util

    stages = ["baseline", "write", "search"]
    if importlib.util.find_spec("faiss") is not None:
        stages.append("search-faiss")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in stages:
            cmd = [sys.executable, __file__, "--stage", name, "--cache-dir", tmp, "--docs", str(args.docs),
                   "--queries", str(args.queries), "--dim", str(args.dim), "--top-k", str(args.top_k)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Corpus {args.docs:,} x {args.dim} float32 ({args.docs * args.dim * 4 / 2**20:.0f} MiB), "
          f"{args.queries:,} queries, top-{args.top_k}; peak RSS per stage (VmHWM of a fresh subprocess):\n")
    print("| stage | peak RSS (MiB) | seconds | notes |")
    print("|---|---|---|---|")
    for r in rows:
        notes = ""
        if "file_mib" in r:
            notes = f"cache file {r['file_mib']} MiB"
        if "metrics" in r:
            notes = ", ".join(f"{k} {v}" for k, v in r["metrics"].items())
        print(f"| {r['stage']} | {r['peak_rss_mib']:.0f} | {r.get('seconds', '')} | {notes} |")
    worst = max(r["peak_rss_mib"] for r in rows)
    verdict = "OK" if worst < args.limit_mib else "OVER"
    print(f"\nLargest peak: {worst:.0f} MiB (limit {args.limit_mib:.0f} MiB): {verdict}")
    return 0 if worst < args.limit_mib else 1


if __name__ == "__main__":
    sys.exit(main())
