"""Zero-shot classification: rank label names for each paper with the classification expert.

    python examples/classify_papers.py [PAPERS.jsonl LABELS.jsonl]

Without files it uses the shipped sample (468 papers, 19 fields of study, ODC-By 1.0) and reports how often
the top label is one of the paper's fields. labels.jsonl rows: {"id", "name"[, "description"]}.
"""

import json
import sys
import tempfile

from scimult_hf import default_model_path
from scimult_hf.corpus import Collection, encode_corpus
from scimult_hf.corpus.commands import classify_papers
from scimult_hf.corpus.display import shorten, table
from scimult_hf.sample import sample_labels, sample_papers

papers, labels = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else (sample_papers(), sample_labels())

with tempfile.TemporaryDirectory() as tmp:
    encode_corpus(str(default_model_path()), papers, f"{tmp}/index", tasks=["classification"])
    ranked = list(classify_papers(Collection(f"{tmp}/index"), labels, k=3))

# Shown: eight papers with English titles (MEDLINE brackets the English translation of a foreign title).
shown = [r for r in ranked if not r["title"].startswith("[")][:8]
print(table(["paper", "label 1", "label 2", "label 3"],
            [[shorten(r["title"], 50)] + [f"{lab['name']} ({lab['score']:.2f})" for lab in r["labels"]]
             for r in shown]))
with open(papers, encoding="utf-8") as f:
    gold = {row["id"]: set(row.get("labels", [])) for row in map(json.loads, f)}
if any(gold.values()):
    hits = sum(r["labels"][0]["id"] in gold[r["id"]] for r in ranked)
    print(f"\ntop-1 label is a gold label for {hits} of {len(ranked)} papers ({hits / len(ranked):.1%})")
