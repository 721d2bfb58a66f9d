"""Multi-task contrastive training of SciMult: per-task data, hard negatives, the trainer.

* :mod:`.data` - (anchor, positive) pairs per task from BEIR folders, classification folders and pair /
  triplet files, checked row by row;
* :mod:`.negatives` - hard negatives mined with a model through the task's expert, never a known positive;
* :mod:`.trainer` - :func:`train` with the sentence-transformers trainer (one task per batch, InfoNCE,
  no duplicate texts in a batch), resumable, data-parallel under ``accelerate launch`` / ``torchrun``;
* :mod:`.cli` - ``scimult-hf prepare`` and ``scimult-hf train``.
"""

from .data import TaskData, load_task_data, pairs_from_beir, pairs_from_classification, pairs_from_file
from .negatives import mine_hard_negatives
from .trainer import VARIANTS, TrainConfig, complete_checkpoints, train

__all__ = [
    "VARIANTS",
    "TaskData",
    "TrainConfig",
    "complete_checkpoints",
    "load_task_data",
    "mine_hard_negatives",
    "pairs_from_beir",
    "pairs_from_classification",
    "pairs_from_file",
    "train",
]
