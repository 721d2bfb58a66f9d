"""``scimult-hf evaluate``: evaluate a model on one data folder, print a markdown table, write JSON.

    scimult-hf evaluate --model M --task {search,link_prediction,classification} --data DIR
        [--split test] [--prompt-name NAME] [--batch-size 32] [--output results.json]
        [--cache-dir DIR | --no-cache] [--faiss] [--top-k N] [--candidates FILE] [--k 20 50 100]

Embeddings are cached (default ``$SCIMULT_HF_CACHE/embeddings``, default ``~/.cache/scimult_hf/embeddings``) by model
weights, task, prompt and text content, so a re-run skips encoding. ``register_cli(subparsers)`` adds
the sub-command to the package's CLI (:mod:`scimult_hf.cli`), which reports the errors it raises.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["register_cli", "run_evaluate"]


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command (handler: ``args.func(args) -> int``)."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on a BEIR or classification folder",
        description=(
            "Evaluate a SentenceTransformer (SciMult or plain) on one task: search or link_prediction on a "
            "BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), classification on a folder with "
            "<split>.jsonl and labels.jsonl. Prints a markdown table; --output writes the JSON."
        ),
    )
    p.add_argument("--model", required=True, help="a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: fetched and converted on first use), or a SentenceTransformer folder or Hub id (loaded with trust_remote_code)")
    p.add_argument("--task", required=True,
                   help="the task whose expert encodes both sides: search, link_prediction, classification, or a task "
                        "of the model's own (evaluated as retrieval or classification by the --data folder)")
    p.add_argument("--data", required=True, help="data folder")
    p.add_argument("--split", default="test", help="split (qrels/<split>.tsv or <split>.jsonl; default: test)")
    p.add_argument("--prompt-name", default=None, help="prompt of the model to use (instruction variant)")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")
    p.add_argument("--output", default=None, help="write the results JSON here")
    p.add_argument("--cache-dir", default=None, help="embedding cache folder (default: $SCIMULT_HF_CACHE/embeddings, default ~/.cache/scimult_hf/embeddings)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    p.add_argument("--faiss", action="store_true", help="search with a FAISS flat index (needs `pip install faiss-cpu`)")
    p.add_argument("--top-k", type=int, default=None, help="documents kept per query (default: largest metric cut-off, or 1000)")
    p.add_argument("--candidates", default=None, help="link prediction: candidates per query (TSV query-id/corpus-id or JSON); reranking form")
    p.add_argument("--k", type=int, nargs="+", default=None, help="classification (multi-label) cut-offs (default: 20 50 100)")
    p.add_argument("--device", default=None, help="torch device for encoding (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``scimult-hf evaluate``: prints the table (and JSON); bad input raises ``ValueError``."""
    from ..io import atomic_write_text, check_writable
    from ..models.tasks import check_task
    from ..retrieval import EmbeddingCache, resolve_model
    from .evaluators import evaluate_task, evaluation_kind
    from .results import format_table

    if not Path(args.data).is_dir():
        raise InputError(f"--data {args.data}: no such folder.")
    kind = evaluation_kind(args.task, args.data)
    if kind == "retrieval" and args.k:
        raise InputError("--k applies to classification only (retrieval metrics fix their cut-offs).")
    if kind == "classification" and (args.faiss or args.candidates or args.top_k):
        raise InputError("--faiss, --candidates and --top-k apply to search and link_prediction only.")
    if args.candidates and args.task != "link_prediction":
        raise InputError("--candidates is the reranking form of link_prediction; use --task link_prediction.")
    if args.output:
        check_writable(args.output)  # before the evaluation, not after it
    st = resolve_model(args.model, device=args.device)
    check_task(st, args.task, args.model)
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
    kwargs = dict(
        split=args.split,
        prompt_name=args.prompt_name,
        batch_size=args.batch_size,
        cache=cache,
        show_progress_bar=not args.quiet,
        model_name=args.model,
    )
    if kind == "classification":
        if args.k:
            kwargs["k_values"] = args.k
    else:
        kwargs.update(use_faiss=args.faiss, top_k=args.top_k)
        if args.candidates:
            kwargs["candidates"] = args.candidates
    result = evaluate_task(st, args.task, args.data, **kwargs)
    print(format_table(result))
    text = json.dumps(result, indent=2)
    if args.output:
        atomic_write_text(args.output, text + "\n")
        print(f"\nWrote {args.output}")
    else:
        print()
        print(text)
    return 0
