"""Helpers the tests share: small real inputs, tiny models and folders, a fresh interpreter, a free port.

Fixtures live in ``conftest.py``; these are plain functions, imported where needed
(``from helpers import PAPERS, tiny_model``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import torch

PAPERS = [
    "Attention is all you need [SEP] The dominant sequence transduction models are based on complex recurrent or "
    "convolutional neural networks that include an encoder and a decoder.",
    "BERT: pre-training of deep bidirectional transformers [SEP] We introduce a new language representation model.",
    "Infection in total joint replacement.",
    "Zeros of random polynomials [SEP] Let X1, X2, ... be independent and identically distributed random variables.",
    "CRISPR-Cas9 genome editing in human cells [SEP] Targeted genome editing using engineered nucleases.",
]


def tiny_model(expert_type="attention", seed=0, **overrides):
    """A small randomly initialised SciMult model whose experts differ (BERT vocabulary, 4 layers)."""
    from scimult_hf import SciMultConfig, SciMultModel

    kwargs = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128, expert_type=expert_type, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = SciMultModel(SciMultConfig(**kwargs)).eval()
    with torch.no_grad():  # make LayerNorms and biases non-trivial so that a swapped expert is caught
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def tiny_folder(path: Path, tokenizer, expert_type: str | None = "attention", seed: int = 0, **save_kwargs) -> Path:
    """A complete SciMult folder of :func:`tiny_model` (experts that differ) with ``tokenizer``."""
    from scimult_hf import save_sentence_transformer

    return save_sentence_transformer(tiny_model(expert_type, seed=seed), tokenizer, path, **save_kwargs)


def tiny_bert(path: Path, tokenizer, seed: int = 5) -> Path:
    """A tiny random plain-BERT folder (no dropout) with ``tokenizer``: something to upcycle."""
    from scimult_hf.models.bert import to_bert

    to_bert(tiny_model(None, seed=seed)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path: Path, rows) -> Path:
    """``rows`` as a JSONL file (dicts as JSON; ``str`` / ``bytes`` rows written as they are, e.g. a malformed
    line); parent folders made."""
    def line(row) -> bytes:
        if isinstance(row, bytes):
            return row
        return (row if isinstance(row, str) else json.dumps(row)).encode()

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line(r) + b"\n" for r in rows))
    return path


def write_beir(folder: Path, qrels: str = "q1\td0\t1\n", *, corpus=None, queries=None, split: str = "test",
               header: bool = True) -> Path:
    """A tiny BEIR folder: ``corpus`` (default: :data:`PAPERS` as ``d0``..``d4``), ``queries`` (default: one,
    ``q1``), ``qrels/<split>.tsv`` with the header (unless ``header=False``) and the ``qrels`` rows."""
    if corpus is None:
        corpus = [{"_id": f"d{i}", "title": f"Paper {i}", "text": p} for i, p in enumerate(PAPERS)]
    write_jsonl(folder / "corpus.jsonl", corpus)
    write_jsonl(folder / "queries.jsonl", queries or [{"_id": "q1", "text": "genome editing"}])
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / f"{split}.tsv").write_text(("query-id\tcorpus-id\tscore\n" if header else "") + qrels)
    return folder


def hub_cache(cache: Path, repo_id: str, folder: Path, revision: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """``folder`` laid out in a Hub cache under ``cache`` (``models--ORG--NAME/snapshots/REV``, ``refs/main``), so
    that it loads by ``repo_id`` with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE=cache``; returns the snapshot."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def run_python(code: str, *args: str, env: dict | None = None, unset=(), cwd=None, timeout: int = 600):
    """Run ``code`` (with ``args``) in a fresh interpreter; ``env`` is added to this one's environment and the
    names in ``unset`` are removed from it. Returns the finished process."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd, stdin=subprocess.DEVNULL)


def free_port() -> int:
    """A TCP port nothing listens on (for a local server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_in_terminal(argv: list[str], timeout: float = 300, env: dict | None = None, cwd=None) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr (as a person at a shell would), and return
    its exit code and everything it printed: an interactive prompt shows up here, and stalls."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True, cwd=cwd,
                            env={**os.environ, **(env or {})})
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(), out.decode("utf-8", "replace")
