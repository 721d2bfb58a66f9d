"""A small real demonstration: search, classification and link prediction with one SciMult model."""

from __future__ import annotations

import json
import random
from pathlib import Path

from .text import paper_text


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _qrels(path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if int(s) > 0:
                out.setdefault(q, set()).add(d)
    return out


def _short(text: str, width: int = 88) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _rank(st, queries: list[str], docs: list[str], task: str):
    import torch

    q = st.encode(queries, task=task, convert_to_tensor=True)
    d = st.encode(docs, task=task, convert_to_tensor=True)
    scores = st.similarity(q, d)
    return torch.sort(scores, dim=1, descending=True)


def run_demo(model: str | None = None, data: str | Path | None = None, seed: int = 0) -> int:
    """Rank real SciFact abstracts for a claim (search expert), pick OHSUMED categories for MEDLINE papers
    (classification expert) and likely references for an arXiv paper (link-prediction expert)."""
    from .defaults import default_model_path
    from .sentence import load_sentence_transformer

    data = Path(data) if data else Path.cwd().parent / "shared" / "data"
    if not (data / "scifact" / "corpus.jsonl").is_file():
        raise SystemExit(
            f"demo: no data at {data}. Pass --data DIR holding scifact/, ohsumed23/ and unarxive-cites/ "
            "(the layout of the project's shared data folder)."
        )
    model_path = model or str(default_model_path())
    print(f"model: {model_path}")
    st = load_sentence_transformer(model_path)
    rng = random.Random(seed)

    # 1. Search: a SciFact claim against its relevant abstract(s) and 14 others.
    corpus = {d["_id"]: d for d in _jsonl(data / "scifact" / "corpus.jsonl")}
    claims = {q["_id"]: q["text"] for q in _jsonl(data / "scifact" / "queries.jsonl")}
    qrels = _qrels(data / "scifact" / "qrels" / "test.tsv")
    qid = rng.choice(sorted(qrels))
    pool = sorted(qrels[qid]) + rng.sample(sorted(set(corpus) - qrels[qid]), 14)
    rng.shuffle(pool)
    docs = [paper_text(corpus[d]["title"], corpus[d]["text"]) for d in pool]
    scores, order = _rank(st, [claims[qid]], docs, "search")
    print(f"\n## Search expert - claim: {claims[qid]!r}\n")
    print("| rank | score | relevant | paper |\n|---:|---:|:---:|---|")
    for r, (i, s) in enumerate(zip(order[0][:5].tolist(), scores[0][:5].tolist()), 1):
        print(f"| {r} | {s:.3f} | {'✓' if pool[i] in qrels[qid] else ''} | {_short(corpus[pool[i]]['title'])} |")

    # 2. Classification: three MEDLINE papers against the 23 OHSUMED category names.
    labels = _jsonl(data / "ohsumed23" / "labels.jsonl")
    papers = rng.sample(_jsonl(data / "ohsumed23" / "test.jsonl"), 3)
    scores, order = _rank(st, [paper_text(p["title"], p["abstract"]) for p in papers], [l["name"] for l in labels],
                          "classification")
    print("\n## Classification expert - OHSUMED-23 categories\n")
    print("| paper | top-3 predicted | gold |\n|---|---|---|")
    for p, row in zip(papers, order.tolist()):
        top = ", ".join(labels[i]["name"] for i in row[:3])
        gold = ", ".join(l["name"] for l in labels if l["id"] in p["labels"])
        print(f"| {_short(p['title'], 60)} | {top} | {gold} |")

    # 3. Link prediction: an arXiv paper against its references and others' references.
    refs = {d["_id"]: d for d in _jsonl(data / "unarxive-cites" / "corpus.jsonl")}
    cites_q = {q["_id"]: q["text"] for q in _jsonl(data / "unarxive-cites" / "queries.jsonl")}
    cites = _qrels(data / "unarxive-cites" / "qrels" / "test.tsv")
    pid = rng.choice(sorted(cites))
    own = rng.sample(sorted(cites[pid]), min(5, len(cites[pid])))
    pool = own + rng.sample(sorted(set(refs) - cites[pid]), 15)
    rng.shuffle(pool)
    docs = [paper_text(refs[d].get("title"), refs[d]["text"]) for d in pool]
    scores, order = _rank(st, [cites_q[pid]], docs, "link_prediction")
    print(f"\n## Link-prediction expert - paper: {_short(cites_q[pid].split('[SEP]')[0], 80)!r}\n")
    print("| rank | score | cited | reference |\n|---:|---:|:---:|---|")
    for r, (i, s) in enumerate(zip(order[0][:5].tolist(), scores[0][:5].tolist()), 1):
        print(f"| {r} | {s:.3f} | {'✓' if pool[i] in cites[pid] else ''} | {_short(refs[pool[i]]['text'])} |")
    print(f"\n({len(own)} of the 20 candidates are cited by the paper.)")
    return 0
