"""A small real demonstration: search, classification and link prediction with one SciMult model."""

from __future__ import annotations

import random
from pathlib import Path

from .corpus.display import shorten, table
from .text import SEP

#: Queries of the sample demo: topics that several of the shipped papers are about.
SAMPLE_QUERIES = ("bacterial communities in seawater", "graph algorithms and bounds")


def _relevant(qrels: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    return {q: {d for d, s in docs.items() if s > 0} for q, docs in qrels.items()}


def _title(text: str) -> str:
    """The title part of a ``title [SEP] abstract`` model input."""
    return text.split(f" {SEP} ", 1)[0]


def _short(text: str, width: int = 88) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _rank(st, queries: list[str], docs: list[str], task: str):
    import torch

    q = st.encode(queries, task=task, convert_to_tensor=True)
    d = st.encode(docs, task=task, convert_to_tensor=True)
    scores = st.similarity(q, d)
    return torch.sort(scores, dim=1, descending=True)


def _collection_for(model: str) -> Path:
    """Where the demo keeps the shipped sample encoded by ``model`` (re-encoded when the weights change)."""
    from .defaults import cache_dir, model_stamp

    return cache_dir() / "demo" / model_stamp(model)


def _sample_demo(model: str, st, rng: random.Random) -> int:
    """Search, classify and recommend over the 468 shipped S2ORC papers (19 fields of study)."""
    from .corpus import Collection, encode_corpus
    from .corpus.collection import old_format_error
    from .corpus.commands import classify_papers, recommend_citations, search_papers
    from .sample import sample_labels, sample_papers

    folder = _collection_for(model)
    tasks = ["search", "link_prediction", "classification"]
    # a folder an older scimult-hf wrote (.npy shards) is encoded again
    encode_corpus(model, sample_papers(), folder, tasks=tasks, shard_size=1000,
                  overwrite=old_format_error(folder) is not None)
    collection = Collection(folder)
    print(f"collection: the shipped sample, {collection.size} S2ORC papers (ODC-By 1.0), encoded in {folder}")

    for query in SAMPLE_QUERIES:
        hits = search_papers(collection, [query], k=5)[0]["results"]
        print(f"\n## Search expert - query: {query!r}\n")
        print(table(["rank", "score", "title"], [[h["rank"], h["score"], shorten(h["title"], 90)] for h in hits]))

    import json

    gold = {}
    with open(sample_papers(), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            gold[row["id"]] = row["labels"]
    ranked = list(classify_papers(collection, sample_labels(), k=3))
    top1 = sum(r["labels"][0]["id"] in gold[r["id"]] for r in ranked)
    shown = rng.sample(ranked, 4)
    print(f"\n## Classification expert - 19 fields of study (zero-shot: top-1 is a gold field for {top1} of "
          f"{len(ranked)} papers)\n")
    print(table(["paper", "label 1", "label 2", "label 3", "gold"],
                [[shorten(r["title"], 50)] + [f"{lab['name']} ({lab['score']:.2f})" for lab in r["labels"]]
                 + [" ¦ ".join(gold[r["id"]])] for r in shown]))

    paper = rng.choice(ranked)
    rec = recommend_citations(collection, paper_id=paper["id"], k=5)
    print(f"\n## Link-prediction expert - likely citations of {shorten(paper['title'], 70)!r}\n")
    print(table(["rank", "score", "title"], [[h["rank"], h["score"], shorten(h["title"], 90)] for h in rec["results"]]))
    print("\nYour own papers (JSONL/CSV/parquet with id, title, abstract):\n"
          "  scimult-hf encode --input papers.jsonl --output my-index --task search,link_prediction,classification\n"
          "  scimult-hf search --index my-index --query \"...\" [--mode hybrid] [--where \"year >= 2020\"]\n"
          "  scimult-hf classify --index my-index --labels labels.jsonl\n"
          "  scimult-hf recommend --index my-index --id PAPER_ID")
    return 0


def run_demo(model: str | None = None, data: str | Path | None = None, seed: int = 0) -> int:
    """Show the three experts at work: on the shipped sample, or on ``data`` (the shared data layout)."""
    import sys

    from .models.folder import load_sentence_transformer
    from .models.tasks import identical_experts
    from .resolve import resolve_model

    if data is not None:  # bad input stops before any model is built or loaded
        _check_data(Path(data))
    model, line = resolve_model(model)
    print(line, file=sys.stderr)
    st = load_sentence_transformer(model)
    inner = getattr(st[0], "model", None)
    if inner is not None and hasattr(inner.config, "tasks") and len(set(identical_experts(inner).values())) == 1:
        print("note: this model's task experts are identical (upcycled, not yet trained), so all three experts "
              "below embed alike; a trained SciMult model (--model) makes them differ.")
    rng = random.Random(seed)
    if data is not None:
        return _data_demo(st, Path(data), rng)
    return _sample_demo(model, st, rng)


def _check_data(data: Path) -> None:
    if not (data / "scifact" / "corpus.jsonl").is_file():
        raise FileNotFoundError(
            f"no demo data at {data}. Pass --data DIR holding scifact/, ohsumed23/ and unarxive-cites/ "
            "(the layout of the project's shared data folder), or leave --data out to use the shipped sample."
        )


def _data_demo(st, data: Path, rng: random.Random) -> int:
    """Rank real SciFact abstracts for a claim (search expert), pick OHSUMED categories for MEDLINE papers
    (classification expert) and likely references for an arXiv paper (link-prediction expert)."""
    from .retrieval import load_beir, load_classification

    _check_data(data)

    # 1. Search: a SciFact claim against its relevant abstract(s) and 14 others.
    scifact = load_beir(data / "scifact", split="test")
    corpus = dict(zip(scifact.corpus["id"], scifact.corpus["text"]))
    claims = dict(zip(scifact.queries["id"], scifact.queries["text"]))
    qrels = _relevant(scifact.qrels)
    qid = rng.choice(sorted(qrels))
    pool = sorted(qrels[qid]) + rng.sample(sorted(set(corpus) - qrels[qid]), 14)
    rng.shuffle(pool)
    scores, order = _rank(st, [claims[qid]], [corpus[d] for d in pool], "search")
    print(f"\n## Search expert - claim: {claims[qid]!r}\n")
    print("| rank | score | relevant | paper |\n|---:|---:|:---:|---|")
    for r, (i, s) in enumerate(zip(order[0][:5].tolist(), scores[0][:5].tolist()), 1):
        print(f"| {r} | {s:.3f} | {'✓' if pool[i] in qrels[qid] else ''} | {_short(_title(corpus[pool[i]]))} |")

    # 2. Classification: three MEDLINE papers against the 23 OHSUMED category names.
    ohsumed = load_classification(data / "ohsumed23", split="test")
    labels = dict(zip(ohsumed.labels["id"], ohsumed.labels["text"]))
    papers = [ohsumed.papers[i] for i in rng.sample(range(len(ohsumed.papers)), 3)]
    label_ids = list(labels)
    scores, order = _rank(st, [p["text"] for p in papers], [labels[i] for i in label_ids], "classification")
    print("\n## Classification expert - OHSUMED-23 categories\n")
    print("| paper | top-3 predicted | gold |\n|---|---|---|")
    for p, row in zip(papers, order.tolist()):
        top = " ¦ ".join(labels[label_ids[i]] for i in row[:3])
        gold = " ¦ ".join(labels[g] for g in p["labels"])
        print(f"| {_short(_title(p['text']), 60)} | {top} | {gold} |")

    # 3. Link prediction: an arXiv paper against its references and others' references.
    unarxive = load_beir(data / "unarxive-cites", split="test")
    refs = dict(zip(unarxive.corpus["id"], unarxive.corpus["text"]))
    cites_q = dict(zip(unarxive.queries["id"], unarxive.queries["text"]))
    cites = _relevant(unarxive.qrels)
    pid = rng.choice(sorted(cites))
    own = rng.sample(sorted(cites[pid]), min(5, len(cites[pid])))
    pool = own + rng.sample(sorted(set(refs) - cites[pid]), 15)
    rng.shuffle(pool)
    scores, order = _rank(st, [cites_q[pid]], [refs[d] for d in pool], "link_prediction")
    print(f"\n## Link-prediction expert - paper: {_short(_title(cites_q[pid]), 80)!r}\n")
    print("| rank | score | cited | reference |\n|---:|---:|:---:|---|")
    for r, (i, s) in enumerate(zip(order[0][:5].tolist(), scores[0][:5].tolist()), 1):
        print(f"| {r} | {s:.3f} | {'✓' if pool[i] in cites[pid] else ''} | {_short(refs[pool[i]])} |")
    print(f"\n({len(own)} of the 20 candidates are cited by the paper.)")
    return 0
