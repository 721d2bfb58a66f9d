"""scimult-hf: SciMult for transformers and sentence-transformers.

Importing the package is cheap (nothing heavy is imported until it is used), yet it registers
``"scimult"`` with ``AutoConfig`` / ``AutoModel``. The classes are marked for remote code in their own
bodies (``_auto_class``), so ``save_pretrained`` always writes ``auto_map`` and copies
``configuration_scimult.py`` and ``modeling_scimult.py`` next to the weights. The registration runs the moment transformers' auto
classes are imported (at once when they already are), through post-import hooks; the public names
below are loaded on first use (``lazy_loader``).
"""

import sys

import lazy_loader
import wrapt

__version__ = "0.1.0"

#: Our modules that ``_register`` imports: it must wait while either is half imported.
_OURS = (f"{__name__}.configuration_scimult", f"{__name__}.modeling_scimult")
_AUTO = ("transformers.models.auto.configuration_auto", "transformers.models.auto.modeling_auto")
#: Modules whose completed import may be the moment registration becomes possible (hooks on each): the
#: auto modules, ours, and the transformers modules that import the auto modules half way through their own
#: import (sentence-transformers' path goes through modelcard / integration_utils / modeling_utils).
_WATCHED = (*_AUTO, "transformers.models.bert.configuration_bert", "transformers.models.bert.modeling_bert",
            "transformers.modeling_utils", "transformers.modelcard", "transformers.integrations.integration_utils",
            "transformers.trainer", "transformers.pipelines", "transformers.processing_utils",
            "transformers.models.auto.tokenization_auto", "transformers.models.encoder_decoder.configuration_encoder_decoder",
            "sentence_transformers", *_OURS)


def _importing(done) -> bool:
    """True while a transformers module, or one of ``_OURS``, other than ``done`` is still being imported.

    Other scimult_hf modules may be half imported (``scimult_hf.models.folder`` importing
    sentence-transformers is the usual moment the auto classes arrive): registration does not wait on them.
    """
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if module is not done and (name.startswith("transformers.") or name in _OURS)
    )


def _register(module=None) -> None:
    """Register the SciMult classes with AutoConfig / AutoModel once transformers' auto classes are imported.

    Runs after each watched module finishes importing; it does nothing while another transformers import (or
    one of ``_OURS``) is half done - importing our classes then could meet a half-initialised module - and
    the watched module that finishes last does the work. (The classes name their own auto classes, so
    ``save_pretrained`` writes ``auto_map`` and the code files even before this has run.)
    """
    if not any(name in sys.modules for name in _AUTO) or _importing(module):
        return
    from transformers import AutoConfig, AutoModel

    from .configuration_scimult import SciMultConfig
    from .modeling_scimult import SciMultModel

    AutoConfig.register("scimult", SciMultConfig, exist_ok=True)
    AutoModel.register(SciMultConfig, SciMultModel, exist_ok=True)


for _name in _WATCHED:
    wrapt.register_post_import_hook(_register, _name)

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["convert", "evaluation", "hub", "models", "retrieval", "training"],
    submod_attrs={
        "configuration_scimult": ["SciMultConfig"],
        "modeling_scimult": ["SciMultModel", "SciMultPreTrainedModel"],
        "text": ["label_text", "paper_text", "paper_texts"],
        "models.bert": ["from_bert", "to_bert"],
        "models.export": ["export_task"],
        "models.folder": ["load_sentence_transformer", "save_sentence_transformer"],
        "released": ["RELEASED"],
        "resolve": ["default_model_path", "load_model", "resolve_model", "resolve_model_path"],
        "models.tasks": ["INSTRUCTION_PROMPTS"],
        "models.upcycle": ["upcycle"],
        "retrieval.encoding": ["encode_by_task"],
    },
)
