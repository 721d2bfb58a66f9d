"""SciMult model configuration.

This file imports only ``transformers`` so that it can be shipped unchanged as Hub remote code
(``trust_remote_code=True``) next to ``modeling_scimult.py``.
"""

from transformers import PreTrainedConfig

DEFAULT_TASKS = ("search", "link_prediction", "classification")
DEFAULT_TASK_ALIASES = {"query": "search", "document": "search"}
EXPERT_TYPES = ("attention", "ffn")
POOLING_MODES = ("cls", "mean")


class SciMultInputError(ValueError):
    """Bad input to the SciMult config or model (a field value, a task, weights that do not fit the config); the
    message names it and the fix. (The remote-code files import only torch and transformers, so this class
    stands alone; scimult-hf's command line reports it in one line like its own errors.)"""


def _is_task_name(name: str) -> bool:
    """A letter, then letters, digits, ``_``, ``-`` or ``.``: a name that reads as ``task=...`` and as a folder."""
    return (isinstance(name, str) and name.isascii() and name[:1].isalpha()
            and name.replace("_", "").replace("-", "").replace(".", "").isalnum())


class SciMultConfig(PreTrainedConfig):
    r"""Configuration of a [`SciMultModel`]: a BERT encoder whose chosen sub-layers carry one expert per task.

    Every BERT field keeps its meaning and default (BERT-base). SciMult adds:

    Args:
        tasks (`list[str]`, defaults to `["search", "link_prediction", "classification"]`):
            Ordered task names; the position of a name is its expert id (the original SciMult ids:
            search 0, link prediction 1, classification 2).
        task_aliases (`dict[str, str]`, defaults to `{"query": "search", "document": "search"}`):
            Extra names accepted for a task. The defaults let sentence-transformers'
            `encode_query` / `encode_document` reach the search expert.
        expert_type (`str` or `None`, defaults to `"attention"`):
            `"attention"`: per-task query/key/value and attention-output dense (attention LayerNorm
            and feed-forward shared; the released SciMult-MoE). `"ffn"`: per-task intermediate dense,
            output dense and output LayerNorm. `None`: a dense BERT (the instruction-tuning variant).
        expert_layers (`list[int]`, defaults to every other layer from 1):
            Indices of the layers that carry experts (ignored when `expert_type` is `None`).
        pooling (`str`, defaults to `"cls"`):
            `"cls"` (the original SciMult embedding: last hidden state at [CLS]) or `"mean"`
            (masked mean over tokens).
        normalize (`bool`, defaults to `False`):
            L2-normalise the embedding. The original scores with a raw dot product.

    Example:

    ```python
    >>> from scimult_hf import SciMultConfig
    >>> config = SciMultConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64)
    >>> config.expert_layers
    [1, 3]
    >>> config.task_id("document")
    0

    ```
    """

    model_type = "scimult"
    # Saved configs name their auto class (``auto_map``) and travel with this file, whatever was imported first.
    _auto_class = "AutoConfig"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    position_embedding_type: str = "absolute"
    tasks: list[str] | None = None
    task_aliases: dict[str, str] | None = None
    expert_type: str | None = "attention"
    expert_layers: list[int] | None = None
    pooling: str = "cls"
    normalize: bool = False

    def __post_init__(self, **kwargs):
        self.tasks = list(DEFAULT_TASKS) if self.tasks is None else [str(t) for t in self.tasks]
        if not self.tasks:
            raise SciMultInputError("SciMultConfig.tasks must name at least one task.")
        bad_names = [t for t in self.tasks if not _is_task_name(t)]
        if bad_names:
            raise SciMultInputError(
                f"SciMultConfig.tasks: {bad_names} are not task names; a task name starts with a letter and holds "
                "only letters, digits, '_', '-' and '.' (e.g. patient_retrieval), since it is typed as task=... "
                "and names an export folder."
            )
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise SciMultInputError(f"SciMultConfig.tasks has duplicate task names {duplicates}; each task needs a unique name.")

        if self.task_aliases is None:
            self.task_aliases = {k: v for k, v in DEFAULT_TASK_ALIASES.items() if v in self.tasks}
        self.task_aliases = dict(self.task_aliases)
        for alias, target in self.task_aliases.items():
            if target not in self.tasks:
                raise SciMultInputError(
                    f"SciMultConfig.task_aliases maps {alias!r} to {target!r}, which is not one of tasks={self.tasks}."
                )
            if alias in self.tasks:
                raise SciMultInputError(f"SciMultConfig.task_aliases: alias {alias!r} is already a task name.")

        if self.expert_type not in (*EXPERT_TYPES, None):
            raise SciMultInputError(
                f"SciMultConfig.expert_type must be one of {list(EXPERT_TYPES)} or None (dense), got {self.expert_type!r}."
            )
        if self.expert_layers is None:
            self.expert_layers = list(range(1, self.num_hidden_layers, 2))
        self.expert_layers = sorted(int(i) for i in self.expert_layers)
        bad = [i for i in self.expert_layers if not 0 <= i < self.num_hidden_layers]
        if bad:
            raise SciMultInputError(
                f"SciMultConfig.expert_layers has indices {bad} out of range for num_hidden_layers="
                f"{self.num_hidden_layers} (valid: 0..{self.num_hidden_layers - 1})."
            )
        if len(set(self.expert_layers)) != len(self.expert_layers):
            raise SciMultInputError(f"SciMultConfig.expert_layers has repeated indices: {self.expert_layers}.")

        if self.pooling not in POOLING_MODES:
            raise SciMultInputError(f"SciMultConfig.pooling must be one of {list(POOLING_MODES)}, got {self.pooling!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise SciMultInputError(
                f"SciMultConfig.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.position_embedding_type != "absolute":
            raise SciMultInputError(
                f"SciMultConfig.position_embedding_type: only 'absolute' is supported, got {self.position_embedding_type!r}."
            )
        super().__post_init__(**kwargs)

    @property
    def num_experts(self) -> int:
        """Experts per expert sub-layer: one per task, or 0 for a dense model."""
        return len(self.tasks) if self.expert_type is not None else 0

    @property
    def has_experts(self) -> bool:
        return self.expert_type is not None and len(self.expert_layers) > 0

    def valid_task_names(self) -> list[str]:
        return list(self.tasks) + [a for a in self.task_aliases if a not in self.tasks]

    def task_id(self, task: str) -> int:
        """Expert id of a task name or alias; `ValueError` listing the valid names otherwise."""
        if isinstance(task, str):
            name = self.task_aliases.get(task, task)
            if name in self.tasks:
                return self.tasks.index(name)
        raise SciMultInputError(
            f"Unknown task {task!r}. Valid tasks: {self.tasks}"
            + (f" (aliases: {self.task_aliases})" if self.task_aliases else "")
            + "."
        )


__all__ = ["SciMultConfig", "SciMultInputError"]
