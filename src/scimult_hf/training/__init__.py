"""Multi-task contrastive training of SciMult: per-task data, hard negatives, the trainer.

* :mod:`.data` - (anchor, positive) pairs per task from BEIR folders, classification folders and pair /
  triplet files, checked row by row;
* :mod:`.negatives` - hard negatives mined with a model through the task's expert, never a known positive;
* :mod:`.trainer` - :func:`train` with the sentence-transformers trainer (one task per batch, InfoNCE,
  no duplicate texts in a batch), resumable, data-parallel under ``accelerate launch`` / ``torchrun``;
* :mod:`.cli` - ``scimult-hf prepare`` and ``scimult-hf train``.
"""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        'data': ['TaskData', 'load_task_data', 'pairs_from_beir', 'pairs_from_classification', 'pairs_from_file'],
        'negatives': ['mine_hard_negatives'],
        'trainer': ['VARIANTS', 'TrainConfig', 'complete_checkpoints', 'train'],
    },
)
