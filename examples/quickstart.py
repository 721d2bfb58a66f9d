"""Embed papers with SciMult through transformers and through sentence-transformers.

    python examples/quickstart.py [MODEL_DIR]

Without an argument it uses the offline default model (all-MiniLM-L6-v2 upcycled into SciMult).
"""

import sys

import torch
from transformers import AutoModel, AutoTokenizer

import scimult_hf
from scimult_hf import load_sentence_transformer, paper_text

path = sys.argv[1] if len(sys.argv) > 1 else str(scimult_hf.default_model_path())

papers = [
    paper_text("Attention is all you need", "We propose a new simple network architecture, the Transformer."),
    paper_text("Deep residual learning for image recognition", "We present a residual learning framework."),
]
labels = ["Computer vision", "Natural language processing", "Molecular biology"]

# transformers: the task picks the experts; pooler_output is the SciMult embedding.
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
batch = tokenizer(papers, padding=True, truncation=True, max_length=256, return_tensors="pt")
with torch.no_grad():
    paper_emb = model(**batch, task="classification").pooler_output
    label_batch = tokenizer(labels, padding=True, return_tensors="pt")
    label_emb = model(**label_batch, task="classification").pooler_output
for paper, row in zip(papers, (paper_emb @ label_emb.T).tolist()):
    print(f"{paper[:40]!r:45} -> {labels[max(range(len(labels)), key=row.__getitem__)]}")

# sentence-transformers: encode(..., task=...), encode_query / encode_document use the search expert.
st = load_sentence_transformer(path)
queries = st.encode_query(["transformer architecture for translation"])
docs = st.encode_document(papers)
print("search scores:", st.similarity(queries, docs).tolist())
mixed = st.encode(papers, task="link_prediction")
print("link-prediction embedding shape:", mixed.shape)
