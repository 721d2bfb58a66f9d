"""Train a small SciMult model on the shipped sample in a few minutes on a CPU, and see what training changed.

    python examples/train_small.py OUTPUT_DIR [--steps 60]

From the offline default (all-MiniLM-L6-v2 upcycled: experts equal). The 468 shipped papers are split: every
fifth paper is held out for testing. Two tasks train on the rest: classification (paper -> its fields of
study) and search (title -> its abstract). Before and after, on the held-out papers, it measures:

* classification: how often the top-ranked of the 19 fields is one of the paper's fields (zero-shot before);
* search: mean reciprocal rank of each title's own abstract among the held-out abstracts;
* how far the experts moved apart: the mean cosine between the search and the classification experts'
  embeddings of the same papers (1.0 while the experts are copies).

A real run uses `scimult-hf train` with the SciMult data (see docs/training.md).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from scimult_hf import default_model_path, load_sentence_transformer, paper_text
from scimult_hf.corpus.display import table
from scimult_hf.sample import sample_labels, sample_papers
from scimult_hf.training import TrainConfig, load_task_data, train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("output", help="run folder to write")
parser.add_argument("--steps", type=int, default=60,
                    help="training steps (default: 60: about two minutes on 2 idle cores once the default model is "
                         "built; a loaded machine takes longer)")
args = parser.parse_args()

with open(sample_papers(), encoding="utf-8") as f:
    papers = [json.loads(line) for line in f]
with open(sample_labels(), encoding="utf-8") as f:
    labels = [json.loads(line) for line in f]
train_rows = [p for i, p in enumerate(papers) if i % 5]
test_rows = [p for i, p in enumerate(papers) if i % 5 == 0]


def measure(folder) -> dict:
    st = load_sentence_transformer(folder)
    texts = [paper_text(p["title"], p["abstract"]) for p in test_rows]
    papers_c = st.encode(texts, task="classification", normalize_embeddings=True)
    labels_c = st.encode([label["name"] for label in labels], task="classification", normalize_embeddings=True)
    top = (papers_c @ labels_c.T).argmax(1)
    hits = sum(labels[j]["id"] in p["labels"] for j, p in zip(top, test_rows))
    titles = st.encode([p["title"] for p in test_rows], task="search", normalize_embeddings=True)
    abstracts = st.encode([p["abstract"] for p in test_rows], task="search", normalize_embeddings=True)
    scores = titles @ abstracts.T
    ranks = (scores > np.diag(scores)[:, None]).sum(1) + 1
    papers_s = st.encode(texts, task="search", normalize_embeddings=True)
    return {"classification top-1 is a gold field": f"{hits} / {len(test_rows)}",
            "search MRR (title -> its abstract)": f"{float(np.mean(1 / ranks)):.3f}",
            "cosine between the two experts' embeddings": f"{float((papers_s * papers_c).sum(1).mean()):.4f}"}


start = time.perf_counter()


def say(line: str) -> None:
    print(f"[{time.perf_counter() - start:5.0f} s] {line}", flush=True)


say("building the offline default model (once) and measuring it on the held-out papers ...")
before = measure(default_model_path())
say(f"training {args.steps} steps on {len(train_rows)} papers (the bar follows; losses every few steps) ...")
with tempfile.TemporaryDirectory() as tmp:
    classification = Path(tmp) / "classification"
    classification.mkdir()
    with open(classification / "train.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in train_rows)
    (classification / "labels.jsonl").write_text("".join(json.dumps(label) + "\n" for label in labels))
    search = Path(tmp) / "search.jsonl"
    search.write_text("".join(json.dumps({"anchor": p["title"], "positive": p["abstract"]}) + "\n"
                              for p in train_rows))
    data = {"classification": load_task_data(classification, "classification"),
            "search": load_task_data(search, "search")}
    config = TrainConfig(max_steps=args.steps, batch_size=16, max_seq_length=128, learning_rate=5e-5,
                         logging_steps=10, save_steps=10**9, warmup_ratio=0.1)
    model_dir = train(str(default_model_path()), data, args.output, config)
say("measuring the trained model ...")
after = measure(model_dir)

print(f"\n{len(train_rows)} papers trained on, {len(test_rows)} held out; {args.steps} steps; "
      f"{time.perf_counter() - start:.0f} s in all\n")
print(table(["held-out measure", "before (offline default)", "after"],
            [[name, before[name], after[name]] for name in before]))
