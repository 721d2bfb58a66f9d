"""Throughput of SciMultModel against a plain BertModel of identical shape, in the same process.

    python benchmarks/encode.py                 # MiniLM and BERT-base shapes, batch 32, sequence 256
    python benchmarks/encode.py --shapes minilm --reps 9

Prints a markdown table of ratios (BERT time / SciMult time, so 1.00 = as fast as BERT). Targets:
>= 0.98 for single-task batches, >= 0.90 for mixed-task batches (the three tasks interleaved).
Every SciMult measurement is paired with a BERT run right next to it (the order alternating between
repetitions), and the table reports the median of the paired ratios with their range, so that drifts
in machine load (on a shared 2-core VM single runs vary by about 10 %) cancel instead of deciding the
result.

glibc serves every large tensor with a fresh mmap and returns it on free, so each forward pass pays
page faults whose cost varies from run to run; the script therefore re-executes itself with glibc's
mmap and trim thresholds raised (``MALLOC_MMAP_THRESHOLD_`` etc.), which keeps freed memory for reuse.
Both models run under the same allocator; ``--plain-malloc`` measures without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel

from scimult_hf.models.bert import from_bert

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
        "attention": from_bert(bert, expert_type="attention").eval(),
        "ffn": from_bert(bert, expert_type="ffn").eval(),
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
    bert_run = runs.pop(("bert", "-"))
    pairs: dict = {k: [] for k in runs}  # (BERT time, SciMult time) measured back to back
    with torch.inference_mode():
        bert_run()
        for fn in runs.values():  # warm-up
            fn()
        for rep in range(reps):
            for key, fn in runs.items():
                if rep % 2 == 0:  # alternate which of the pair runs first
                    b = timed(bert_run)
                    t = timed(fn)
                else:
                    t = timed(fn)
                    b = timed(bert_run)
                pairs[key].append((b, t))
    # FLOPs are deterministic: the same count means the same arithmetic, whatever the machine's noise.
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            bert_run()
        bert_flops = counter.get_total_flops()
        flops = {}
        for key, fn in runs.items():
            with FlopCounterMode(display=False) as counter:
                fn()
            flops[key] = counter.get_total_flops()
    rows = []
    for (kind, mode), measured in pairs.items():
        ratios = sorted(b / t for b, t in measured)
        rows.append(dict(shape=name, experts=kind, batch=mode, bert_s=statistics.median(b for b, _ in measured),
                         scimult_s=statistics.median(t for _, t in measured), ratio=statistics.median(ratios),
                         spread=(ratios[0], ratios[-1]), flop_ratio=flops[(kind, mode)] / bert_flops,
                         target=0.98 if mode == "single" else 0.90))
    return rows


MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(16 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def main() -> int:
    if "--plain-malloc" not in sys.argv and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--plain-malloc", action="store_true", help="keep glibc's default allocator settings")
    parser.add_argument("--reps", type=int, default=None, help="timed pairs per variant (default 16 MiniLM, 3 BERT-base)")
    args = parser.parse_args()
    allocator = "glibc defaults" if args.plain_malloc else "glibc with raised mmap/trim thresholds"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {allocator}")
    rows = []
    for shape in args.shapes:
        reps = args.reps or (16 if shape == "minilm" else 3)
        rows += bench_shape(shape, args.batch, args.seq, reps)
    print(f"\nbatch {args.batch}, sequence {args.seq}; ratio = BERT time / SciMult time (higher is better)\n")
    print("| shape | experts | batch | BERT s/batch | SciMult s/batch | ratio (median) | range | target | ok "
          "| FLOPs vs BERT |")
    print("|---|---|---|---:|---:|---:|---|---:|:---:|---:|")
    ok = True
    for r in rows:
        passed = r["ratio"] >= r["target"]
        ok &= passed
        print(f"| {r['shape']} | {r['experts']} | {r['batch']}-task | {r['bert_s']:.3f} | {r['scimult_s']:.3f} | "
              f"{r['ratio']:.3f} | {r['spread'][0]:.2f}-{r['spread'][1]:.2f} | {r['target']:.2f} | "
              f"{'yes' if passed else 'NO'} | {r['flop_ratio']:.4f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
