"""Train a small SciMult model on the shipped sample, so that `task=` starts to matter.

    python examples/train_small.py OUTPUT_DIR [--steps 40]

From the offline default (all-MiniLM-L6-v2 upcycled: experts equal), two tasks: classification pairs
(paper -> its fields of study) from the shipped sample, and search pairs (title -> abstract) built from it.
Afterwards the classification and search experts differ, so the same paper embeds differently per task.
A real run uses `scimult-hf train` with the SciMult data (see the README).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from scimult_hf import load_sentence_transformer
from scimult_hf.defaults import default_model_path
from scimult_hf.models.tasks import identical_experts
from scimult_hf.sample import HERE as SAMPLE_FOLDER
from scimult_hf.sample import sample_papers
from scimult_hf.training import TrainConfig, load_task_data, pairs_from_classification, train

parser = argparse.ArgumentParser()
parser.add_argument("output")
parser.add_argument("--steps", type=int, default=40)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    pairs = Path(tmp) / "search.jsonl"
    with open(sample_papers(), encoding="utf-8") as f, open(pairs, "w", encoding="utf-8") as out:
        for row in map(json.loads, f):
            out.write(json.dumps({"anchor": row["title"], "positive": row["abstract"]}) + "\n")
    data = {"classification": pairs_from_classification(SAMPLE_FOLDER, split="all"),
            "search": load_task_data(pairs, "search")}
    config = TrainConfig(max_steps=args.steps, batch_size=16, max_seq_length=128, learning_rate=5e-5,
                         logging_steps=10, save_steps=10**9)
    model_dir = train(str(default_model_path()), data, args.output, config)

st = load_sentence_transformer(model_dir)
print("experts:", identical_experts(st[0].model))
paper = ["Biclique graphs of interval bigraphs [SEP] We characterize biclique graphs of interval bigraphs."]
a, b = st.encode(paper, task="search"), st.encode(paper, task="classification")
print(f"search vs classification embedding of one paper: cosine {float((a * b).sum()):.4f}")
assert not np.allclose(a, b), "the experts should differ after training"
