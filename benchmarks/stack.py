"""The installed stack against the original SciMult code, and what Hub kernels do to encoding.

    python benchmarks/stack.py                       # writes benchmarks/results/stack.{json,md}
    python benchmarks/stack.py --texts 256 --reps 5

1. Conversion: each golden fixture in ``../shared/fixtures`` converted on this stack, embedded through
   sentence-transformers, compared with the embeddings the original SciMult code computed (max |diff|).
2. Kernels: the offline default folder loaded with ``use_kernels=False`` (the package's default) and
   ``use_kernels=True`` (transformers 5.25's own default), encoding the same texts, paired and alternating;
   papers/s (median of the repetitions), the largest difference between the two embeddings, and which modules
   ``kernelize`` replaced.
The results file records the stack's versions and the machine (:func:`scimult_hf.environment.environment_record`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from scimult_hf import default_model_path, load_model
from scimult_hf.convert import convert_checkpoint
from scimult_hf.environment import environment_line, environment_record
from scimult_hf.io import atomic_write_text
from scimult_hf.text import paper_texts

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
TASKS = ["search", "link_prediction", "classification"]
SAMPLE = ROOT / "src" / "scimult_hf" / "sample" / "papers.jsonl"


def conversion_errors() -> dict[str, float]:
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in sorted(p for p in FIXTURES.iterdir() if (p / "checkpoint.ckpt").is_file()):
            folder = convert_checkpoint(fixture / "checkpoint.ckpt", Path(tmp) / fixture.name,
                                        tokenizer=fixture / "bert_config")
            model = load_model(folder)
            texts = [p["text"] for p in json.loads((fixture / "texts.json").read_text())["papers"]]
            worst = 0.0
            for key, want in load_file(fixture / "embeddings.safetensors").items():
                task = None if key == "no_expert" else TASKS[int(key.split("_")[1])]
                got = torch.as_tensor(model.encode(texts, task=task, convert_to_numpy=True))
                worst = max(worst, float((got - want).abs().max()))
            errors[fixture.name] = worst
    return errors


def kernels(n_texts: int, reps: int) -> dict:
    papers = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:n_texts]]
    texts = paper_texts(papers)
    folder = default_model_path()
    models = {flag: load_model(folder, model_kwargs={"use_kernels": flag}) for flag in (False, True)}
    replaced = [name for name, module in models[True][0].model.named_modules()
                if type(module).forward is not type(models[False][0].model.get_submodule(name)).forward]
    runs: dict[bool, list[float]] = {False: [], True: []}
    out = {}
    for rep in range(reps):
        for flag in ((False, True) if rep % 2 == 0 else (True, False)):
            start = time.perf_counter()
            out[flag] = models[flag].encode(texts, task="search", batch_size=32, convert_to_tensor=True)
            runs[flag].append(len(texts) / (time.perf_counter() - start))
    return {
        "texts": len(texts), "reps": reps,
        "papers_per_s": {("kernels on" if k else "kernels off"): round(statistics.median(v), 1) for k, v in runs.items()},
        "max_abs_diff": float((out[True] - out[False]).abs().max()),
        "modules_replaced_by_kernelize": replaced,
        "use_kernels_after_load": {str(k): bool(m[0].model.use_kernels) for k, m in models.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "stack"))
    args = parser.parse_args()
    result = {"conversion_max_abs_diff": conversion_errors(), "kernels": kernels(args.texts, args.reps),
              "environment": environment_record()}
    k = result["kernels"]
    lines = ["# The stack against the original SciMult code", "", environment_line(result["environment"]), "",
             "| fixture | max abs diff to the original code |", "|---|---:|"]
    lines += [f"| {name} | {diff:.2e} |" for name, diff in result["conversion_max_abs_diff"].items()]
    lines += ["", f"Encoding {k['texts']} sample papers (search expert, batch 32, median of {k['reps']}, paired):", "",
              "| load | papers/s |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in k["papers_per_s"].items()]
    lines += ["", f"Embeddings with and without kernels differ by at most {k['max_abs_diff']:.1e}; kernelize "
              f"replaced {len(k['modules_replaced_by_kernelize'])} modules."]
    atomic_write_text(Path(args.output + ".md"), "\n".join(lines) + "\n")
    atomic_write_text(Path(args.output + ".json"), json.dumps(result, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
