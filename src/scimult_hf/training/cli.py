"""``scimult-hf prepare`` and ``scimult-hf train`` (registered by :mod:`scimult_hf.cli`).

    scimult-hf prepare --data search=DIR --data classification=DIR [--split train] --output DIR
                       [--negatives N --model M]
    scimult-hf train --model BASE --data search=DIR ... | --prepared DIR  --output DIR
                     [--variant moe|vanilla|instruction] [--expert-type attention|ffn] [--expert-layers 1 3 5]
                     [--negatives N] [--resume] [--epochs E] [--max-steps S] [--batch-size B] [--lr LR]
                     [--expert-lr LR] [--freeze-shared] ...  (scimult-hf train --help lists them all)

``--data TASK=PATH`` takes a BEIR folder (search, link prediction), a classification folder or a pair /
triplet file (JSONL or parquet: anchor, positive[, negative]). Launch ``train`` with ``accelerate launch``
or ``torchrun`` for several processes or GPUs (``accelerate launch -m scimult_hf.cli train ...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError

__all__ = ["register_prepare", "register_train"]


def _task_path(text: str) -> tuple[str, str]:
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not TASK=PATH (e.g. search=data/scifact)")
    return task, path


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=_task_path, action="append", default=[], metavar="TASK=PATH",
                   help="a task's training data: BEIR folder, classification folder, or pair/triplet JSONL/parquet "
                   "(repeat per task)")
    p.add_argument("--recipe", help="a JSON mixture instead of --data: per task, its sets and their weights, and "
                   "label negatives (see scimult_hf.training.recipe)")
    p.add_argument("--split", default="train", help="split of the folders to read (default: train)")
    p.add_argument("--negatives", type=int, default=0, help="hard negatives to mine per pair (default: 0)")
    p.add_argument("--negatives-skip", type=int, default=0, help="nearest non-positives to pass over when mining")
    p.add_argument("--negatives-max-length", type=int, default=None, metavar="TOKENS",
                   help="mine with the texts cut to this many tokens (64: 1.6 times as fast as 128 on a CPU; "
                   "default: the model's length)")


def _load(args, model_for_mining):
    from .data import load_task_data
    from .negatives import mine_hard_negatives

    if args.recipe:
        from .recipe import load_recipe, mixture_data

        if args.data:
            raise InputError("give either --recipe or --data, not both.")
        recipe = load_recipe(args.recipe)
        if not args.negatives:
            return mixture_data(recipe)
        from ..models.folder import load_sentence_transformer
        from ..resolve import resolve_model_path

        st = load_sentence_transformer(resolve_model_path(model_for_mining))
        return mixture_data(recipe, mine=lambda d: mine_hard_negatives(
            st, d, args.negatives, args.negatives_skip, show_progress_bar=True, max_length=args.negatives_max_length))
    if not args.data:
        raise InputError("give training data with --data TASK=PATH (one per task), or a --recipe.")
    tasks = [t for t, _ in args.data]
    if len(set(tasks)) != len(tasks):
        raise InputError(f"--data names a task twice: {tasks}.")
    data = {task: load_task_data(path, task, args.split) for task, path in args.data}  # all checked first
    if args.negatives:
        from ..models.folder import load_sentence_transformer
        from ..resolve import resolve_model_path

        st = load_sentence_transformer(resolve_model_path(model_for_mining))
        data = {t: mine_hard_negatives(st, d, args.negatives, args.negatives_skip, show_progress_bar=True,
                                       max_length=args.negatives_max_length) for t, d in data.items()}
    return data


def run_prepare(args) -> int:
    """Write each task's pairs as ``OUTPUT/TASK/pairs.parquet`` with ``provenance.json`` beside it."""
    from ..io import atomic_directory, check_output
    from .data import provenance

    if args.negatives and not args.model:
        raise InputError("--negatives needs --model (the model that mines them).")
    check_output(args.output, [p for _, p in args.data] + ([args.recipe] if args.recipe else []), args.overwrite)
    data = _load(args, args.model)
    with atomic_directory(args.output) as tmp:
        for task, d in data.items():
            (tmp / task).mkdir()
            d.pairs.to_parquet(str(tmp / task / "pairs.parquet"))
            (tmp / task / "provenance.json").write_text(provenance(d) + "\n", encoding="utf-8")
    for task, d in data.items():
        print(f"{task}: {len(d.pairs):,} rows, columns {d.pairs.column_names} -> {Path(args.output) / task}")
    return 0


def run_train(args) -> int:
    from dataclasses import fields

    from ..resolve import resolve_model_path
    from .data import load_task_data
    from .trainer import TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.init}
    if values.get("add_task") and "=" in values["add_task"]:  # --add-task NAME=DATA: the new task and its data
        name, path = values["add_task"].split("=", 1)
        values["add_task"] = name
        args.data = [*args.data, (name, path)]
    config = TrainConfig(**values)
    if args.prepared:
        if args.data:
            raise InputError("give either --prepared or --data, not both.")
        folders = sorted(p for p in Path(args.prepared).iterdir() if (p / "pairs.parquet").is_file())
        if not folders:
            raise InputError(f"--prepared {args.prepared}: no TASK/pairs.parquet inside (write it with prepare).")
        data = {p.name: load_task_data(p / "pairs.parquet", p.name) for p in folders}
    else:
        data = _load(args, args.model)
    folder = train(resolve_model_path(args.model), data, args.output, config, resume=args.resume)
    print(f"wrote {folder} (and per-task exports, losses, card draft in {args.output})")
    if args.push_to_hub:
        from ..hub.publish import push_model

        card = (Path(args.output) / "README.md").read_text(encoding="utf-8")
        print(f"pushed {args.push_to_hub}: {push_model(folder, args.push_to_hub, card, private=args.private)}")
    return 0


def register_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="turn training data into per-task pair files (parquet, with provenance)")
    _data_options(p)
    p.add_argument("--model", help="model that mines the hard negatives (with --negatives): a released name, folder or Hub id")
    p.add_argument("--output", required=True, help="folder to write (one sub-folder per task)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run_prepare)


def register_train(sub, full: bool = True) -> None:
    """Add ``train``. Its hyper-parameter options are built from :class:`~scimult_hf.training.trainer.TrainConfig`
    by ``transformers.HfArgumentParser`` (one source for names, defaults, choices and help); ``full=False``
    leaves them out, so that listing the commands imports no transformers."""
    parents = []
    if full:
        from transformers import HfArgumentParser

        from .trainer import TrainConfig

        options = HfArgumentParser(TrainConfig, add_help=False)
        for action in options._actions:  # --help names the dashed forms (as the README does); --max_steps still works
            dashed = [o for o in action.option_strings if "_" not in o]
            if dashed:
                action.option_strings = dashed
        parents.append(options)
    p = sub.add_parser("train", help="multi-task contrastive training (MoE, vanilla or instruction variant)",
                       parents=parents)
    p.add_argument("--model", required=True, help="BERT / sentence-transformers folder to upcycle, or a SciMult folder, or a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: fetched and converted on first use)")
    _data_options(p)
    p.add_argument("--prepared", help="a folder written by `scimult-hf prepare` instead of --data")
    p.add_argument("--output", required=True, help="run folder (checkpoints, model, exports, logs, card)")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in --output")
    p.add_argument("--push-to-hub", metavar="REPO", help="push the trained model (exports, handler, card) to this repo")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    for action in p._actions:  # the underscore spellings still parse, unlisted
        for option in action.option_strings:
            if option.startswith("--") and "-" in option[2:]:
                p._option_string_actions.setdefault("--" + option[2:].replace("-", "_"), action)
    p.set_defaults(func=run_train)
