"""The Hugging Face Hub side: model and dataset cards (publishing and the inference handler come next)."""

from .cards import BIBTEX, converted_model_card

__all__ = ["BIBTEX", "converted_model_card"]
