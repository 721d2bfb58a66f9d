"""One command for the released weights: convert each original checkpoint, evaluate it where data is
given, render its model card from ``model_cards/`` and push it (or dry-run it).

The four files of the authors' release and how their cards use them are listed once, in
:data:`scimult_hf.released.RELEASED`: the dense ``scimult_vanilla.ckpt`` (no task), ``scimult_moe.ckpt``
(the card's examples use the search expert) and the PMC-Patients fine-tunes (the link-prediction expert, as
their authors' evaluation does).

A file that is not in the checkpoint folder is skipped (and reported).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["release_models"]


def release_models(checkpoints: str | os.PathLike, org: str, work: str | os.PathLike, cards: str | os.PathLike, *,
                   tokenizer: str | os.PathLike | dict[str, str] | None = None, data: dict[str, str] | None = None,
                   code_revision: str | None = None, dry_run: bool = False, api=None, private: bool = False) -> dict:
    """Convert, evaluate, render and push (or, with ``dry_run``, write to ``work/repos/NAME``) each released
    checkpoint found in ``checkpoints``. ``tokenizer`` is one folder / Hub id for all, or one per file name;
    ``data`` maps a task to a data folder to evaluate on. Returns {file name: pushed commit or dry-run folder}.
    """
    from ..convert import convert_checkpoint
    from ..evaluation import evaluate_task
    from ..released import RELEASED
    from .cards import render_card
    from .publish import push_model

    checkpoints, work, cards = Path(checkpoints), Path(work), Path(cards)
    files = {release.filename: (release.card, release.example_task) for release in RELEASED.values()}
    found = {name: spec for name, spec in files.items() if (checkpoints / name).is_file()}
    if not found:
        raise FileNotFoundError(f"{checkpoints}: none of the released checkpoints {sorted(files)} is there.")
    for name in sorted(set(files) - set(found)):
        logger.warning("%s is not in %s; skipped", name, checkpoints)
    done = {}
    for name, (card_name, task) in found.items():
        tok = tokenizer.get(name) if isinstance(tokenizer, dict) else tokenizer
        folder = convert_checkpoint(checkpoints / name, work / "models" / card_name, tokenizer=tok, overwrite=True)
        results = [evaluate_task(str(folder), t, path, show_progress_bar=False) for t, path in (data or {}).items()]
        repo_id = f"{org}/{card_name}"
        card = render_card((cards / f"{card_name}.md").read_text(encoding="utf-8"), repo_id, task=task,
                           code_revision=code_revision, results=results or None)
        dry = work / "repos" / card_name if dry_run else None
        if dry is not None and dry.exists():
            import shutil

            shutil.rmtree(dry)
        done[name] = push_model(folder, repo_id, card, api=api, private=private, dry_run=dry)
        logger.info("%s -> %s", name, done[name])
    return done
