"""scimult-hf: SciMult for transformers and sentence-transformers.

Importing the package registers ``"scimult"`` with ``AutoConfig`` / ``AutoModel`` and marks the classes
for remote code, so ``save_pretrained`` writes ``auto_map`` and copies ``configuration_scimult.py`` and
``modeling_scimult.py`` next to the weights.
"""

from transformers import AutoConfig, AutoModel

from .configuration_scimult import SciMultConfig
from .modeling_scimult import SciMultModel, SciMultPreTrainedModel
from .text import label_text, paper_text, paper_texts

AutoConfig.register("scimult", SciMultConfig, exist_ok=True)
AutoModel.register(SciMultConfig, SciMultModel, exist_ok=True)
SciMultConfig.register_for_auto_class()
SciMultModel.register_for_auto_class("AutoModel")

from .sentence import (  # noqa: E402  (needs the registration above)
    INSTRUCTION_PROMPTS,
    export_task,
    load_sentence_transformer,
    save_sentence_transformer,
    upcycle,
)

from .defaults import default_model_path  # noqa: E402
from .retrieval.encoding import encode_by_task  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "INSTRUCTION_PROMPTS",
    "SciMultConfig",
    "SciMultModel",
    "SciMultPreTrainedModel",
    "default_model_path",
    "encode_by_task",
    "export_task",
    "label_text",
    "load_sentence_transformer",
    "paper_text",
    "paper_texts",
    "save_sentence_transformer",
    "upcycle",
]
