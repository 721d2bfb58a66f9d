"""What the training benchmarks share: a float32 base, the plain sentence-transformers baseline, a SciMult run,
weight interpolation with the start, and a bar plot of a results table.

Used by ``train_small.py`` (three sets) and ``train_scaled.py`` (six sets); not a module of the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def fp32_copy(base: Path, work: Path) -> Path:
    """``base`` itself if its weights are float32, else a float32 copy (a half-precision carried copy)."""
    import torch
    from safetensors import safe_open
    from transformers import BertModel

    with safe_open(base / "model.safetensors", framework="pt") as f:
        dtype = f.get_slice(next(iter(f.keys()))).get_dtype()
    if dtype == "F32":
        return base
    out = work / "base-fp32"
    if not out.exists():
        shutil.copytree(base, out)
        BertModel.from_pretrained(base, dtype=torch.float32).save_pretrained(out)
    return out


def train_plain(base: Path, data, out: Path, *, device: str, epochs: float = 1.0, max_steps: int = -1,
                batch_size: int = 32, lr: float = 2e-5, bf16: bool = False, max_seq_length: int = 256, seed: int = 0,
                sampler: str = "round_robin") -> Path:
    """The stock sentence-transformers recipe: one model, MultipleNegativesRankingLoss per task, no task anywhere.

    The same batches as a SciMult run of the same options (datasets sorted by task, same sampler and seeds).
    The default batch sampler: ``NO_DUPLICATES`` cannot fill a batch of 32 from OHSUMED's 23 labels.
    """
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st = SentenceTransformer(str(base), device=device)
    st.max_seq_length = max_seq_length
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=epochs, max_steps=max_steps,
        per_device_train_batch_size=batch_size, learning_rate=lr, warmup_steps=0.1,
        batch_sampler=BatchSamplers.BATCH_SAMPLER, multi_dataset_batch_sampler=MultiDatasetBatchSamplers(sampler),
        seed=seed, data_seed=seed, save_strategy="no", logging_steps=20, report_to=[], bf16=bf16,
        use_cpu=device == "cpu", dataloader_drop_last=True,
    )
    datasets = {task: d.pairs for task, d in sorted(data.items())}
    trainer = SentenceTransformerTrainer(model=st, args=targs, train_dataset=datasets,
                                         loss={t: MultipleNegativesRankingLoss(st) for t in datasets})
    trainer.train()
    st.save(str(out / "model"), create_model_card=False)
    return out / "model"


def train_scimult(base: Path, data, out: Path, **config) -> Path:
    """``scimult_hf.training.train`` with a ``TrainConfig`` of ``config`` (no intermediate checkpoints)."""
    from scimult_hf.training import TrainConfig, train

    return train(base, data, out, TrainConfig(save_steps=10**9, **config))


def interpolate_with_start(run: Path, alpha: float, out: Path) -> Path:
    """A copy of ``run/model`` whose weights are ``alpha * trained + (1 - alpha) * start`` (``run/initial``, the
    upcycled start): weight-space ensembling of a fine-tune with its start (WiSE-FT)."""
    from safetensors.torch import load_file, save_file

    trained = load_file(run / "model" / "model.safetensors")
    start = load_file(run / "initial" / "model.safetensors")
    if trained.keys() != start.keys():
        raise SystemExit(f"{run}: the trained model and its start have different weights; cannot interpolate.")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run / "model", out)
    save_file({k: alpha * v + (1 - alpha) * start[k] if v.is_floating_point() else v for k, v in trained.items()},
              out / "model.safetensors", metadata={"format": "pt"})
    return out


def bar_plot(table: dict[str, dict[str, float]], path: Path, title: str, ylabel: str = "headline metric") -> None:
    """Grouped bars: one group per set (the table's columns), one bar per model (its rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(max(9, 1.4 * len(sets)), 4.2))
    width = 0.8 / len(table)
    for i, (model, row) in enumerate(table.items()):
        ax.bar([j + i * width for j in range(len(sets))], [row.get(s, float("nan")) for s in sets], width, label=model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sets))], sets, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    from scimult_hf.environment import png_metadata

    fig.savefig(path, dpi=120, metadata=png_metadata())  # the stack, in the PNG
    plt.close(fig)
