"""SciMult: a BERT bi-encoder whose chosen sub-layers carry one expert per task (hard routing by task name).

Zhang et al., "Pre-training Multi-task Contrastive Learning Models for Scientific Literature Understanding"
(Findings of EMNLP 2023). This file imports only ``torch`` and ``transformers`` so that it can be shipped
unchanged as Hub remote code next to ``configuration_scimult.py``.

Parameter names follow ``transformers.BertModel`` exactly; an expert sub-layer replaces BERT's module
``X`` by ``X.experts.{k}`` (k = task id), so every expert path maps one to one onto a BERT name.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple

from .configuration_scimult import SciMultConfig, SciMultInputError

# BERT config fields that a SciMultConfig shares with a BertConfig.
BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "position_embedding_type",
)


@dataclass
class Routing:
    """Which expert each row of the (task-sorted) batch uses.

    ``expert`` is set when the whole batch uses one expert; otherwise ``segments`` lists
    ``(expert, start, stop)`` row ranges of a batch whose rows were sorted by task.
    """

    expert: int | None = None
    segments: tuple[tuple[int, int, int], ...] = ()


class Experts(nn.Module):
    """One copy of a sub-layer per task (``experts.{k}``); each copy runs once, on the rows routed to it."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        self.experts = nn.ModuleList(modules)

    def forward(self, hidden_states: torch.Tensor, routing: Routing) -> torch.Tensor:
        if routing.expert is not None:
            return self.experts[routing.expert](hidden_states)
        return torch.cat([self.experts[e](hidden_states[s:t]) for e, s, t in routing.segments], dim=0)


def _routed(module: nn.Module, hidden_states: torch.Tensor, routing: Routing) -> torch.Tensor:
    if isinstance(module, Experts):
        return module(hidden_states, routing)
    return module(hidden_states)


def _linear(config: SciMultConfig, experts: bool, in_features: int, out_features: int) -> nn.Module:
    if experts:
        return Experts([nn.Linear(in_features, out_features) for _ in range(config.num_experts)])
    return nn.Linear(in_features, out_features)


def _layer_norm(config: SciMultConfig, experts: bool) -> nn.Module:
    if experts:
        return Experts(
            [nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) for _ in range(config.num_experts)]
        )
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class SciMultEmbeddings(nn.Module):
    """Word, position and token-type embeddings, as in BERT."""

    def __init__(self, config: SciMultConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        seq_length = inputs_embeds.shape[1]
        position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            embeddings = inputs_embeds + self.token_type_embeddings.weight[0]
        else:
            embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class SciMultSelfAttention(nn.Module):
    def __init__(self, config: SciMultConfig, experts: bool):
        super().__init__()
        self.config = config
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.is_causal = False
        self.query = _linear(config, experts, config.hidden_size, config.hidden_size)
        self.key = _linear(config, experts, config.hidden_size, config.hidden_size)
        self.value = _linear(config, experts, config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, attention_mask, routing: Routing) -> torch.Tensor:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.attention_head_size)
        query = _routed(self.query, hidden_states, routing).view(hidden_shape).transpose(1, 2)
        key = _routed(self.key, hidden_states, routing).view(hidden_shape).transpose(1, 2)
        value = _routed(self.value, hidden_states, routing).view(hidden_shape).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, _ = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
        )
        return attn_output.reshape(*input_shape, -1).contiguous()


class SciMultSelfOutput(nn.Module):
    def __init__(self, config: SciMultConfig, experts: bool):
        super().__init__()
        self.dense = _linear(config, experts, config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, routing: Routing) -> torch.Tensor:
        hidden_states = self.dropout(_routed(self.dense, hidden_states, routing))
        return self.LayerNorm(hidden_states + input_tensor)


class SciMultAttention(nn.Module):
    def __init__(self, config: SciMultConfig, experts: bool):
        super().__init__()
        self.self = SciMultSelfAttention(config, experts)
        self.output = SciMultSelfOutput(config, experts)

    def forward(self, hidden_states, attention_mask, routing: Routing) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_mask, routing), hidden_states, routing)


class SciMultIntermediate(nn.Module):
    def __init__(self, config: SciMultConfig, experts: bool):
        super().__init__()
        self.dense = _linear(config, experts, config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states, routing: Routing) -> torch.Tensor:
        return self.intermediate_act_fn(_routed(self.dense, hidden_states, routing))


class SciMultOutput(nn.Module):
    def __init__(self, config: SciMultConfig, experts: bool):
        super().__init__()
        self.dense = _linear(config, experts, config.intermediate_size, config.hidden_size)
        self.LayerNorm = _layer_norm(config, experts)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor, routing: Routing) -> torch.Tensor:
        hidden_states = self.dropout(_routed(self.dense, hidden_states, routing))
        return _routed(self.LayerNorm, hidden_states + input_tensor, routing)


class SciMultLayer(GradientCheckpointingLayer):
    """A BERT layer; with ``expert_type="attention"`` its Q/K/V and attention-output dense are per task,
    with ``expert_type="ffn"`` its intermediate dense, output dense and output LayerNorm are."""

    def __init__(self, config: SciMultConfig, layer_idx: int):
        super().__init__()
        has_experts = config.has_experts and layer_idx in config.expert_layers
        self.expert_type = config.expert_type if has_experts else None
        self.attention = SciMultAttention(config, experts=self.expert_type == "attention")
        self.intermediate = SciMultIntermediate(config, experts=self.expert_type == "ffn")
        self.output = SciMultOutput(config, experts=self.expert_type == "ffn")

    def feed_forward(self, attention_output: torch.Tensor, routing: Routing) -> torch.Tensor:
        return self.output(self.intermediate(attention_output, routing), attention_output, routing)

    def forward(self, hidden_states, attention_mask, routing: Routing) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask, routing)
        if self.expert_type == "ffn" and routing.expert is None:
            # Mixed batch: run each expert's whole feed-forward block on its rows, joining once at the end
            # (rather than after each of its sub-layers, which would copy the 4x wider intermediate too).
            return torch.cat(
                [self.feed_forward(attention_output[s:t], Routing(expert=e)) for e, s, t in routing.segments], dim=0
            )
        return self.feed_forward(attention_output, routing)


class SciMultEncoder(nn.Module):
    def __init__(self, config: SciMultConfig):
        super().__init__()
        self.layer = nn.ModuleList(SciMultLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(self, hidden_states, attention_mask, routing: Routing, output_hidden_states: bool = False):
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask, routing)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return hidden_states, all_hidden_states


def unreadable_weights(path, err: Exception) -> str:
    """The message for a weights file that safetensors cannot read (truncated or corrupt)."""
    return f"The weights file of {path} cannot be read ({err}): it is truncated or corrupt. Download or save the model again."


class SciMultPreTrainedModel(PreTrainedModel):
    config: SciMultConfig
    config_class = SciMultConfig
    base_model_prefix = "scimult"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["SciMultEmbeddings", "SciMultLayer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, allow_weight_mismatch: bool = False, **kwargs):
        """``PreTrainedModel.from_pretrained``, but weights that do not fit the config are an error.

        transformers loads a checkpoint with missing, unexpected or wrongly shaped weights after only a load
        report, initialising the missing ones at random; for SciMult that means random experts and silently
        wrong embeddings. Here any such weight raises ``ValueError`` naming them, unless
        ``allow_weight_mismatch=True`` asks for the fresh initialisation (with sentence-transformers:
        ``model_kwargs={"allow_weight_mismatch": True}``).

        Hub kernels are off unless asked for (``use_kernels=True``): transformers 5.25 turns them on by default
        and ends every load with ``kernelize``, which refuses the meta device and, on CUDA, may download
        replacement layers from the Hub. SciMult's layers carry no kernel hooks, so kernels could only add a
        network call and numbers that drift from the original model's, never speed.
        """
        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("use_kernels", False)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except Exception as err:
            # matched by name: this file imports only torch and transformers (it travels as remote code)
            if type(err).__name__ != "SafetensorError":
                raise
            raise SciMultInputError(unreadable_weights(pretrained_model_name_or_path, err)) from None
        problems = {
            kind: sorted(str(k) for k in info.get(kind) or ())
            for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
            if info.get(kind)
        }
        if problems and not allow_weight_mismatch:
            found = "; ".join(
                f"{kind.replace('_', ' ')} ({len(keys)}): {keys[:4]}{' ...' if len(keys) > 4 else ''}"
                for kind, keys in problems.items()
            )
            raise SciMultInputError(
                f"The weights in {pretrained_model_name_or_path} do not fit its SciMult config: {found}. The "
                "config was edited (expert_type, expert_layers or tasks) or the weights belong to another model "
                "(a plain BERT folder needs `scimult-hf upcycle` first). Loading would leave those weights "
                "randomly initialised; pass allow_weight_mismatch=True only if that is what you want."
            )
        broken = [name for name, tensor in model.state_dict().items()
                  if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all()]
        if broken:
            raise SciMultInputError(
                f"The weights in {pretrained_model_name_or_path} hold NaN or infinite values ({len(broken)} tensors, "
                f"e.g. {broken[:3]}): the file is corrupt or a training run diverged. Download or save the model "
                "again."
            )
        return (model, info) if want_info else model

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SciMultEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))


def bert_parameter_name(name: str) -> tuple[str, int | None]:
    """Map a SciMult parameter name to ``(BERT name, expert id or None)``: ``X.experts.k.w`` -> ``(X.w, k)``."""
    parts = name.split(".")
    if "experts" in parts:
        i = parts.index("experts")
        return ".".join(parts[:i] + parts[i + 2 :]), int(parts[i + 1])
    return name, None


class SciMultModel(SciMultPreTrainedModel):
    """The SciMult encoder. ``forward(..., task=...)`` routes every row to its task's experts.

    Example:

    ```python
    >>> import torch
    >>> from scimult_hf import SciMultConfig, SciMultModel
    >>> config = SciMultConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    >>> model = SciMultModel(config).eval()
    >>> ids = torch.tensor([[101, 2023, 102], [101, 2008, 102]])
    >>> out = model(input_ids=ids, task=["search", "classification"])
    >>> out.pooler_output.shape
    torch.Size([2, 32])

    ```
    """

    # Saved models name their auto class (``auto_map``) and travel with this file, whatever was imported first.
    _auto_class = "AutoModel"

    def __init__(self, config: SciMultConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = SciMultEmbeddings(config)
        self.encoder = SciMultEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    # ----------------------------------------------------------------------------------------- routing
    def _task_ids(self, task, task_ids, batch_size: int, device) -> int | torch.Tensor | None:
        """An int (one expert for all rows), a LongTensor of per-row expert ids, or None (dense model)."""
        config = self.config
        valid = f"Valid tasks: {config.tasks}" + (f" (aliases: {config.task_aliases})" if config.task_aliases else "")
        if task is not None and task_ids is not None:
            raise SciMultInputError("Pass either `task` or `task_ids`, not both.")
        if task is None and task_ids is None:
            if config.has_experts:
                raise SciMultInputError(
                    "This SciMult model routes each input to its task's experts, so it needs a task: pass "
                    f"`task=` (a name, or one name per row) or `task_ids=`. {valid}."
                )
            return None
        if task is not None:
            if isinstance(task, str):
                return config.task_id(task)
            if not isinstance(task, Sequence) or isinstance(task, bytes):
                raise SciMultInputError(f"`task` must be a task name or a list of names, got {type(task).__name__}. {valid}.")
            if len(task) != batch_size:
                raise SciMultInputError(
                    f"`task` lists {len(task)} task names for a batch of {batch_size} rows; give one name per row "
                    f"or a single name for all. {valid}."
                )
            ids = [config.task_id(t) for t in task]
            if len(set(ids)) == 1:
                return ids[0]
            return torch.tensor(ids, dtype=torch.long, device=device)
        if isinstance(task_ids, (str, bytes)) or not isinstance(task_ids, (int, Sequence, torch.Tensor)):
            raise SciMultInputError(
                f"`task_ids` must be an integer expert id or one per row (ints or a LongTensor), got "
                f"{type(task_ids).__name__} {task_ids!r:.40}. {valid} (ids in that order); or pass `task=` names."
            )
        task_ids = torch.as_tensor(task_ids)
        if task_ids.is_floating_point() or task_ids.is_complex() or task_ids.dtype == torch.bool:
            raise SciMultInputError(
                f"`task_ids` must be integer expert ids, got dtype {task_ids.dtype} ({task_ids.tolist()!r:.80}). "
                f"{valid} (ids in that order)."
            )
        task_ids = task_ids.to(torch.long).reshape(-1)
        if task_ids.numel() == 1:
            task_ids = task_ids.expand(batch_size)
        if task_ids.numel() != batch_size:
            raise SciMultInputError(
                f"`task_ids` has {task_ids.numel()} entries for a batch of {batch_size} rows; give one id per row. "
                f"{valid}."
            )
        if bool(((task_ids < 0) | (task_ids >= len(config.tasks))).any()):
            raise SciMultInputError(
                f"`task_ids` must be in 0..{len(config.tasks) - 1}, got {task_ids.tolist()}. {valid} (ids in that order)."
            )
        first = int(task_ids[0])
        if bool((task_ids == first).all()):
            return first
        return task_ids.to(device)

    # ----------------------------------------------------------------------------------------- forward
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        task: str | Sequence[str] | None = None,
        task_ids: torch.Tensor | int | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        modality: str | None = None,
    ) -> BaseModelOutputWithPooling:
        r"""
        Args:
            task (`str` or `list[str]`): task name or alias for the whole batch, or one per row.
            task_ids (`torch.LongTensor` of shape `(batch_size,)`): expert ids, the alternative to `task`.

            modality (`str`): set by sentence-transformers' Transformer module (its features carry it). It marks
                a call from `SentenceTransformer.encode`, which sorts texts by length before batching but
                passes a per-row `task` list unchanged, so such a list is refused there (see the error).
            return_dict (`bool`): `False` returns the output as a tuple (`last_hidden_state`, `pooler_output`
                [, `hidden_states`]), as transformers models do.

        Returns:
            `BaseModelOutputWithPooling` whose `pooler_output` is the SciMult embedding ([CLS] or masked
            mean of the last hidden state, per `config.pooling`, L2-normalised if `config.normalize`).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise SciMultInputError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        batch_size, seq_length = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if batch_size == 0 or seq_length == 0:
            raise SciMultInputError(
                f"Empty batch: {batch_size} rows of {seq_length} tokens. Pass at least one text, and tokenize it "
                "so that it keeps its special tokens (an empty string still gives [CLS] [SEP])."
            )
        if modality is not None and not isinstance(task, str) and task is not None and len(set(task)) > 1:
            length = (f" (This list also has {len(task)} names for a batch of {batch_size} rows.)"
                      if len(task) != batch_size else "")
            raise SciMultInputError(
                "sentence-transformers sorts the texts by length before batching but passes a per-row `task` list "
                "unchanged, so rows would get other rows' experts. Encode each task's texts in a call of its own "
                "(`model.encode(texts, task=name)`), or use scimult_hf.encode_by_task(model, texts, tasks), which "
                f"does that and returns the rows in their original order.{length}"
            )
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if seq_length > self.config.max_position_embeddings:
            raise SciMultInputError(
                f"Sequence length {seq_length} exceeds max_position_embeddings={self.config.max_position_embeddings}; "
                "truncate the inputs (tokenizer(..., truncation=True, max_length=...))."
            )
        if attention_mask is None:
            attention_mask = torch.ones((batch_size, seq_length), dtype=torch.long, device=device)
        output_hidden_states = bool(output_hidden_states)

        ids = self._task_ids(task, task_ids, batch_size, device)
        order = None
        if isinstance(ids, torch.Tensor) and self.config.has_experts:
            # Mixed batch: sort rows by task so that every expert runs once on a contiguous slice.
            ids, order = torch.sort(ids, stable=True)
            counts = torch.bincount(ids, minlength=len(self.config.tasks)).tolist()
            segments, start = [], 0
            for expert, count in enumerate(counts):
                if count:
                    segments.append((expert, start, start + count))
                    start += count
            routing = Routing(segments=tuple(segments))
            input_ids = input_ids.index_select(0, order) if input_ids is not None else None
            inputs_embeds = inputs_embeds.index_select(0, order) if inputs_embeds is not None else None
            token_type_ids = token_type_ids.index_select(0, order) if token_type_ids is not None else None
            attention_mask = attention_mask.index_select(0, order)
        else:
            routing = Routing(expert=ids if isinstance(ids, int) else 0)

        hidden_states = self.embeddings(input_ids, token_type_ids, inputs_embeds)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        last_hidden_state, all_hidden_states = self.encoder(hidden_states, mask, routing, output_hidden_states)
        pooled = self.pool(last_hidden_state, attention_mask)

        if order is not None:
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.numel(), device=order.device)
            last_hidden_state = last_hidden_state.index_select(0, inverse)
            pooled = pooled.index_select(0, inverse)
            if all_hidden_states is not None:
                all_hidden_states = tuple(h.index_select(0, inverse) for h in all_hidden_states)

        return BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state, pooler_output=pooled, hidden_states=all_hidden_states
        )

    def pool(self, last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The SciMult embedding: [CLS] or masked mean per `config.pooling`, normalised if `config.normalize`."""
        if self.config.pooling == "cls":
            pooled = last_hidden_state[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
            pooled = (last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.config.normalize:
            pooled = F.normalize(pooled, p=2, dim=-1)
        return pooled


__all__ = ["SciMultModel", "SciMultPreTrainedModel", "Experts", "Routing", "bert_parameter_name"]
