"""Peak memory and time of ``scimult-hf convert`` on a checkpoint the size of the released ``scimult_moe.ckpt``.

Builds a BERT-base SciMult-MoE checkpoint in the original training format (about 1.65 GB: one shared
encoder stored under both ``question_model.`` and ``ctx_model.``, attention experts in layers 1, 3,
..., 11 with 3 experts, vocabulary 30522, AdamW ``exp_avg`` / ``exp_avg_sq`` for every parameter but
the unused pooler, the fixture's omegaconf ``DictConfig`` encoder_params and ``ListConfig`` betas),
then converts it in a fresh subprocess and reports wall time and peak RSS of that subprocess against
the target peak RSS < 1.5 x the converted weights' bytes.

    python benchmarks/convert_memory.py [--workdir DIR [--keep] [--reuse]] [--phases]

Needs omegaconf (the ``dev`` extra) and ../shared/fixtures/scimult_moe_attn_s1 (its encoder_params,
optimizer betas and vocab.txt are reused). The weights are random; the conversion never looks at
values, only at names, shapes and storage sharing, so its memory use is that of the real file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / ".." / "shared" / "fixtures" / "scimult_moe_attn_s1"

HIDDEN, LAYERS, HEADS, INTERMEDIATE, VOCAB, POSITIONS, TYPES, EXPERTS = 768, 12, 12, 3072, 30522, 512, 2, 3


def bert_base_config() -> dict:
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": TYPES,
        "vocab_size": VOCAB,
    }


def original_shapes(moe: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    """BERT-relative names and shapes of a mod2:attn 3-expert SciMult encoder (``moe=False``: the vanilla one),
    in the original naming."""
    shapes = [
        ("embeddings.word_embeddings.weight", (VOCAB, HIDDEN)),
        ("embeddings.position_embeddings.weight", (POSITIONS, HIDDEN)),
        ("embeddings.token_type_embeddings.weight", (TYPES, HIDDEN)),
        ("embeddings.LayerNorm.weight", (HIDDEN,)),
        ("embeddings.LayerNorm.bias", (HIDDEN,)),
    ]
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        experts = moe and (i + 1) % 2 == 0
        for name in ("query", "key", "value"):
            if experts:
                for k in range(EXPERTS):
                    shapes += [(f"{p}attention.self.moe_{name}.{k}.weight", (HIDDEN, HIDDEN)),
                               (f"{p}attention.self.moe_{name}.{k}.bias", (HIDDEN,))]
            else:
                shapes += [(f"{p}attention.self.{name}.weight", (HIDDEN, HIDDEN)),
                           (f"{p}attention.self.{name}.bias", (HIDDEN,))]
        if experts:
            for k in range(EXPERTS):
                shapes += [(f"{p}attention.output.moe_dense.{k}.weight", (HIDDEN, HIDDEN)),
                           (f"{p}attention.output.moe_dense.{k}.bias", (HIDDEN,))]
        else:
            shapes += [(f"{p}attention.output.dense.weight", (HIDDEN, HIDDEN)),
                       (f"{p}attention.output.dense.bias", (HIDDEN,))]
        shapes += [
            (f"{p}attention.output.LayerNorm.weight", (HIDDEN,)),
            (f"{p}attention.output.LayerNorm.bias", (HIDDEN,)),
            (f"{p}intermediate.dense.weight", (INTERMEDIATE, HIDDEN)),
            (f"{p}intermediate.dense.bias", (INTERMEDIATE,)),
            (f"{p}output.dense.weight", (HIDDEN, INTERMEDIATE)),
            (f"{p}output.dense.bias", (HIDDEN,)),
            (f"{p}output.LayerNorm.weight", (HIDDEN,)),
            (f"{p}output.LayerNorm.bias", (HIDDEN,)),
        ]
    shapes += [("pooler.dense.weight", (HIDDEN, HIDDEN)), ("pooler.dense.bias", (HIDDEN,))]
    return shapes


def build_checkpoint(path: Path, moe: bool = True) -> int:
    """Write the checkpoint (``moe=False``: the layout of ``scimult_vanilla.ckpt``); returns the bytes of the
    weights a converter keeps (no pooler)."""
    import collections
    import typing

    import torch
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    allowed = [DictConfig, ListConfig, AnyNode, ContainerMetadata, Metadata, typing.Any, collections.defaultdict,
               dict, list, int]
    with torch.serialization.safe_globals(allowed):
        fixture = torch.load(FIXTURE / "checkpoint.ckpt", map_location="cpu", weights_only=True, mmap=True)
    encoder_params = fixture["encoder_params"]  # DictConfig whose parent is the whole training config
    if not moe:
        encoder_params["use_moe"] = False
    betas = fixture["optimizer_dict"]["param_groups"][0]["betas"]  # ListConfig node train.adam_betas
    group_template = {k: v for k, v in fixture["optimizer_dict"]["param_groups"][0].items() if k != "params"}

    gen = torch.Generator().manual_seed(0)
    encoder: OrderedDict[str, torch.Tensor] = OrderedDict()
    encoder["embeddings.position_ids"] = torch.arange(POSITIONS).expand((1, -1)).contiguous()
    kept = 0
    for name, shape in original_shapes(moe):
        if name.endswith("LayerNorm.weight"):
            tensor = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            tensor = 0.02 * torch.randn(shape, generator=gen)
        encoder[name] = tensor
        if not name.startswith("pooler."):
            kept += tensor.numel() * tensor.element_size()

    model_dict = OrderedDict()
    for prefix in ("question_model.encoder.", "ctx_model.encoder."):  # one shared encoder: same tensors twice
        for name, tensor in encoder.items():
            model_dict[prefix + name] = tensor

    params = [name for name in encoder if name != "embeddings.position_ids"]
    state, groups = {}, []
    for i, name in enumerate(params):
        groups.append({**group_template, "betas": betas, "params": [i]})
        if not name.startswith("pooler."):
            # calloc'd zeros: no memory is touched until torch.save reads them; the file layout is the real one
            state[i] = {"step": 1, "exp_avg": torch.zeros(encoder[name].shape),
                        "exp_avg_sq": torch.zeros(encoder[name].shape)}
    checkpoint = {
        "model_dict": model_dict,
        "optimizer_dict": {"state": state, "param_groups": groups},
        "scheduler_dict": fixture["scheduler_dict"],
        "offset": 0,
        "epoch": 9,
        "encoder_params": encoder_params,
    }
    torch.save(checkpoint, path)
    return kept


CHILD = r"""
import json, logging, resource, sys, time
t0 = time.perf_counter()
rss_mib = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
from scimult_hf.environment import peak_rss_mib as peak_mib
phases = []
class Phase(logging.Handler):
    def emit(self, record):
        message = record.getMessage()[:90]
        phases.append((round(time.perf_counter() - t0, 2), round(rss_mib()), round(peak_mib()), message))
handler = Phase()
for name in ("scimult_hf", "sentence_transformers"):
    logging.getLogger(name).addHandler(handler)
    logging.getLogger(name).setLevel(logging.INFO)
from scimult_hf.convert import convert_checkpoint
imports = (time.perf_counter() - t0, peak_mib())
t1 = time.perf_counter()
convert_checkpoint(sys.argv[1], sys.argv[2], tokenizer=sys.argv[3])
print(json.dumps({"convert_s": time.perf_counter() - t1, "total_s": time.perf_counter() - t0,
                  "import_s": imports[0], "import_peak_mib": imports[1], "peak_mib": peak_mib(), "phases": phases}))
"""


def verify(ckpt: Path, out: Path) -> int:
    """Every converted tensor equals its source in the checkpoint, bit for bit; returns the tensor count."""
    import torch
    from safetensors import safe_open

    from scimult_hf.convert import load_original_checkpoint
    from scimult_hf.convert.mapping import ConversionReport, rename_keys, shared_encoder_state

    original = load_original_checkpoint(ckpt)
    report = ConversionReport(checkpoint=ckpt)
    state = rename_keys(shared_encoder_state(original["model_dict"], report), report)
    with safe_open(out / "model.safetensors", framework="pt") as f:
        names = set(f.keys())
        assert names == set(state), sorted(names ^ set(state))[:5]
        for name in names:
            assert torch.equal(f.get_tensor(name), state[name]), name
    return len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", help="where to write the checkpoint and output (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and converted folder")
    parser.add_argument("--phases", action="store_true", help="print RSS at each logged step of the conversion")
    parser.add_argument("--reuse", action="store_true", help="reuse a checkpoint already in --workdir")
    args = parser.parse_args()
    if not FIXTURE.is_dir():
        print(f"needs the fixture {FIXTURE.resolve()} (../shared next to the project)", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="scimult-convert-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ckpt, out, base = work / "scimult_moe_bench.ckpt", work / "converted", work / "bert_base"
        base.mkdir(exist_ok=True)
        (base / "config.json").write_text(json.dumps(bert_base_config(), indent=2))
        shutil.copyfile(FIXTURE / "bert_config" / "vocab.txt", base / "vocab.txt")
        t = time.perf_counter()
        weights_file = work / "weights_bytes.txt"
        if args.reuse and ckpt.is_file() and weights_file.is_file():
            weights_bytes = int(weights_file.read_text())
            print(f"reusing {ckpt}", file=sys.stderr)
        else:
            weights_bytes = None
        # Build in a subprocess of its own, so that the measured child is the only thing this process waits for
        # after it and the builder's memory is gone before the conversion starts.
        if weights_bytes is None:
            build = subprocess.run(
                [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                 f"import convert_memory as b; print(b.build_checkpoint(__import__('pathlib').Path({str(ckpt)!r})))"],
                check=True, capture_output=True, text=True,
            )
            weights_bytes = int(build.stdout.strip().splitlines()[-1])
            weights_file.write_text(str(weights_bytes))
            print(f"built {ckpt} ({ckpt.stat().st_size:,} bytes) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)

        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(ckpt), str(out), str(base)],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        # Linux reports ru_maxrss in KiB; RUSAGE_CHILDREN is the largest of the waited-for children.
        import resource

        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        peak_child = result["peak_mib"] * 2**20
        saved = (out / "model.safetensors").stat().st_size
        target = 1.5 * weights_bytes
        print()
        print("| checkpoint | converted weights | wall time (subprocess) | convert_checkpoint() | peak RSS | "
              "peak RSS after imports | ratio peak / weights | target (< 1.5) |")
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {ckpt.stat().st_size / 1e9:.2f} GB | {weights_bytes / 1e9:.3f} GB (model.safetensors "
            f"{saved / 1e9:.3f} GB) | {wall:.1f} s | {result['convert_s']:.1f} s | {peak_child / 1e9:.2f} GB | "
            f"{result['import_peak_mib'] * 2**20 / 1e9:.2f} GB | {peak_child / weights_bytes:.2f} | "
            f"{'met' if peak_child < target else 'missed'} ({target / 1e9:.2f} GB) |"
        )
        t = time.perf_counter()
        count = verify(ckpt, out)
        print(f"\nverified: all {count} converted tensors equal the checkpoint's ({time.perf_counter() - t:.1f} s)")
        if abs(peak_children - peak_child) > 64 * 2**20:
            print(f"\n(RUSAGE_CHILDREN reports {peak_children / 1e9:.2f} GB: it includes the builder subprocess)")
        if args.phases:
            print("\n| t (s) | RSS (MiB) | peak so far (MiB) | step |\n|---|---|---|---|")
            for t_s, rss, peak, msg in result["phases"]:
                print(f"| {t_s} | {rss} | {peak} | {msg.replace('|', '/')} |")
        return 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:
            shutil.rmtree(work / "converted", ignore_errors=True)
            (work / "scimult_moe_bench.ckpt").unlink(missing_ok=True)
            (work / "weights_bytes.txt").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
