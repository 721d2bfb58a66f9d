"""The Hugging Face Hub side: model and dataset cards (publishing and the inference handler come next)."""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        'cards': ['BIBTEX', 'converted_model_card'],
    },
)
