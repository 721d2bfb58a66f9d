"""Encode a collection of papers once, then search it: the Python side of `scimult-hf encode` / `search`.

    python examples/search_collection.py [PAPERS.jsonl] [--index DIR|s3://bucket/papers.lance]

Without a file it uses the 468 papers shipped with scimult-hf (S2ORC sample, ODC-By 1.0). The collection (a Lance
dataset) goes to a temporary folder unless --index names one (a second run with the same one resumes / reuses it).
Dense search first, then hybrid (dense + BM25, fused by rank) restricted with a filter on the input's own columns.
"""

import argparse
import tempfile

from scimult_hf import default_model_path
from scimult_hf.corpus import Collection, encode_corpus
from scimult_hf.corpus.commands import search_papers
from scimult_hf.corpus.display import shorten, table
from scimult_hf.sample import sample_papers

parser = argparse.ArgumentParser()
parser.add_argument("papers", nargs="?", default=str(sample_papers()), help="JSONL/CSV/parquet with id, title, abstract")
parser.add_argument("--index", default=None, help="collection folder (default: a temporary one)")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    index = args.index or f"{tmp}/index"
    model = str(default_model_path())  # the offline default; any SciMult folder or Hub id works
    encode_corpus(model, args.papers, index, tasks=["search"])
    collection = Collection(index)
    for result in search_papers(collection, ["deep learning for protein structure", "galaxy formation"], k=3):
        print(f"\n## {result['query']}\n")
        print(table(["rank", "score", "title"], [[h["rank"], h["score"], shorten(h["title"], 80)]
                                                 for h in result["results"]]))
    if "labels" in collection.metadata_columns:  # the sample's fields of study; any column of the input works
        where = "array_has(labels, 'Biology')"
        result = search_papers(collection, ["bacterial communities in seawater"], k=3, mode="hybrid", where=where)[0]
        print(f"\n## {result['query']} (hybrid, where {where})\n")
        print(table(["rank", "score", "title"], [[h["rank"], h["score"], shorten(h["title"], 80)]
                                                 for h in result["results"]]))
