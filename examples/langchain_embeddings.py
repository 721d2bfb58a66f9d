"""SciMult as LangChain embeddings: the task goes in encode_kwargs / query_encode_kwargs.

    pip install langchain-huggingface        # in its own environment: it pins huggingface_hub 1.x
    python examples/langchain_embeddings.py [MODEL_DIR]

Documents go through the link-prediction expert here (find papers to cite), queries through the same expert
so both sides are comparable. LangChain's multi_process=True path drops encode_kwargs: keep it off.
"""

import sys

from langchain_huggingface import HuggingFaceEmbeddings

from scimult_hf import default_model_path

model = sys.argv[1] if len(sys.argv) > 1 else str(default_model_path())
embeddings = HuggingFaceEmbeddings(
    model_name=model,
    model_kwargs={"trust_remote_code": True, "device": "cpu"},
    encode_kwargs={"task": "link_prediction"},
    query_encode_kwargs={"task": "link_prediction"},
)
docs = ["Attention is all you need [SEP] The Transformer, based solely on attention mechanisms.",
        "Deep residual learning [SEP] Residual networks ease the training of very deep networks."]
doc_vectors = embeddings.embed_documents(docs)
query_vector = embeddings.embed_query("Self-attention for machine translation")
scores = [sum(a * b for a, b in zip(query_vector, d)) for d in doc_vectors]
print(f"{len(doc_vectors)} documents, {len(query_vector)} dimensions")
print("best match:", docs[max(range(len(docs)), key=scores.__getitem__)][:40])
