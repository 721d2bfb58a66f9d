"""A small real demonstration: search, classification and link prediction with one SciMult model."""

from __future__ import annotations

import random
from pathlib import Path

from .text import SEP


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


def run_demo(model: str | None = None, data: str | Path | None = None, seed: int = 0) -> int:
    """Rank real SciFact abstracts for a claim (search expert), pick OHSUMED categories for MEDLINE papers
    (classification expert) and likely references for an arXiv paper (link-prediction expert)."""
    from .defaults import default_model_path
    from .retrieval import load_beir, load_classification
    from .sentence import load_sentence_transformer

    data = Path(data) if data else Path.cwd().parent / "shared" / "data"
    if not (data / "scifact" / "corpus.jsonl").is_file():
        raise FileNotFoundError(
            f"no demo data at {data}. Pass --data DIR holding scifact/, ohsumed23/ and unarxive-cites/ "
            "(the layout of the project's shared data folder)."
        )
    model_path = model or str(default_model_path())
    print(f"model: {model_path}")
    st = load_sentence_transformer(model_path)
    rng = random.Random(seed)

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
        top = ", ".join(labels[label_ids[i]] for i in row[:3])
        gold = ", ".join(labels[g] for g in p["labels"])
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
