"""Multi-task contrastive training of SciMult with the sentence-transformers trainer.

Every batch comes from one task (one dataset per batch, as the original trains), the tasks mixed
round-robin or in proportion to their sizes. Each task's loss is InfoNCE over the in-batch candidates
plus its hard negatives: :class:`~scimult_hf.training.loss.SciMultInfoNCELoss`, which masks repeated
texts so that two papers with the same label never become each other's false negatives; or, for batches
too large for memory, sentence-transformers' cached ``MultipleNegativesRankingLoss`` with the
``NO_DUPLICATES`` batch sampler (which needs at least twice the batch size in distinct positives). ``router_mapping`` tags every column of a task's dataset with
the task, which reaches ``SciMultModel.forward(task=...)`` and so picks the experts.

Variants: ``moe`` (attention or feed-forward experts, upcycled from any BERT), ``vanilla`` (one dense
encoder) and ``instruction`` (dense, with the task's instruction prepended as a prompt). Launch with
``python``, ``accelerate launch`` or ``torchrun``: the trainer runs data-parallel across processes (DDP
with ``find_unused_parameters``, since a rank's batch leaves the other tasks' experts unused).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import InputError
from .data import TaskData

logger = logging.getLogger(__name__)

__all__ = ["VARIANTS", "TrainConfig", "complete_checkpoints", "train"]

VARIANTS = ("moe", "vanilla", "instruction")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _option(default, help: str, **metadata):
    """A dataclass field whose metadata ``HfArgumentParser`` turns into the ``train`` command's option."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run: the ``train`` command's options (built from these fields by
    ``transformers.HfArgumentParser``) and what the output's ``training.json`` and card record."""

    variant: Literal["moe", "vanilla", "instruction"] = _option(
        "moe", "moe: one expert per task; vanilla: one dense encoder; instruction: dense, with task prompts")
    expert_type: Literal["attention", "ffn"] = _option("attention", "sub-layers with experts (variant moe)")
    expert_layers: list[int] | None = _option(None, "layers with experts, e.g. 1 3 5 (default: every other from 1)")
    epochs: float = _option(1.0, "passes over the training data")
    max_steps: int = _option(-1, "stop after this many steps (overrides --epochs)")
    batch_size: int = _option(32, "pairs per batch, per process")
    learning_rate: float = _option(2e-5, "learning rate of the shared weights", aliases=["--lr"])
    expert_learning_rate: float | None = _option(None, "learning rate of the experts (default: --lr)",
                                                 aliases=["--expert-lr"])
    freeze_shared: bool = _option(False, "train the experts only (variant moe)")
    init_pull: float = _option(0.0, "L2 pull toward the starting weights: adds init_pull * sum((w - w_start)^2) "
                                    "over the trained weights to every batch's loss (keeps what the base knew; "
                                    "0: off)")
    scale: float = _option(20.0, "InfoNCE scale (1 / temperature)")
    cached_loss: bool = _option(False, "cached InfoNCE, for batches too large for memory")
    mini_batch_size: int = _option(32, "with --cached-loss: rows per forward pass")
    sampler: Literal["round_robin", "proportional"] = _option("round_robin", "how batches of the tasks alternate")
    warmup_ratio: float = _option(0.1, "share of the steps with a rising learning rate")
    seed: int = _option(0, "random seed for data order and initialisation")
    save_steps: int = _option(500, "checkpoint every N steps")
    save_total_limit: int = _option(2, "checkpoints kept")
    logging_steps: int = _option(10, "log the per-task losses every N steps")
    bf16: bool = _option(False, "bfloat16 mixed precision (GPU)")
    dataloader_workers: int = _option(0, "processes that collate (tokenize) batches ahead of the training step (0: "
                                         "in the training process; on a GPU, a few keep it fed)")
    max_seq_length: int | None = _option(None, "truncate inputs to this many tokens")
    add_task: str | None = _option(None, "add this task to a trained model with experts (its data: --data NAME=DIR, "
                                         "or --add-task NAME=DIR): one new expert per expert layer, the only "
                                         "weights that train, so the old tasks embed exactly as before")
    init_from: str | None = _option(None, "with --add-task: the task whose experts the new ones start from "
                                          "(default: the model's first task)")
    #: Set from the training data, not an option.
    tasks: list[str] = field(default_factory=list, init=False)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise InputError(f"variant must be one of {list(VARIANTS)}, got {self.variant!r}.")
        if self.sampler not in ("round_robin", "proportional"):
            raise InputError(f"sampler must be 'round_robin' or 'proportional', got {self.sampler!r}.")
        if self.freeze_shared and self.variant != "moe":
            raise InputError("freeze_shared trains the experts only, so it needs variant 'moe'.")
        if self.dataloader_workers < 0:
            raise InputError(f"dataloader_workers must be >= 0 (0: collate in the training process), got "
                             f"{self.dataloader_workers}.")
        if self.init_pull < 0:
            raise InputError(f"init_pull must be >= 0 (0: off), got {self.init_pull}.")
        if self.init_from and not self.add_task:
            raise InputError("--init-from goes with --add-task (the task whose experts the new task starts from).")


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders that were written to the end (``trainer_state.json`` is the trainer's last file),
    oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / "trainer_state.json").is_file()]


def _remove_incomplete_checkpoints(folder: Path) -> None:
    complete = set(complete_checkpoints(folder))
    for p in folder.iterdir() if folder.is_dir() else ():
        if _CHECKPOINT.match(p.name) and p not in complete:
            logger.warning("removing %s: an interrupted save left it incomplete", p)
            shutil.rmtree(p, ignore_errors=True)


def _initial_model(base: str, config: TrainConfig, folder: Path):
    """The model training starts from: a SciMult folder as it is, or a BERT upcycled per the variant."""
    from ..models.folder import load_sentence_transformer, local_or_hub_id, model_type
    from ..models.tasks import INSTRUCTION_PROMPTS
    from ..models.upcycle import upcycle

    base = local_or_hub_id(base)
    if model_type(base) != "scimult":
        upcycle(base, folder, expert_type=config.expert_type if config.variant == "moe" else None,
                expert_layers=config.expert_layers,
                prompts=INSTRUCTION_PROMPTS if config.variant == "instruction" else None, overwrite=True)
        base = str(folder)
    st = load_sentence_transformer(base)
    has_experts = st[0].model.config.has_experts
    if has_experts != (config.variant == "moe"):
        raise InputError(f"{base} {'has' if has_experts else 'has no'} experts, which does not fit variant "
                         f"{config.variant!r}; start from a BERT or a matching SciMult folder.")
    if config.max_seq_length:
        st.max_seq_length = config.max_seq_length
    # Checkpoints get sentence-transformers' card without its example embeddings: the example encodes without
    # a task, which a model with experts refuses. The run's own card is written at the end.
    st.model_card_data.generate_widget_examples = False
    return st


def _make_trainer_class():
    from sentence_transformers import SentenceTransformerTrainer

    class SciMultTrainer(SentenceTransformerTrainer):
        """Records each task's loss: logged as ``loss/<task>`` (tensorboard, ``log_history``) and shown on the
        progress bar with the task of the current batch. With ``init_pull`` > 0 every batch's loss also gets
        ``init_pull * sum((w - w_start)^2)`` over the trained weights (L2-SP: fine-tuning that stays near the
        start), logged as ``loss/init_pull``."""

        def add_model_card_callback(self, default_args_dict):
            """No sentence-transformers card: its usage snippet encodes without a task, which SciMult refuses;
            the run writes its own card (``hub.cards.trained_model_card``)."""

        def __init__(self, *args, init_pull: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.task_losses: dict[str, list[float]] = defaultdict(list)
            self.current = ("", float("nan"))
            self.init_pull = init_pull
            # The starting point of each trained weight (a detached copy, on the weight's device).
            self.start = ({n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
                          if init_pull else {})

        def pull(self, model):
            """``init_pull * sum((w - w_start)^2)`` over the trained weights (float32)."""
            params = dict(model.named_parameters())
            return self.init_pull * sum(((params[n].float() - w.float()) ** 2).sum() for n, w in self.start.items())

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            task = inputs.get("dataset_name")
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.init_pull and model.training:
                pull = self.pull(self.accelerator.unwrap_model(model))
                self.task_losses["init_pull"].append(float(pull.detach()))
                out = (out[0] + pull, *out[1:]) if isinstance(out, tuple) else out + pull
            if task and model.training:
                value = float((out[0] if isinstance(out, tuple) else out).detach())
                self.task_losses[task].append(value)
                self.current = (task, value)
            return out

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                for task, values in self.task_losses.items():
                    if values:
                        logs[f"loss/{task}"] = round(sum(values) / len(values), 4)
                self.task_losses.clear()
            return super().log(logs, *args, **kwargs)

    return SciMultTrainer


def _progress_callback(trainer):
    from transformers.trainer_callback import ProgressCallback

    class TaskProgress(ProgressCallback):
        def on_step_end(self, args, state, control, **kwargs):
            super().on_step_end(args, state, control, **kwargs)
            if self.training_bar is not None:
                task, loss = trainer.current
                self.training_bar.set_postfix(task=task, loss=f"{loss:.3f}", refresh=False)

        def on_log(self, args, state, control, logs=None, **kwargs):
            """A line a person reads (not the raw dict): the losses every few steps, the run's speed at the end."""
            if not state.is_world_process_zero or self.training_bar is None or not logs:
                return
            if "train_runtime" in logs:
                line = (f"trained {state.global_step} steps in {logs['train_runtime']:.0f} s "
                        f"({logs.get('train_steps_per_second', 0):.2f} steps/s)")
            else:
                losses = {k.removeprefix("loss/"): v for k, v in logs.items() if k.startswith("loss/")}
                if "loss" not in logs and not losses:
                    return
                line = f"step {state.global_step}: " + ", ".join(
                    [f"loss {logs['loss']:.4f}"] * ("loss" in logs) + [f"{t} {v:.4f}" for t, v in sorted(losses.items())])
            self.training_bar.write(line)

    return TaskProgress()


def train(base: str | os.PathLike, data: dict[str, TaskData], output_dir: str | os.PathLike,
          config: TrainConfig | None = None, resume: bool = False, callbacks: list | None = None) -> Path:
    """Train SciMult on ``data`` ({task: TaskData}) from ``base``; returns the trained model's folder.

    ``output_dir`` receives ``checkpoints/`` (resumable), ``logs/`` (tensorboard), ``model/`` (the SciMult
    folder), ``exports/<task>/`` (plain-BERT per-task folders, MoE only), ``losses.json``, ``loss.png`` and
    ``README.md`` (a model-card draft). ``resume=True`` continues from the last complete checkpoint with
    the same model, optimizer, scheduler, RNG and data position. ``callbacks`` are transformers
    ``TrainerCallback`` objects added to the trainer.
    """
    config = config or TrainConfig()
    _check_data(base, data, config.add_task)
    config.tasks = sorted(data)
    output_dir = Path(output_dir)
    created = not output_dir.exists()
    checkpoints = _prepare_output(output_dir, resume)
    try:
        return _train(base, data, output_dir, checkpoints, config, resume, callbacks)
    except BaseException:
        if created and not complete_checkpoints(checkpoints):  # nothing to resume: leave no empty run folder
            shutil.rmtree(output_dir, ignore_errors=True)
        raise


def _train(base, data: dict[str, TaskData], output_dir: Path, checkpoints: Path, config: TrainConfig, resume: bool,
           callbacks) -> Path:
    st = _initial_model(os.fspath(base), config, output_dir / "initial")
    if config.add_task:  # the new task's experts alone train: every other weight stays as it was
        from ..models.experts import add_task, new_expert_parameters

        st[0].model = add_task(st[0].model, config.add_task, config.init_from)
        trainable = set(new_expert_parameters(st[0].model, config.add_task))
        for name, param in st[0].model.named_parameters():
            param.requires_grad = name in trainable
    elif config.freeze_shared:
        for name, param in st[0].model.named_parameters():
            param.requires_grad = ".experts." in name
    datasets = {task: d.pairs for task, d in sorted(data.items())}
    trainer = _make_trainer(st, datasets, config, output_dir, checkpoints, callbacks)
    last = complete_checkpoints(checkpoints)
    trainer.train(resume_from_checkpoint=str(last[-1]) if resume and last else None)
    if not trainer.is_world_process_zero():
        return output_dir / "model"
    return _write_outputs(trainer, st, config, data, output_dir, base)


def _check_data(base: str | os.PathLike, data: dict[str, TaskData], add_task: str | None = None) -> None:
    """Every task of the data is a task of the model (a SciMult folder's own, else the three SciMult tasks), or
    the task being added (then the data is that task's alone)."""
    if not data:
        raise InputError("no training data: give at least one task.")
    from ..configuration_scimult import SciMultConfig
    from ..models.folder import model_type

    # A SciMult folder trains its own tasks; a BERT is upcycled with the default ones. The config answers.
    config = SciMultConfig.from_pretrained(base) if model_type(os.fspath(base)) == "scimult" else SciMultConfig()
    valid = set(config.valid_task_names())
    if add_task:
        if model_type(os.fspath(base)) != "scimult":
            raise InputError(f"--add-task adds a task to a trained SciMult model; {base} is not one.")
        if set(data) != {add_task}:
            raise InputError(f"with --add-task {add_task} the training data is that task's alone (--data "
                             f"{add_task}=DIR); got tasks {sorted(data)}.")
        return
    unknown = sorted(set(data) - valid)
    if unknown:
        raise InputError(f"unknown tasks {unknown} in the training data; the model's tasks are {sorted(valid)}.")


def _prepare_output(output_dir: Path, resume: bool) -> Path:
    """The checkpoint folder, after refusing an earlier run's (unless resuming) and removing incomplete ones."""
    checkpoints = output_dir / "checkpoints"
    if output_dir.exists() and not resume and complete_checkpoints(checkpoints):
        raise FileExistsError(f"{output_dir} holds checkpoints of an earlier run: pass resume=True (--resume) to "
                              "continue it, or choose another output folder.")
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_incomplete_checkpoints(checkpoints)
    return checkpoints


def _training_arguments(config: TrainConfig, datasets: dict, checkpoints: Path):
    """sentence-transformers' training arguments: one task per batch, the task's columns routed to its experts."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    from ..models.tasks import INSTRUCTION_PROMPTS

    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        learning_rate_mapping={r".*\.experts\..*": config.expert_learning_rate} if config.expert_learning_rate else {},
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of the training steps
        batch_sampler=BatchSamplers.NO_DUPLICATES if config.cached_loss else BatchSamplers.BATCH_SAMPLER,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers(config.sampler),
        router_mapping={task: {col: task for col in ds.column_names} for task, ds in datasets.items()},
        prompts=({task: INSTRUCTION_PROMPTS[task] for task in datasets} if config.variant == "instruction" else None),
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        # a short run still logs: at least five points on its loss curve (losses.json, loss.png)
        logging_steps=min(config.logging_steps, max(1, config.max_steps // 5)) if config.max_steps > 0
        else config.logging_steps,
        report_to=["tensorboard"] if _has("tensorboard") else [],
        bf16=config.bf16,
        use_cpu=not _cuda(),  # without it accelerate runs CPU workers as separate, undistributed processes
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _cuda() else None,
        dataloader_drop_last=True,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_persistent_workers=config.dataloader_workers > 0,
        disable_tqdm=False,
    )


def _make_trainer(st, datasets: dict, config: TrainConfig, output_dir: Path, checkpoints: Path, callbacks):
    """The trainer: one loss per task, per-task losses on the progress bar and in the logs."""
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from transformers.trainer_callback import ProgressCallback

    from .loss import SciMultInfoNCELoss

    def loss(task):
        if config.cached_loss:
            return CachedMultipleNegativesRankingLoss(st, scale=config.scale, mini_batch_size=config.mini_batch_size)
        return SciMultInfoNCELoss(st, scale=config.scale)

    args = _training_arguments(config, datasets, checkpoints)
    # transformers 5 takes the tensorboard folder from the environment when the trainer is built.
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(output_dir / "logs")
    try:
        trainer = _make_trainer_class()(model=st, args=args, train_dataset=datasets,
                                        loss={task: loss(task) for task in datasets}, init_pull=config.init_pull)
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR")
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_progress_callback(trainer))
    for callback in callbacks or ():
        trainer.add_callback(callback)
    return trainer


def _write_outputs(trainer, st, config: TrainConfig, data: dict[str, TaskData], output_dir: Path,
                   base: str | os.PathLike) -> Path:
    """The trained folder, the per-task exports, the losses (JSON and plot), ``training.json`` and the card."""
    from ..hub.cards import data_reference, model_reference, trained_model_card
    from ..io import atomic_write_text
    from ..models.export import export_task
    from ..models.folder import save_sentence_transformer
    from ..models.tasks import INSTRUCTION_PROMPTS

    model = st[0].model
    prompts = INSTRUCTION_PROMPTS if config.variant == "instruction" else None
    folder = save_sentence_transformer(model, st.tokenizer, output_dir / "model", prompts=prompts,
                                       max_seq_length=st.max_seq_length)
    if model.config.has_experts:
        for task in model.config.tasks:
            export_task(model, task, output_dir / "exports" / task, tokenizer=st.tokenizer,
                        max_seq_length=st.max_seq_length, overwrite=True)
    history = [h for h in trainer.state.log_history if any(k == "loss" or k.startswith("loss/") for k in h)]
    # Published files name models and data without local paths: Hub ids where known, else relative or own names.
    sources = {t: _without_local_paths(d.source, data_reference) for t, d in data.items()}
    base_name = model_reference(base)
    _write_json(output_dir / "losses.json", history)
    _write_json(output_dir / "training.json", {"base_model": base_name, "config": asdict(config), "data": sources,
                                               "global_step": trainer.state.global_step})
    _plot_losses(history, output_dir / "loss.png")
    atomic_write_text(output_dir / "README.md", trained_model_card(asdict(config), sources, base=base_name))
    return folder


def _without_local_paths(value, reference):
    """``value`` (a source record: dicts and lists) with every ``path`` / ``qrels`` entry passed to ``reference``."""
    if isinstance(value, dict):
        return {k: reference(v) if k in ("path", "qrels") and isinstance(v, str) else _without_local_paths(v, reference)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(v, reference) for v in value]
    return value


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_json(path: Path, value) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def _plot_losses(history: list[dict], path: Path) -> None:
    """Per-task training loss against the step, as a PNG (needs matplotlib, the ``train`` extra)."""
    if not _has("matplotlib"):
        logger.warning("matplotlib is not installed: no loss plot (pip install 'scimult-hf[train]').")
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_file

    fig, ax = plt.subplots(figsize=(7, 4))
    keys = sorted({k for h in history for k in h if k.startswith("loss/")})
    for key in keys:
        points = [(h["step"], h[key]) for h in history if key in h]
        ax.plot(*zip(*points), marker="o", markersize=3, label=key.split("/", 1)[1])
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title("Training loss per task")
    if keys:
        ax.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
