"""One command for the released weights: convert each original checkpoint, evaluate it where data is
given, render its model card from ``model_cards/`` and push it (or dry-run it).

The four files of the authors' release and how their cards use them:

* ``scimult_vanilla.ckpt`` - the dense model (no task argument);
* ``scimult_moe.ckpt`` - attention experts; the card's examples use the search expert;
* ``scimult_moe_pmcpatients_par.ckpt`` / ``..._ppr.ckpt`` - the PMC-Patients fine-tunes, whose authors'
  evaluation uses the link-prediction expert.

A file that is not in the checkpoint folder is skipped (and reported).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["RELEASED", "release_models"]

#: checkpoint file -> (card template in ``model_cards/`` and repository name, task of the card's examples)
RELEASED: dict[str, tuple[str, str | None]] = {
    "scimult_vanilla.ckpt": ("scimult_vanilla", None),
    "scimult_moe.ckpt": ("scimult_moe", "search"),
    "scimult_moe_pmcpatients_par.ckpt": ("scimult_moe_pmcpatients_par", "link_prediction"),
    "scimult_moe_pmcpatients_ppr.ckpt": ("scimult_moe_pmcpatients_ppr", "link_prediction"),
}


def release_models(checkpoints: str | os.PathLike, org: str, work: str | os.PathLike, cards: str | os.PathLike, *,
                   tokenizer: str | os.PathLike | dict[str, str] | None = None, data: dict[str, str] | None = None,
                   code_revision: str | None = None, dry_run: bool = False, api=None, private: bool = False) -> dict:
    """Convert, evaluate, render and push (or, with ``dry_run``, write to ``work/repos/NAME``) each released
    checkpoint found in ``checkpoints``. ``tokenizer`` is one folder / Hub id for all, or one per file name;
    ``data`` maps a task to a data folder to evaluate on. Returns {file name: pushed commit or dry-run folder}.
    """
    from ..convert import convert_checkpoint
    from ..evaluation import evaluate_task
    from .cards import render_card
    from .publish import push_model

    checkpoints, work, cards = Path(checkpoints), Path(work), Path(cards)
    found = {name: spec for name, spec in RELEASED.items() if (checkpoints / name).is_file()}
    if not found:
        raise FileNotFoundError(f"{checkpoints}: none of the released checkpoints {sorted(RELEASED)} is there.")
    for name in sorted(set(RELEASED) - set(found)):
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
