"""Training step time of SciMult-MoE against a dense model of identical shape, on identical batches.

    python benchmarks/train_step.py                       # CPU, MiniLM shape, batch 32, sequence 128
    python benchmarks/train_step.py --device cuda --bf16  # GPU, bf16 autocast; also BERT-base shape

One step is what the trainer does per batch: the anchor, positive and hard-negative columns through the
encoder with one task's experts, InfoNCE over the in-batch candidates, backward, AdamW. Both models are
built from the same BERT (the MoE one upcycled, so its shared weights equal the dense model's) and run
in the same process; each MoE step is paired with a dense step right next to it (order alternating) and
the table reports the median of the paired ratios (MoE time / dense time; target <= 1.10) and the
throughput in samples (training pairs) per second.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch
from torch.nn import functional as F
from transformers import BertConfig, BertModel

from scimult_hf.models.bert import from_bert

SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
TASKS = ("search", "link_prediction", "classification")


def make_models(shape: str, expert_type: str, device: str):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**SHAPES[shape], hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
                     add_pooling_layer=False)
    moe = from_bert(bert, expert_type=expert_type).to(device).train()
    dense = from_bert(bert, expert_type=None).to(device).train()
    return moe, dense


def step_fn(model, optimizer, batches, task, bf16: bool, device: str):
    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            anchor, positive, negative = (model(**b, task=task).pooler_output for b in batches)
            candidates = torch.cat([positive, negative])
            scores = F.normalize(anchor, dim=-1) @ F.normalize(candidates, dim=-1).T * 20.0
            loss = F.cross_entropy(scores.float(), torch.arange(anchor.shape[0], device=anchor.device))
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def measure(shape: str, expert_type: str, args) -> dict:
    moe, dense = make_models(shape, expert_type, args.device)
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(3):  # anchor, positive, negative columns
        ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g)
        mask = torch.ones_like(ids)
        mask[: args.batch // 2, args.seq // 2:] = 0  # half the rows padded to half length
        batches.append({"input_ids": ids.to(args.device), "attention_mask": mask.to(args.device)})
    steps = {}
    for name, model in (("moe", moe), ("dense", dense)):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        steps[name] = step_fn(model, optimizer, batches, "search" if name == "moe" else None, args.bf16, args.device)
        for _ in range(args.warmup):
            steps[name]()
    ratios, times = [], {"moe": [], "dense": []}
    for rep in range(args.reps):
        order = ("moe", "dense") if rep % 2 == 0 else ("dense", "moe")
        took = {}
        for name in order:
            t0 = time.perf_counter()
            steps[name]()
            took[name] = time.perf_counter() - t0
            times[name].append(took[name])
        ratios.append(took["moe"] / took["dense"])
    return {
        "shape": shape, "experts": expert_type,
        "moe_s": statistics.median(times["moe"]), "dense_s": statistics.median(times["dense"]),
        "ratio": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
        "moe_pairs_per_s": args.batch / statistics.median(times["moe"]),
        "dense_pairs_per_s": args.batch / statistics.median(times["dense"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=None)
    parser.add_argument("--experts", nargs="+", choices=["attention", "ffn"], default=["attention", "ffn"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--reps", type=int, default=None, help="timed pairs (default 8 on CPU, 30 on GPU)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.shapes = args.shapes or (list(SHAPES) if gpu else ["minilm"])
    args.reps = args.reps or (30 if gpu else 8)
    where = torch.cuda.get_device_name() if gpu else f"{platform.machine()}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {args.device} ({where}){', bf16 autocast' if args.bf16 else ''}; "
          f"batch {args.batch} pairs (anchor, positive, hard negative), sequence {args.seq}\n")
    print("| shape | experts | dense s/step | MoE s/step | ratio MoE/dense (median) | range | target | ok | "
          "MoE pairs/s | dense pairs/s |")
    print("|---|---|---:|---:|---:|---|---:|:---:|---:|---:|")
    for shape in args.shapes:
        for expert_type in args.experts:
            r = measure(shape, expert_type, args)
            print(f"| {shape} | {expert_type} | {r['dense_s']:.4f} | {r['moe_s']:.4f} | {r['ratio']:.3f} | "
                  f"{r['low']:.2f}-{r['high']:.2f} | 1.10 | {'yes' if r['ratio'] <= 1.10 else 'no'} | "
                  f"{r['moe_pairs_per_s']:.1f} | {r['dense_pairs_per_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
