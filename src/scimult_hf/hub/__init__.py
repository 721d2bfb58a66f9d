"""The Hugging Face Hub side: model and dataset cards (:mod:`.cards`), pushing a model with its exports, handler and
card (:mod:`.publish`), dataset repositories (:mod:`.dataset_repo`), and the released checkpoints converted,
evaluated, carded and pushed in one call (:mod:`.release`)."""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        'cards': ['BIBTEX', 'converted_model_card'],
        'release': ['release_models'],
    },
)
