"""scimult-hf: SciMult for transformers and sentence-transformers.

Importing the package is cheap (nothing heavy is imported until it is used), yet it registers
``"scimult"`` with ``AutoConfig`` / ``AutoModel`` and marks the classes for remote code - so
``save_pretrained`` writes ``auto_map`` and copies ``configuration_scimult.py`` and
``modeling_scimult.py`` next to the weights. The registration runs the moment transformers' auto
classes are imported (at once when they already are), through post-import hooks; the public names
below are loaded on first use (``lazy_loader``).
"""

import lazy_loader
import wrapt

__version__ = "0.1.0"

_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _register_config(configuration_auto) -> None:
    from .configuration_scimult import SciMultConfig

    configuration_auto.AutoConfig.register("scimult", SciMultConfig, exist_ok=True)
    SciMultConfig.register_for_auto_class()


def _register_model(modeling_auto) -> None:
    from .configuration_scimult import SciMultConfig
    from .modeling_scimult import SciMultModel

    modeling_auto.AutoModel.register(SciMultConfig, SciMultModel, exist_ok=True)
    SciMultModel.register_for_auto_class("AutoModel")


wrapt.register_post_import_hook(_register_config, _CONFIG_AUTO)
wrapt.register_post_import_hook(_register_model, _MODEL_AUTO)

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["convert", "evaluation", "hub", "retrieval", "training"],
    submod_attrs={
        "configuration_scimult": ["SciMultConfig"],
        "modeling_scimult": ["SciMultModel", "SciMultPreTrainedModel"],
        "text": ["label_text", "paper_text", "paper_texts"],
        "sentence": [
            "INSTRUCTION_PROMPTS",
            "export_task",
            "load_sentence_transformer",
            "save_sentence_transformer",
            "upcycle",
        ],
        "defaults": ["default_model_path"],
        "retrieval.encoding": ["encode_by_task"],
    },
)
