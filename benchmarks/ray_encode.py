"""Encoding on Ray Data against the single-process encode, on the same papers: papers/s and equality.

    python benchmarks/ray_encode.py [--papers 1000] [--workers 1 2]

The first ``--papers`` SciFact abstracts (``../shared/data/scifact``) are encoded with the offline default model
by ``scimult-hf encode`` (one process), then by ``scimult-hf encode --engine ray --workers N`` on a local Ray
cluster, each command in a fresh process and timed from start to exit (Ray's start included: that is what a
user waits for). Each Ray collection is compared with the single-process one (same ids, largest difference
of a vector). Results go to ``benchmarks/results/ray_encode.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
RESULTS = Path(__file__).resolve().parent / "results"


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scimult_hf.cli", *args, "--quiet"], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--output", default=os.fspath(RESULTS / "ray_encode"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np

    from scimult_hf import default_model_path
    from scimult_hf.corpus import Collection
    from scimult_hf.environment import environment_line, environment_record

    model = os.fspath(default_model_path())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        papers = Path(tmp) / "papers.jsonl"
        with open(SHARED / "corpus.jsonl", encoding="utf-8") as src, open(papers, "w", encoding="utf-8") as dst:
            for _, line in zip(range(args.papers), src):
                row = json.loads(line)
                dst.write(json.dumps({"id": row["_id"], "title": row["title"], "abstract": row["text"]}) + "\n")
        common = ["--model", model, "--input", str(papers), "--shard-size", str(args.shard_size)]
        seconds = timed(["encode", *common, "--output", f"{tmp}/one"])
        one = Collection(f"{tmp}/one")
        rows.append({"engine": "local (1 process)", "workers": 1, "seconds": round(seconds, 1),
                     "papers_s": round(args.papers / seconds, 1), "same_ids": True, "max_diff": 0.0})
        reference = dict(zip(one.ids(), one.embeddings("search")))
        for n in args.workers:
            seconds = timed(["encode", "--engine", "ray", "--workers", str(n), *common, "--output", f"{tmp}/ray{n}"])
            ray = Collection(f"{tmp}/ray{n}")
            ids = ray.ids()
            diff = float(np.abs(ray.embeddings("search") - np.stack([reference[i] for i in ids])).max())
            rows.append({"engine": "ray", "workers": n, "seconds": round(seconds, 1),
                         "papers_s": round(args.papers / seconds, 1), "same_ids": sorted(ids) == sorted(reference),
                         "max_diff": diff})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["papers_s"]
    lines = [f"{args.papers} SciFact abstracts, offline default model, shards of {args.shard_size}, each command "
             "timed from start to exit (a local Ray cluster started by the command):", "",
             "| engine | workers | seconds | papers/s | vs local | same ids | largest vector difference |",
             "|---|---:|---:|---:|---:|:---:|---:|"]
    lines += [f"| {r['engine']} | {r['workers']} | {r['seconds']} | {r['papers_s']} | {r['papers_s'] / base:.2f} | "
              f"{'yes' if r['same_ids'] else 'NO'} | {r['max_diff']:.1e} |" for r in rows]
    text = "\n".join([*lines, "", environment_line()])
    print(text)
    Path(args.output + ".md").write_text(text + "\n", encoding="utf-8")
    Path(args.output + ".json").write_text(json.dumps({"rows": rows, "environment": environment_record()},
                                                      indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
