"""Throughput of SciMultModel against a plain BertModel of identical shape, in the same process.

    python benchmarks/encode.py                 # MiniLM and BERT-base shapes, batch 32, sequence 256
    python benchmarks/encode.py --shapes minilm --reps 9

Prints a markdown table of ratios (BERT time / SciMult time, so 1.00 = as fast as BERT). Targets:
>= 0.98 for single-task batches, >= 0.90 for mixed-task batches (the three tasks interleaved).
Timings are interleaved (BERT, then every SciMult variant, repeated) and the best of the repetitions
is reported (as ``timeit`` advises: slower runs measure other load on the machine, not the code).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from transformers import BertConfig, BertModel

from scimult_hf import SciMultConfig, SciMultModel

SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
TASKS = ["search", "link_prediction", "classification"]


def timed(fn, reps_inner: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(reps_inner):
        fn()
    return (time.perf_counter() - start) / reps_inner


def bench_shape(name: str, batch: int, seq: int, reps: int) -> list[dict]:
    dims = SHAPES[name]
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**dims), add_pooling_layer=False).eval()
    models = {
        "attention": SciMultModel.from_bert(bert, expert_type="attention").eval(),
        "ffn": SciMultModel.from_bert(bert, expert_type="ffn").eval(),
    }
    input_ids = torch.randint(1000, 30000, (batch, seq))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[batch // 2 :, seq * 3 // 4 :] = 0  # some padding, as in real batches
    mixed = [TASKS[i % 3] for i in range(batch)]
    runs = {
        ("bert", "-"): lambda: bert(input_ids=input_ids, attention_mask=attention_mask),
    }
    for kind, model in models.items():
        runs[(kind, "single")] = lambda m=model: m(input_ids=input_ids, attention_mask=attention_mask, task="search")
        runs[(kind, "mixed")] = lambda m=model: m(input_ids=input_ids, attention_mask=attention_mask, task=mixed)
    times: dict = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(reps):
            for key, fn in runs.items():
                times[key].append(timed(fn))
    base = min(times[("bert", "-")])
    rows = []
    for (kind, mode), ts in times.items():
        if kind == "bert":
            continue
        med = min(ts)
        rows.append(dict(shape=name, experts=kind, batch=mode, bert_s=base, scimult_s=med, ratio=base / med,
                         target=0.98 if mode == "single" else 0.90))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 9 MiniLM, 3 BERT-base)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rows = []
    for shape in args.shapes:
        reps = args.reps or (9 if shape == "minilm" else 3)
        rows += bench_shape(shape, args.batch, args.seq, reps)
    print(f"\nbatch {args.batch}, sequence {args.seq}; ratio = BERT time / SciMult time (higher is better)\n")
    print("| shape | experts | batch | BERT s/batch | SciMult s/batch | ratio | target | ok |")
    print("|---|---|---|---:|---:|---:|---:|:---:|")
    ok = True
    for r in rows:
        passed = r["ratio"] >= r["target"]
        ok &= passed
        print(f"| {r['shape']} | {r['experts']} | {r['batch']}-task | {r['bert_s']:.3f} | {r['scimult_s']:.3f} | "
              f"{r['ratio']:.3f} | {r['target']:.2f} | {'yes' if passed else 'NO'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
