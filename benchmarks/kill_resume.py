"""kill -9 at random points of ``scimult-hf convert`` and ``scimult-hf evaluate``, then run again.

    python benchmarks/kill_resume.py [--kills 10] [--seed 0] [--only convert|evaluate]

convert: a BERT-base SciMult-MoE checkpoint of the released file's size and layout (1.65 GB, built by
``benchmarks/convert_memory.py``) is converted once without interruption (the reference), then ``--kills``
times with SIGKILL at a random moment of the run (``--overwrite`` onto the same output), then once more
to the end. evaluate: link prediction on ``../shared/data/unarxive-cites`` with the offline default model,
an embedding cache and ``--output``, likewise. Reported: the leftovers (hidden staging files and folders)
present after the kills and after the final run, and whether the final result equals the reference
(``model.safetensors`` byte for byte; the metrics exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "benchmarks"))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "scimult_hf.cli", *args]


def run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def kill_at(argv: list[str], seconds: float) -> bool:
    """Start ``argv``, SIGKILL it after ``seconds``; True if it was still running then."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def leftovers(*folders: Path) -> list[str]:
    """Hidden staging entries (``.NAME.tmp-*`` / ``.NAME.old-*``) in the folders."""
    return sorted(p.name for f in folders if f.is_dir() for p in f.iterdir()
                  if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name))


def size(paths: list[str], folder: Path) -> int:
    total = 0
    for name in paths:
        p = folder / name
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return total


def kill_loop(name: str, argv: list[str], kills: int, duration: float, rng: random.Random, *folders: Path) -> dict:
    killed = 0
    for _ in range(kills):
        killed += kill_at(argv, rng.uniform(0.05, 0.95) * duration)
    after_kills = leftovers(*folders)
    left_bytes = size(after_kills, folders[0]) if after_kills else 0
    final_s = run(argv)
    return {"task": name, "kills": kills, "killed_mid_run": killed, "leftovers_after_kills": len(after_kills),
            "leftover_bytes": left_bytes, "leftovers_after_next_run": leftovers(*folders), "final_s": final_s}


def convert_case(work: Path, kills: int, rng: random.Random) -> dict:
    from convert_memory import FIXTURE, bert_base_config, build_checkpoint

    ckpt = work / "scimult_moe_bench.ckpt"
    build_checkpoint(ckpt)
    tokenizer = work / "bert_base"  # BERT-base config.json with the fixture's vocabulary
    tokenizer.mkdir()
    (tokenizer / "config.json").write_text(json.dumps(bert_base_config()))
    (tokenizer / "vocab.txt").write_bytes((FIXTURE / "bert_config" / "vocab.txt").read_bytes())
    ref, out = work / "reference", work / "out"
    duration = run(cli("convert", "--checkpoint", str(ckpt), "--output", str(ref), "--tokenizer", str(tokenizer)))
    argv = cli("convert", "--checkpoint", str(ckpt), "--output", str(out), "--tokenizer", str(tokenizer), "--overwrite")
    result = kill_loop("convert (1.65 GB checkpoint)", argv, kills, duration, rng, work)
    result["reference_s"] = duration
    result["equal_to_reference"] = (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
    return result


def evaluate_case(work: Path, kills: int, rng: random.Random) -> dict:
    data = SHARED / "data" / "unarxive-cites"
    base = ["evaluate", "--task", "link_prediction", "--data", str(data), "--quiet"]
    import scimult_hf

    model = str(scimult_hf.default_model_path())
    ref = work / "reference.json"
    duration = run(cli(*base, "--model", model, "--cache-dir", str(work / "ref-cache"), "--output", str(ref)))
    cache, out = work / "cache", work / "results" / "out.json"
    argv = cli(*base, "--model", model, "--cache-dir", str(cache), "--output", str(out))
    result = kill_loop("evaluate (unarXive cites, link prediction)", argv, kills, duration, rng, cache, out.parent)
    result["reference_s"] = duration
    metrics = [json.loads(p.read_text())["metrics"] for p in (ref, out)]
    result["equal_to_reference"] = metrics[0] == metrics[1]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["convert", "evaluate"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="scimult-kill-") as tmp:
        os.environ.setdefault("SCIMULT_HF_CACHE", str(Path(tmp) / "scimult-cache"))
        for name, case in (("convert", convert_case), ("evaluate", evaluate_case)):
            if args.only in (None, name):
                work = Path(tmp) / name
                work.mkdir()
                results.append(case(work, args.kills, rng))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print("| job | uninterrupted | kills (mid-run) | leftovers after the kills | after the next run | next run "
          "| result equals uninterrupted |")
    print("|---|---:|---:|---|---:|---:|:---:|")
    for r in results:
        print(f"| {r['task']} | {r['reference_s']:.1f} s | {r['kills']} ({r['killed_mid_run']}) | "
              f"{r['leftovers_after_kills']} ({r['leftover_bytes'] / 1e6:,.0f} MB) | "
              f"{len(r['leftovers_after_next_run'])} | {r['final_s']:.1f} s | "
              f"{'yes' if r['equal_to_reference'] else 'NO'} |")
    return 0 if all(r["equal_to_reference"] and not r["leftovers_after_next_run"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
