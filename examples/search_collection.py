"""Encode a collection of papers once, then search it: the Python side of `scimult-hf encode` / `search`.

    python examples/search_collection.py [PAPERS.jsonl] [--index DIR]

Without a file it uses the 468 papers shipped with scimult-hf (S2ORC sample, ODC-By 1.0). The collection
goes to a temporary folder unless --index names one (a second run with the same folder resumes / reuses it).
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
