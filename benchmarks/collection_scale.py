"""The collection at scale: a Lance dataset of N papers, searched exact, through its ANN index and hybrid, with
the same vectors through FAISS (flat and IVF) and numpy beside it.

    python benchmarks/collection_scale.py --papers 100000 1000000     # about 25 minutes on 2 CPU cores
    python benchmarks/collection_scale.py --papers 10000000 --no-faiss  # 10M: 15 GB of vectors, on disk and in memory
    python benchmarks/collection_scale.py --papers 1000000 --index-types  # Lance's dense index types compared

Each size runs in a fresh process (peak memory is its own). The vectors are synthetic, 384-dimensional unit
vectors around 2,000 random topic centres (uniformly random vectors have no near neighbours worth the name);
each paper has a year, a venue and a 24-word text from a Zipf vocabulary of 30,000 words, for the filter and the
full-text index. The collection is written in chunks of 100,000 (one commit each) as ``encode`` writes it, so
memory while writing does not grow with N.

Per size: write time, disk size, the time to build what ``encode`` builds (the package's ``build_indexes``: BM25
on the text, a B-tree on ``id``, the ANN index), peak memory; p50 / p99 latency of one top-10 query (exact, ANN at
several ``nprobes``, ANN with a ``year`` filter, lexical, hybrid, all through the package's query parameters) and
recall@10 against the exact top 10 (a numpy matrix product on the same vectors, also timed); FAISS
``IndexFlatIP`` and ``IndexIVFFlat`` (sqrt(N) lists) on the same vectors, for the same queries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, CENTRES, CHUNK = 384, 2000, 100_000
RESULTS = Path(__file__).resolve().parent / "results"


def _clustered(rng, centres: np.ndarray, rows: int) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, DIM), dtype=np.float32) / DIM ** 0.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _texts(rng, rows: int, vocab: int = 30_000, words: int = 24) -> list[str]:
    ids = np.minimum(rng.zipf(1.3, size=(rows, words)), vocab)
    return [" ".join(f"w{j}" for j in row) for row in ids]


def _stats(times: list[float]) -> dict:
    ms = 1000 * np.asarray(times)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _timed(fn, queries) -> tuple[list, dict]:
    fn(queries[0])  # warm
    out, times = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t)
    return out, _stats(times)


def _recall(approx: list[list[str]], exact: list[list[str]]) -> float:
    return round(float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)])), 4)


def child(n: int, work: Path, queries: int, use_faiss: bool) -> dict:
    import lance
    import pyarrow as pa

    from scimult_hf.corpus.collection import ANN_INDEX, RRF_K, build_indexes, nearest_query, reciprocal_rank_fusion
    from scimult_hf.environment import peak_rss_mib

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    uri = os.fspath(work / f"c{n}")
    row: dict = {"papers": n, "ann_index": ANN_INDEX}
    t = time.perf_counter()
    keep, years = [], []
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        vectors = _clustered(rng, centres, rows)
        keep.append(vectors)
        years.append(rng.integers(1990, 2026, rows).astype(np.int32))
        table = pa.table({
            "id": [f"p{start + i}" for i in range(rows)],
            "year": years[-1],
            "venue": pa.array(rng.choice(["Nature", "Cell", "Science", "PLOS ONE"], rows)),
            "text": _texts(rng, rows),
            "vector_search": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
        })
        lance.write_dataset(table, uri, mode="append" if start else "create", max_rows_per_file=1 << 22)
    row["write_s"] = round(time.perf_counter() - t, 1)
    row["write_peak_rss_mib"] = round(peak_rss_mib())
    ds = lance.dataset(uri)
    t = time.perf_counter()
    build_indexes(ds, ["search"])  # what encode builds: BM25 on text, a B-tree on id, the ANN index
    row["index_build_s"] = round(time.perf_counter() - t, 1)
    ds.create_scalar_index("year", index_type="BTREE")
    ds = lance.dataset(uri)
    row["disk_mib"] = round(sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file()) / 2 ** 20)

    qv = _clustered(np.random.default_rng(7), centres, queries)
    qt = [" ".join(t.split()[:4]) for t in _texts(np.random.default_rng(8), queries)]
    matrix, year = np.concatenate(keep), np.concatenate(years)
    del keep, years
    ids = np.array([f"p{i}" for i in range(n)])

    def numpy_top(q, mask=None):
        s = matrix @ q
        if mask is not None:
            s = np.where(mask, s, -np.inf)
        top = np.argpartition(-s, 10)[:10]
        return ids[top[np.argsort(-s[top])]].tolist()

    truth, row["numpy"] = _timed(numpy_top, qv)  # exact top 10: the reference for every recall below

    def dense(q, *, exact=False, nprobes=None, where=None):
        nearest = nearest_query("vector_search", q, 10, exact=exact, nprobes=nprobes)
        return ds.to_table(nearest=nearest, columns=["id", "_distance"], filter=where,
                           prefilter=True).column("id").to_pylist()

    sub = max(10, queries // 10)  # Lance's exact scan is slow: timed on a tenth of the queries
    got, row["exact"] = _timed(lambda q: dense(q, exact=True), qv[:sub])
    row["exact"]["recall@10"] = _recall(got, truth[:sub])
    row["ann"] = {}
    for nprobes in (8, 16, 32):
        approx, stats = _timed(lambda q, p=nprobes: dense(q, nprobes=p), qv)
        row["ann"][nprobes] = {**stats, "recall@10": _recall(approx, truth)}
    where, mask = "year >= 2020", year >= 2020
    approx_f, stats = _timed(lambda q: dense(q, where=where), qv)
    row["ann_filtered"] = {**stats, "recall@10": _recall(approx_f, [numpy_top(q, mask) for q in qv]),
                           "where": where}

    def lexical(text):
        return ds.to_table(full_text_query=text, columns=["id", "_score"], limit=100).column("id").to_pylist()

    _, row["lexical"] = _timed(lexical, qt)

    def hybrid(pair):
        v, text = pair
        d = ds.to_table(nearest=nearest_query("vector_search", v, 100), columns=["id", "_distance"]).column("id")
        return reciprocal_rank_fusion([d.to_pylist(), lexical(text)], k=RRF_K)[:10]

    _, row["hybrid"] = _timed(hybrid, list(zip(qv, qt)))

    if use_faiss:
        import faiss

        t = time.perf_counter()
        flat = faiss.IndexFlatIP(DIM)
        flat.add(matrix)
        flat_s = time.perf_counter() - t
        got, stats = _timed(lambda q: ids[flat.search(q[None], 10)[1][0]].tolist(), qv)
        row["faiss_flat"] = {**stats, "build_s": round(flat_s, 1), "recall@10": _recall(got, truth)}
        t = time.perf_counter()
        nlist = int(n ** 0.5)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(matrix[np.linspace(0, n - 1, min(n, 50 * nlist)).astype(np.int64)])
        ivf.add(matrix)
        ivf.nprobe = 16
        ivf_s = time.perf_counter() - t
        got, stats = _timed(lambda q: ids[ivf.search(q[None], 10)[1][0]].tolist(), qv)
        row["faiss_ivf"] = {**stats, "build_s": round(ivf_s, 1), "recall@10": _recall(got, truth), "nprobe": 16}
    row["peak_rss_mib"] = round(peak_rss_mib())
    return row


def variants(n: int, work: Path, queries: int) -> dict:
    """The dense index types Lance offers, on the same N vectors: build time, then p50 / p99 and recall@10 (against
    a numpy matrix product) at a few ``nprobes`` and refine factors; what chose
    :data:`scimult_hf.corpus.collection.ANN_INDEX`."""
    import lance
    import pyarrow as pa

    from scimult_hf.environment import peak_rss_mib

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    uri = os.fspath(work / f"v{n}")
    parts = []
    for start in range(0, n, CHUNK):
        vectors = _clustered(rng, centres, min(CHUNK, n - start))
        parts.append(vectors)
        table = pa.table({"id": [f"p{start + i}" for i in range(len(vectors))],
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)})
        lance.write_dataset(table, uri, mode="append" if start else "create", max_rows_per_file=1 << 22)
    matrix = np.concatenate(parts)
    del parts
    qv = _clustered(np.random.default_rng(7), centres, queries)
    truth = [[f"p{i}" for i in np.argsort(-(matrix @ q))[:10]] for q in qv]
    del matrix
    nlist = int(n ** 0.5)
    configs = [
        ("IVF_PQ", {"num_partitions": nlist, "num_sub_vectors": DIM // 8}, [(16, 10), (32, 10), (32, 50), (64, 100)]),
        ("IVF_SQ", {"num_partitions": nlist}, [(16, 10), (32, 10)]),
        ("IVF_FLAT", {"num_partitions": nlist}, [(8, None), (16, None), (32, None)]),
        ("IVF_HNSW_SQ", {"num_partitions": max(1, n // 250_000)}, [(1, 10), (2, 10)]),
    ]
    out = {"papers": n, "variants": []}
    for index_type, params, probes in configs:
        ds = lance.dataset(uri)
        t = time.perf_counter()
        ds.create_index("vector", index_type=index_type, metric="dot", replace=True, **params)
        build = round(time.perf_counter() - t, 1)
        ds = lance.dataset(uri)
        for nprobes, refine in probes:
            nearest = {"column": "vector", "k": 10, "metric": "dot", "nprobes": nprobes}
            if refine:
                nearest["refine_factor"] = refine

            def search(q, nearest=nearest):
                return ds.to_table(nearest={**nearest, "q": q}, columns=["id", "_distance"]).column("id").to_pylist()

            got, stats = _timed(search, qv)
            out["variants"].append({"index": index_type, "params": params, "build_s": build, "nprobes": nprobes,
                                    "refine_factor": refine, **stats, "recall@10": _recall(got, truth)})
            print(json.dumps(out["variants"][-1]), file=sys.stderr, flush=True)
    out["peak_rss_mib"] = round(peak_rss_mib())
    return out


def variants_report(result: dict) -> str:
    lines = [f"Dense index types on {result['papers']:,} clustered vectors (384-d, dot product; recall@10 against a "
             "numpy matrix product):", "",
             "| index | build s | nprobes | refine factor | p50 ms | p99 ms | recall@10 | ≤ 10 ms at ≥ 0.95 |",
             "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for v in result["variants"]:
        ok = v["p50_ms"] <= 10 and v["recall@10"] >= 0.95
        lines.append(f"| {v['index']} | {v['build_s']} | {v['nprobes']} | {v['refine_factor'] or '-'} | "
                     f"{v['p50_ms']} | {v['p99_ms']} | {v['recall@10']} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def _best(ann: dict) -> str:
    """The lists probed with the lowest p50 among those at recall@10 >= 0.95 (else the best recall)."""
    return min(ann, key=lambda p: (ann[p]["recall@10"] < 0.95, ann[p]["p50_ms"] if ann[p]["recall@10"] >= 0.95
                                   else -ann[p]["recall@10"]))


def report(rows: list[dict]) -> str:
    lines = ["| papers | write s | disk MiB | index build s | exact p50 | ANN p50 / p99 (lists probed) | "
             "ANN recall@10 | ANN + filter p50 (recall) | lexical p50 | hybrid p50 | numpy p50 | FAISS flat p50 | "
             "FAISS IVF p50 (recall) | peak RSS MiB |", "|" + "---:|" * 14]
    for r in rows:
        best = _best(r["ann"])
        a = r["ann"][best]
        get = lambda k, f="p50_ms": r[k][f] if k in r else "-"  # noqa: E731
        ivf = f"{r['faiss_ivf']['p50_ms']} ({r['faiss_ivf']['recall@10']})" if "faiss_ivf" in r else "-"
        lines.append(f"| {r['papers']:,} | {r['write_s']} | {r['disk_mib']:,} | {r['index_build_s']} | "
                     f"{r['exact']['p50_ms']} | {a['p50_ms']} / {a['p99_ms']} ({best}) | "
                     f"{a['recall@10']} | {r['ann_filtered']['p50_ms']} ({r['ann_filtered']['recall@10']}) | "
                     f"{r['lexical']['p50_ms']} | {r['hybrid']['p50_ms']} | {get('numpy')} | {get('faiss_flat')} | "
                     f"{ivf} | {r['peak_rss_mib']:,} |")
    return "\n".join(lines)


def goals(rows: list[dict]) -> list[str]:
    out = []
    for n, ms in ((1_000_000, 10), (10_000_000, 20)):
        r = next((r for r in rows if r["papers"] == n), None)
        if r is None:
            out.append(f"- {n:,} papers ≤ {ms} ms p50 at recall@10 ≥ 0.95: **not run**")
            continue
        ok = [a for a in r["ann"].values() if a["recall@10"] >= 0.95 and a["p50_ms"] <= ms]
        best = r["ann"][_best(r["ann"])]
        out.append(f"- {n:,} papers ≤ {ms} ms p50 at recall@10 ≥ 0.95: {best['p50_ms']} ms at "
                   f"{best['recall@10']}: **{'met' if ok else 'not met'}**")
    return out


def plot(rows: list[dict], path: Path, record: dict | None = None) -> None:
    """Recall@10 against p50 latency: Lance's ANN index at each nprobes, FAISS IVF, exact search, per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scimult_hf.environment import png_metadata

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for r, colour in zip(rows, ["tab:blue", "tab:orange", "tab:green"]):
        ann = sorted(r["ann"].items(), key=lambda x: int(x[0]))
        ax.plot([a["p50_ms"] for _, a in ann], [a["recall@10"] for _, a in ann], "o-", color=colour,
                label=f"Lance {r.get('ann_index', 'IVF_PQ')}, {r['papers']:,} (lists probed {ann[0][0]}-{ann[-1][0]})")
        ax.plot(r["exact"]["p50_ms"], 1.0, "s", color=colour, label=f"Lance exact, {r['papers']:,}")
        if "numpy" in r:
            ax.plot(r["numpy"]["p50_ms"], 1.0, "x", color=colour, label=f"numpy exact, {r['papers']:,}")
        if "faiss_ivf" in r:
            ax.plot(r["faiss_ivf"]["p50_ms"], r["faiss_ivf"]["recall@10"], "^", color=colour,
                    label=f"FAISS IVF-Flat, {r['papers']:,}")
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency of one top-10 query (ms, log scale)")
    ax.set_ylabel("recall@10 against exact")
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=png_metadata(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--work", default=None, help="folder for the datasets (default: a temporary one)")
    parser.add_argument("--output", default=os.fspath(RESULTS / "collection_scale"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the saved JSON")
    parser.add_argument("--index-types", action="store_true",
                        help="compare Lance's dense index types on the first --papers size instead "
                             "(writes collection_scale_index_types.{md,json})")
    args = parser.parse_args()
    if args.index_types:
        from scimult_hf.environment import environment_line, environment_record

        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            result = variants(args.papers[0], Path(tmp), args.queries)
        text = "\n".join([variants_report(result), "", environment_line()])
        print(text)
        out = args.output + "_index_types"
        Path(out + ".md").write_text(text + "\n", encoding="utf-8")
        Path(out + ".json").write_text(json.dumps({**result, "environment": environment_record()}, indent=2) + "\n",
                                       encoding="utf-8")
        return
    if args.replot:  # the table, goals and plot again from the saved JSON
        saved = json.loads(Path(args.output + ".json").read_text())
        from scimult_hf.environment import environment_line

        text = "\n".join([report(saved["rows"]), "", *goals(saved["rows"]), "", environment_line(saved["environment"])])
        Path(args.output + ".md").write_text(text + "\n", encoding="utf-8")
        plot(saved["rows"], Path(args.output + ".png"), saved["environment"])
        return
    if args.child is not None:
        row = child(args.child, Path(args.work), args.queries, not args.no_faiss)
        print("RESULT " + json.dumps(row), flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for n in args.papers:
            argv = [sys.executable, __file__, "--child", str(n), "--work", tmp, "--queries", str(args.queries)]
            argv += ["--no-faiss"] * args.no_faiss
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{n:,} papers failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.split("RESULT ", 1)[1]))
            print(json.dumps(rows[-1]), flush=True)
            for item in Path(tmp).iterdir():
                shutil.rmtree(item, ignore_errors=True)
    from scimult_hf.environment import environment_line, environment_record

    text = "\n".join([report(rows), "", *goals(rows), "", environment_line()])
    print(text)
    Path(args.output + ".md").write_text(text + "\n", encoding="utf-8")
    Path(args.output + ".json").write_text(json.dumps({"rows": rows, "environment": environment_record()},
                                                      indent=2) + "\n", encoding="utf-8")
    plot(rows, Path(args.output + ".png"))


if __name__ == "__main__":
    main()
