"""Convert the released SciMult training checkpoints (``scimult_vanilla.ckpt``, ``scimult_moe.ckpt``, the
PMC-Patients fine-tunes) into SciMult folders that load with ``transformers`` and ``sentence-transformers``.

The original files are ``torch.save`` pickles of the training state of github.com/yuzhimanhua/SciMult
(``model_dict``, ``optimizer_dict``, ``scheduler_dict``, ``offset``, ``epoch``, ``encoder_params``).

* :mod:`.checkpoint` - safe reading: the pickle's globals checked statically, then torch's restricted,
  memory-mapped loader; never a full unpickle;
* :mod:`.mapping` - one shared encoder, original key names to SciMult's, the config;
* :mod:`.writer` - tokenizer / base config resolution and the atomic folder writer;
* :mod:`.partial` and :mod:`.fetch` - the released files by name: only the model tensors fetched (HTTP
  ranges), checked, converted once (a file lock among processes);
* :mod:`.cli` - ``scimult-hf convert``.

Python::

    from scimult_hf.convert import convert_checkpoint
    convert_checkpoint("scimult_moe.ckpt", "scimult-moe", tokenizer="path/to/BiomedBERT")
"""

import lazy_loader

# Public names, imported on first use (so that `scimult-hf --help` stays fast).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        'checkpoint': ['ALLOWED_GLOBALS', 'BaseModelError', 'CheckpointError', 'load_original_checkpoint', 'plain'],
        'fetch': ['ReleasedModelError', 'fetch_released'],
        'mapping': ['ConversionReport', 'check_state', 'config_from_checkpoint', 'expert_layers_for'],
        'writer': ['MAX_LENGTH', 'RENAMED_BASE_MODEL', 'convert_checkpoint', 'resolve_tokenizer'],
    },
)
