"""Lexical, dense and hybrid search over a collection, on the real sets in ``../shared``: nDCG@10 per set.

    python benchmarks/hybrid_quality.py                                   # the offline default model
    python benchmarks/hybrid_quality.py --model trained=PATH --model default=default

Each set's corpus is encoded into a collection (``encode_corpus``, the command's code) and each test query is
searched three ways through the collection: ``lexical`` (BM25 through the full-text index), ``dense`` (the
task's expert: search for SciFact, link prediction for the two citation sets) and ``hybrid`` (the two lists,
100 deep, fused by reciprocal rank). A citation query is a paper: its own id is never a hit. The results go
to ``benchmarks/results/hybrid_quality.{md,json,png}`` with the goal: hybrid at least 0.02 above the better of
the two on the search set, and never below it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SETS = {"SciFact": ("scifact", "search"), "unarXive cites": ("unarxive-cites", "link_prediction"),
        "SYNERGY cites": ("synergy-cites", "link_prediction")}
MODES = ("lexical", "dense", "hybrid")


def _papers(folder: Path, out: Path) -> Path:
    with open(folder / "corpus.jsonl", encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            dst.write(json.dumps({"id": row["_id"], "title": row.get("title", ""), "abstract": row["text"]}) + "\n")
    return out


def evaluate_set(model: str, name: str, work: Path, depth: int) -> dict:
    from tqdm.auto import tqdm

    from scimult_hf.corpus import Collection, encode_corpus
    from scimult_hf.evaluation.metrics import retrieval_metrics
    from scimult_hf.retrieval import load_beir

    folder, task = SETS[name]
    data = load_beir(SHARED / folder, split="test")
    out = work / f"{folder}-{abs(hash(model))}"
    t = time.perf_counter()
    collection = Collection(encode_corpus(model, _papers(SHARED / folder, work / f"{folder}.jsonl"), out,
                                          tasks=[task], show_progress_bar=False))
    encode_s = time.perf_counter() - t
    qids = [q for q in data.queries["id"] if q in data.qrels]
    texts = dict(zip(data.queries["id"], data.queries["text"]))
    vectors = collection.encoder(task)([texts[q] for q in qids], role="query")
    corpus_ids = set(collection.ids())
    row: dict = {"queries": len(qids), "papers": collection.size, "encode_s": round(encode_s, 1)}
    for mode in MODES:
        run, times = {}, []
        for qid, vector in tqdm(list(zip(qids, vectors)), desc=f"{name} {mode}", leave=False):
            t = time.perf_counter()
            hits = collection.search(task, texts[qid], vector=vector, k=depth, mode=mode,
                                     exclude=[qid] if task == "link_prediction" and qid in corpus_ids else ())
            times.append(time.perf_counter() - t)
            run[qid] = {h["id"]: float(h["score"]) for h in hits}
        metrics = retrieval_metrics(run, data.qrels, ["ndcg@10"])
        row[mode] = round(metrics["ndcg@10"], 4)
        row[f"{mode}_ms"] = round(1000 * sorted(times)[len(times) // 2], 1)
    return row


def plot(results: dict, path: Path, record: dict | None = None) -> None:
    import matplotlib

    from scimult_hf.environment import png_metadata

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(results)
    sets = list(SETS)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        x = np.arange(len(sets))
        for i, mode in enumerate(MODES):
            ax.bar(x + (i - 1) * 0.27, [results[model][s][mode] for s in sets], 0.27, label=mode)
        ax.set_xticks(x, sets, fontsize=8)
        ax.set_title(model)
        ax.set_ylabel("nDCG@10")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=png_metadata(record))


def report(results: dict) -> tuple[str, list[str]]:
    lines = ["| model | set | task | queries | lexical (BM25) | dense | hybrid (RRF) | hybrid − best of two |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    goals = []
    for model, sets in results.items():
        for name, r in sets.items():
            best = max(r["lexical"], r["dense"])
            lines.append(f"| {model} | {name} | {SETS[name][1]} | {r['queries']} | {r['lexical']:.3f} | "
                         f"{r['dense']:.3f} | {r['hybrid']:.3f} | {r['hybrid'] - best:+.3f} |")
            need = 0.02 if SETS[name][1] == "search" else 0.0
            ok = r["hybrid"] >= best + need
            goals.append(f"- {model}, {name}: hybrid {r['hybrid']:.3f} against the better of the two {best:.3f} "
                         f"(goal {'+0.02' if need else 'not below'}): **{'met' if ok else 'not met'}**")
    return "\n".join(lines), goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None,
                        help="NAME=PATH (repeat); PATH 'default' is the offline default model")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--depth", type=int, default=100, help="hits per query (the run nDCG is computed on)")
    parser.add_argument("--output", default=os.fspath(RESULTS / "hybrid_quality"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scimult_hf import default_model_path
    from scimult_hf.environment import environment_line, environment_record

    models = dict(m.split("=", 1) for m in (args.model or ["default=default"]))
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models.items():
            model = os.fspath(default_model_path()) if path == "default" else path
            results[label] = {}
            for name in args.sets.split(","):
                results[label][name] = evaluate_set(model, name, Path(tmp), args.depth)
                print(label, name, json.dumps(results[label][name]), flush=True)
    table, goals = report(results)
    text = "\n".join([table, "", *goals, "", environment_line()])
    print(text)
    Path(args.output + ".md").write_text(text + "\n", encoding="utf-8")
    Path(args.output + ".json").write_text(json.dumps({"results": results, "models": models,
                                                       "environment": environment_record()}, indent=2) + "\n")
    plot(results, Path(args.output + ".png"))


if __name__ == "__main__":
    main()
