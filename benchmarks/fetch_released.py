"""Bytes and time of fetching a released model by name: only the model tensors (default) vs the whole file.

Builds checkpoints of the released files' size and layout (``convert_memory.build_checkpoint``: BERT-base,
shared encoder stored twice, AdamW state; the MoE layout of ``scimult_moe.ckpt`` and the PMC-Patients pair, and
the dense layout of ``scimult_vanilla.ckpt``), serves them from a local Hub endpoint (``HF_ENDPOINT``,
``tests/hub_server.py``), and runs ``scimult-hf fetch NAME`` and ``scimult-hf fetch NAME --full`` in fresh
processes with empty caches. Reports bytes served, wall time, and that both ways give the same weights.

    python benchmarks/fetch_released.py [--workdir DIR] [--output benchmarks/results/fetch_released.json]

Needs omegaconf (the ``dev`` extra) and ../shared/fixtures. About 4 GB of disk; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import convert_memory  # noqa: E402
from hub_server import LocalHub, sha256_of  # noqa: E402

TOKENIZER_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
CHILD = """
import dataclasses, sys
import scimult_hf.released as r
r.RELEASED[NAME] = dataclasses.replace(r.RELEASED[NAME], size=SIZE, sha256=SHA)
from scimult_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_fetch(hub: LocalHub, name: str, size: int, sha: str, work: Path, full: bool) -> dict:
    cache = work / ("full" if full else "partial")
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache / "hub"),
           "SCIMULT_HF_CACHE": str(cache / "scimult"), "TOKENIZERS_PARALLELISM": "false"}
    code = CHILD.replace("NAME", repr(name)).replace("SIZE", str(size)).replace("SHA", repr(sha))
    sent = hub.sent
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "fetch", name, *(["--full"] if full else [])],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    folder = cache / "scimult" / "released" / name
    with open(folder / "model.safetensors", "rb") as f:
        weights = hashlib.file_digest(f, "sha256").hexdigest()
    return {"bytes": hub.sent - sent, "seconds": round(wall, 1), "weights_sha256": weights}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where to build and fetch (default: a temporary folder, removed)")
    parser.add_argument("--output", default=str(HERE / "results" / "fetch_released.json"))
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="scimult-fetch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "bert_base"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text(json.dumps(convert_memory.bert_base_config(), indent=2))
    shutil.copyfile(convert_memory.FIXTURE / "bert_config" / "vocab.txt", base / "vocab.txt")
    rows = []
    try:
        for name, moe in (("scimult-moe", True), ("scimult-vanilla", False)):
            ckpt = work / f"{name}.ckpt"
            if not ckpt.is_file():
                subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); import "
                                f"convert_memory as b; b.build_checkpoint(__import__('pathlib').Path({str(ckpt)!r}), "
                                f"moe={moe})"], check=True)
            size, sha = ckpt.stat().st_size, sha256_of(ckpt)
            files = {("yuz9yuz/SciMult", f"{name.replace('-', '_')}.ckpt"): ckpt,
                     **{(TOKENIZER_REPO, f): base / f for f in ("config.json", "vocab.txt")}}
            with LocalHub(files) as hub:
                partial = run_fetch(hub, name, size, sha, work, full=False)
                full = run_fetch(hub, name, size, sha, work, full=True)
            rows.append({"name": name, "file_bytes": size, "partial": partial, "full": full,
                         "same_weights": partial["weights_sha256"] == full["weights_sha256"]})
            ckpt.unlink()
            for way in ("partial", "full"):
                shutil.rmtree(work / way, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print("| model | file | fetched (default) | time | fetched (--full) | time | same weights |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        p, f = r["partial"], r["full"]
        print(f"| {r['name']} | {r['file_bytes'] / 1e6:,.0f} MB | {p['bytes'] / 1e6:,.0f} MB "
              f"({p['bytes'] / r['file_bytes']:.0%}) | {p['seconds']} s | {f['bytes'] / 1e6:,.0f} MB | "
              f"{f['seconds']} s | {'yes' if r['same_weights'] else 'NO'} |")
    from scimult_hf.environment import environment_record

    Path(args.output).write_text(json.dumps({"rows": rows, "environment": environment_record()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
