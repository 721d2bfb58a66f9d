"""``scimult-hf encode``, ``search``, ``classify`` and ``recommend``: the main job over a collection of papers."""

from __future__ import annotations

import json
import sys

__all__ = ["register_classify", "register_encode", "register_recommend", "register_search"]

_TASKS_HELP = "search, link_prediction, classification"


def _model(args) -> str:
    """``--model`` (a released name becomes its converted folder, fetched on first use), or the default model
    with one line (on stderr) saying which and why."""
    from ..resolve import resolve_model

    resolved = resolve_model(args.model)
    if not args.model:
        print(resolved.line, file=sys.stderr)
    return resolved.path


def _encode(args) -> int:
    from .collection import Collection
    from .reader import Columns
    from .writer import encode_corpus

    columns = Columns(id=args.id_column, title=args.title_column, abstract=args.abstract_column,
                      text=args.text_column)
    tasks = [t.strip() for t in args.task.split(",") if t.strip()]
    if args.engine == "ray":
        from .ray_engine import encode_with_ray

        out = encode_with_ray(_model(args), args.input, args.output, tasks=tasks, columns=columns,
                              workers=args.workers, gpus_per_worker=args.gpus_per_worker, backend=args.backend,
                              batch_size=args.batch_size, shard_size=args.shard_size, prompt_name=args.prompt_name,
                              address=args.ray_address, overwrite=args.overwrite, show_progress_bar=not args.quiet)
        c = Collection(out)
        print(f"wrote {out}: {c.size:,} papers on Ray ({args.workers} workers), tasks: {', '.join(c.tasks)}")
        return 0
    out = encode_corpus(_model(args), args.input, args.output, tasks=tasks, columns=columns, backend=args.backend,
                        batch_size=args.batch_size, shard_size=args.shard_size, device=args.device,
                        dtype=args.dtype, prompt_name=args.prompt_name, overwrite=args.overwrite,
                        show_progress_bar=not args.quiet)
    from accelerate import PartialState

    if PartialState().is_main_process:
        c = Collection(out)
        print(f"wrote {out}: {c.size:,} papers, {len(c.dataset.get_fragments())} fragment(s), tasks: {', '.join(c.tasks)}")
    return 0


def _print_hits(title: str, hits: list[dict]) -> None:
    from .display import shorten, table

    print(f"\n{title}\n")
    print(table(["rank", "score", "id", "title"],
                [[h["rank"], h["score"], h["id"], shorten(h["title"], 90)] for h in hits]))


def _search(args) -> int:
    from .collection import Collection
    from .commands import search_papers

    queries = list(args.query or [])
    if args.queries:
        with open(args.queries, encoding="utf-8") as f:
            queries += [line.strip() for line in f if line.strip()]
    results = search_papers(Collection(args.index), queries, k=args.top_k, mode=args.mode, where=args.where,
                            device=args.device, task=args.task)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        return 0
    for r in results:
        _print_hits(f"## {r['query']}", r["results"])
    return 0


def _classify(args) -> int:
    from ..io import atomic_file, check_writable
    from .collection import Collection
    from .commands import classify_papers
    from .display import shorten, table

    if args.output:
        check_writable(args.output)
    collection = Collection(args.index)
    ids = args.id or None
    limit = None if (ids or args.output) else args.limit
    records = classify_papers(collection, args.labels, k=args.top_k, ids=ids, limit=limit, where=args.where,
                              device=args.device, task=args.task)
    if args.output:
        from tqdm.auto import tqdm

        shown, count = [], 0
        with atomic_file(args.output) as tmp, open(tmp, "w", encoding="utf-8") as f:
            total = len(ids) if ids else (None if args.where else collection.size)
            for rec in tqdm(records, total=total, desc="classifying papers",
                            unit="paper", disable=args.quiet):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                count += 1
                if len(shown) < args.limit:
                    shown.append(rec)
        print(f"wrote {args.output}: top-{args.top_k} labels for {count:,} papers")
        records = shown
    else:
        records = list(records)
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
        return 0
    k = max((len(r["labels"]) for r in records), default=0)
    headers = ["id", "title"] + [f"label {i}" for i in range(1, k + 1)]
    rows = [[r["id"], shorten(r["title"], 60)] + [f"{lab['name']} ({lab['score']:.3f})" for lab in r["labels"]]
            for r in records]
    print(table(headers, rows))
    if not ids and not args.where and len(records) < collection.size:
        print(f"\n(the first {len(records):,} of {collection.size:,} papers; --limit N shows more, --output FILE.jsonl "
              "writes every paper's labels)", file=sys.stderr)
    return 0


def _recommend(args) -> int:
    from .collection import Collection
    from .commands import recommend_citations

    result = recommend_citations(Collection(args.index), paper_id=args.id, text=args.text, k=args.top_k,
                                 mode=args.mode, where=args.where, device=args.device, task=args.task)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return 0
    paper = result["paper"]
    name = f"{paper['id']}: {paper['title']}" if "id" in paper else paper["text"]
    from .display import shorten

    _print_hits(f"## Likely citations of {shorten(name, 100)}", result["results"])
    return 0


def _common(p, task: str, *, modes: bool = True, top_k: int = 10) -> None:
    p.add_argument("--index", required=True, help="the collection written by `scimult-hf encode`: a folder or a URI "
                                                  "(s3://bucket/papers; credentials from the environment)")
    p.add_argument("--task", default=task, help=f"the collection's task whose expert to use (default: {task}; a "
                   "model with tasks of its own names them)")
    p.add_argument("--top-k", type=int, default=top_k, help=f"results per query or paper (default: {top_k})")
    p.add_argument("--where", default=None,
                   help="SQL filter on the collection's columns (id, title and the input's others), e.g. "
                        "\"year >= 2020 AND venue = 'Nature'\"")
    if modes:
        p.add_argument("--mode", default="dense", choices=["dense", "lexical", "hybrid"],
                       help="dense (the expert's embeddings, default), lexical (BM25 over title and abstract) or "
                            "hybrid (both, fused by reciprocal rank)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", default=None, help="torch device for encoding the query (default: cpu)")


def register_encode(sub) -> None:
    p = sub.add_parser(
        "encode", help="encode a collection of papers (JSONL, CSV or parquet) for search / classify / recommend",
        description="Embed every paper of --input through the task experts into the collection folder --output: "
                    "streamed, sharded, written atomically; run the same command again to resume. Under "
                    "`accelerate launch` each process encodes its own share of the shards.")
    p.add_argument("--model", help="a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: "
                                   "fetched and converted on first use), a SciMult folder or Hub id (default: "
                                   "scimult-moe when cached or the Hub answers, else the offline default; one line "
                                   "says which)")
    p.add_argument("--input", required=True, help="papers file: .jsonl, .csv, .tsv or .parquet (optionally .gz)")
    p.add_argument("--output", required=True, help="the collection to write (or to resume): a folder or a URI "
                                                   "(s3://bucket/papers; credentials and endpoint from the "
                                                   "environment, as AWS_ENDPOINT_URL)")
    p.add_argument("--task", default="search",
                   help=f"comma-separated tasks whose experts embed the papers: {_TASKS_HELP} "
                        "(default: search; classify needs classification, recommend link_prediction)")
    p.add_argument("--id-column", default="id", help="column with the paper id (default: id)")
    p.add_argument("--title-column", default="title", help="column with the title (default: title)")
    p.add_argument("--abstract-column", default="abstract", help="column with the abstract (default: abstract)")
    p.add_argument("--text-column", default=None,
                   help="column with the whole model input, instead of title [SEP] abstract")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"],
                   help="torch (default), or ONNX Runtime on the CPU, fp32 or int8 (needs `pip install "
                        "scimult-hf[onnx]`)")
    p.add_argument("--batch-size", type=int, default=32, help="papers per forward pass (default: 32)")
    p.add_argument("--shard-size", type=int, default=1_000,
                   help="papers per output shard, the unit of resuming: a stop loses at most one shard's work "
                        "(default: 1000)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on a GPU, float32 on the CPU), float32, "
                                                   "bfloat16 or float16")
    p.add_argument("--prompt-name", default=None, help="prompt of the model to prepend (instruction variant)")
    p.add_argument("--overwrite", action="store_true",
                   help="encode again into an existing --output (another input or model): the new collection is "
                        "built beside the old one and replaces it only when complete (a stopped run resumes)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (this process, or one per GPU under `accelerate launch`; default) or ray (Ray Data: "
                        "a pool of --workers actors, each with the model; needs `pip install 'scimult-hf[ray]'`)")
    p.add_argument("--workers", type=int, default=2, help="--engine ray: actors holding the model (default: 2)")
    p.add_argument("--gpus-per-worker", type=float, default=0,
                   help="--engine ray: GPUs per actor (1: one actor per GPU; default 0: CPU slots)")
    p.add_argument("--ray-address", default=None,
                   help="--engine ray: the cluster to join (default: start a local one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_encode)


def register_search(sub) -> None:
    p = sub.add_parser("search", help="top-k papers of a collection for a query (search expert)")
    _common(p, "search")
    p.add_argument("--query", action="append", help="query text (repeat for several)")
    p.add_argument("--queries", help="file with one query per line")
    p.set_defaults(func=_search)


def register_classify(sub) -> None:
    p = sub.add_parser("classify", help="top-k labels for papers of a collection (classification expert)")
    _common(p, "classification", modes=False, top_k=3)
    p.add_argument("--labels", required=True, help='labels.jsonl with rows {"id", "name"[, "description"]}')
    p.add_argument("--id", action="append", help="classify this paper of the collection (repeat for several)")
    p.add_argument("--limit", type=int, default=10, help="papers shown when no --id is given (default: 10)")
    p.add_argument("--output", help="write every paper's labels to this JSONL file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_classify)


def register_recommend(sub) -> None:
    p = sub.add_parser("recommend", help="likely citations for a paper, from a collection (link-prediction expert)")
    _common(p, "link_prediction")
    p.add_argument("--id", help="id of a paper in the collection")
    p.add_argument("--text", help="a paper's text: 'title [SEP] abstract' (or its title)")
    p.set_defaults(func=_recommend)
