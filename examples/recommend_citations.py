"""Recommend citations with the link-prediction expert, checked against the references a paper really cites.

    python examples/recommend_citations.py [SHARED_DATA_DIR]

Uses the unarXive citation set in the project's shared data folder (default ../shared/data): one arXiv paper,
its real references and 150 references of other papers form the collection; the expert ranks them for the
paper, and the table marks the ones it cites. Without that folder it recommends among the shipped sample.
"""

import json
import random
import sys
import tempfile
from pathlib import Path

from scimult_hf import default_model_path
from scimult_hf.corpus import Collection, encode_corpus
from scimult_hf.corpus.commands import recommend_citations
from scimult_hf.corpus.display import shorten, table
from scimult_hf.retrieval import load_beir
from scimult_hf.sample import sample_papers

data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "unarxive-cites"
model = str(default_model_path())

with tempfile.TemporaryDirectory() as tmp:
    if (data / "corpus.jsonl").is_file():
        cites = load_beir(data, split="test")
        refs = dict(zip(cites.corpus["id"], cites.corpus["text"]))
        papers = dict(zip(cites.queries["id"], cites.queries["text"]))
        pid = sorted(cites.qrels)[0]
        cited = {d for d, s in cites.qrels[pid].items() if s > 0}
        others = random.Random(0).sample(sorted(set(refs) - cited), 150)
        rows = [{"id": d, "title": refs[d][:120], "text": refs[d]} for d in sorted(cited) + others]
        Path(tmp, "refs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        from scimult_hf.corpus import Columns

        encode_corpus(model, Path(tmp, "refs.jsonl"), f"{tmp}/index", tasks=["link_prediction"],
                      columns=Columns(text="text"))
        result = recommend_citations(Collection(f"{tmp}/index"), text=papers[pid], k=10)
        hits = [h for h in result["results"] if h["id"] in cited]
        print(f"paper: {shorten(papers[pid], 100)}\n{len(cited)} of the {len(rows)} candidates are its references\n")
        print(table(["rank", "score", "cited", "reference"],
                    [[h["rank"], h["score"], "yes" if h["id"] in cited else "", shorten(h["title"], 80)]
                     for h in result["results"]]))
        print(f"\n{len(hits)} of the top 10 are real references")
    else:
        encode_corpus(model, sample_papers(), f"{tmp}/index", tasks=["link_prediction"])
        collection = Collection(f"{tmp}/index")
        result = recommend_citations(collection, paper_id=collection.paper(0)["id"], k=5)
        print(f"likely citations of {collection.paper(0)['title']!r}:")
        print(table(["rank", "score", "title"], [[h["rank"], h["score"], shorten(h["title"], 80)]
                                                 for h in result["results"]]))
