"""SciMult models as users meet them: folders, upcycling, per-task exports, task introspection.

* :mod:`.folder` - read a sentence-transformers folder's setup, save and load SciMult folders;
* :mod:`.bert` - BERT -> SciMult (``from_bert``) and one task back to a plain ``BertModel`` (``to_bert``);
* :mod:`.upcycle` - a BERT folder becomes a complete SciMult folder;
* :mod:`.export` - one task as a plain-BERT sentence-transformers folder;
* :mod:`.onnx` - that export in ONNX Runtime (fp32 / int8);
* :mod:`.tasks` - which tasks a model routes, which prompt a task uses, which experts are identical.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "bert": ["from_bert", "to_bert"],
        "export": ["export_task"],
        "folder": ["load_sentence_transformer", "local_or_hub_id", "model_type", "quiet_transformers",
                   "read_sentence_transformers_setup", "save_sentence_transformer",
                   "write_classic_sentence_transformers_files"],
        "onnx": ["OnnxEncoder", "export_onnx", "onnx_encoder"],
        "tasks": ["INSTRUCTION_PROMPTS", "check_task", "has_experts", "identical_experts", "prompt_for",
                  "routes_tasks", "task_names"],
        "upcycle": ["upcycle"],
    },
)
