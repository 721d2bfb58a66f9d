"""A fast CPU path: one task's plain-BERT export run by ONNX Runtime, in fp32 or int8.

The task's experts are folded into a stock ``BertModel`` (:func:`scimult_hf.export_task`), exported with
``torch.onnx.export``, fused by onnxruntime's transformer optimizer for BERT (attention, LayerNorm, GELU)
and, for int8, quantized with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations
quantized on the fly). Tokenization, pooling and normalisation follow the export's sentence-transformers
files, so the embeddings match ``SentenceTransformer.encode(task=...)`` up to float rounding (fp32) or the
quantization error (int8).

Needs the ``onnx`` extra: ``pip install "scimult-hf[onnx]"`` (onnx, onnxruntime, onnxscript).
``optimum-onnx`` is not used: its only release requires transformers < 4.58.

>>> enc = onnx_encoder("path/to/scimult", "search", quantize=True)        # doctest: +SKIP
>>> enc.encode(["BERT [SEP] We introduce ..."]).shape                      # doctest: +SKIP
(1, 768)
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = ["OnnxEncoder", "export_onnx", "onnx_encoder", "require_onnx"]

FP32 = "model.onnx"
INT8 = "model_qint8.onnx"


def require_onnx():
    """onnxruntime, or an ImportError that says how to install the ONNX extra."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "--backend onnx needs onnx and onnxruntime, which are not installed. Install them with "
            '`pip install "scimult-hf[onnx]"`, or use --backend torch.'
        ) from None
    return onnxruntime


def _export_graph(folder: Path, path: Path) -> None:
    """``torch.onnx.export`` of the plain BERT in ``folder``: token ids in, token embeddings out."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(folder, attn_implementation="eager", use_kernels=False).eval()

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    # The TorchScript exporter (dynamo=False): its graph is the one onnxruntime's BERT optimizer fuses into
    # Attention / EmbedLayerNormalization / BiasGelu nodes; the dynamo graph keeps attention unfused.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEmbeddings(bert), (ids, torch.ones_like(ids), torch.zeros_like(ids)), os.fspath(path),
            input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]},
            dynamo=False, opset_version=17,
        )


def export_onnx(model, task: str | None, output: str | os.PathLike, *, quantize: bool = True,
                overwrite: bool = False) -> Path:
    """Write ``task``'s plain-BERT sentence-transformers folder plus ``onnx/model.onnx`` (fp32, fused) and,
    with ``quantize``, ``onnx/model_qint8.onnx``: the layout sentence-transformers' ONNX backend reads."""
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from ..io import atomic_directory, check_output
    from .export import export_task
    from .folder import quiet_transformers

    check_output(output, [model if isinstance(model, (str, os.PathLike)) else None], overwrite)
    with atomic_directory(output) as tmp, quiet_transformers(), tempfile.TemporaryDirectory() as work:
        plain = export_task(model, task, Path(work) / "plain")
        for item in plain.iterdir():
            os.replace(item, tmp / item.name)
        (tmp / "onnx").mkdir()
        raw = Path(work) / "raw.onnx"
        _export_graph(tmp, raw)
        config = json.loads((tmp / "config.json").read_text())
        fused = optimize_model(os.fspath(raw), model_type="bert", num_heads=config["num_attention_heads"],
                               hidden_size=config["hidden_size"])
        fused.save_model_to_file(os.fspath(tmp / "onnx" / FP32))
        if quantize:
            import onnx

            # The fused graph has onnxruntime contrib ops, which ONNX shape inference cannot type: say float.
            # Per-channel weight scales: mean cosine to fp32 0.995 on SciFact abstracts, against 0.937 per tensor.
            quantize_dynamic(tmp / "onnx" / FP32, tmp / "onnx" / INT8, weight_type=QuantType.QInt8,
                             per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return Path(output)


class OnnxEncoder:
    """Embeds texts like the sentence-transformers folder ``folder`` does, with ``onnx/<file>`` in onnxruntime."""

    def __init__(self, folder: str | os.PathLike, file: str = FP32, prompt: str | None = None):
        ort = require_onnx()
        from transformers import AutoTokenizer

        from .folder import read_sentence_transformers_setup

        folder = Path(folder)
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        setup = read_sentence_transformers_setup(os.fspath(folder))
        self.max_length = int(setup.get("max_seq_length") or self.tokenizer.model_max_length)
        self.pooling = setup["pooling"]
        self.normalize = setup["normalize"]
        self.similarity = "cosine" if self.normalize else "dot"
        self.dimension = int(json.loads((folder / "config.json").read_text())["hidden_size"])
        self.prompt = prompt or ""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(os.fspath(folder / "onnx" / file), options,
                                            providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """float32 embeddings, one row per text, in the order given (batches sorted by length inside)."""
        texts = [self.prompt + t for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="np")
            feeds = {"input_ids": batch["input_ids"].astype(np.int64),
                     "attention_mask": batch["attention_mask"].astype(np.int64),
                     "token_type_ids": batch.get("token_type_ids", np.zeros_like(batch["input_ids"])).astype(np.int64)}
            tokens = self.session.run(None, feeds)[0]
            if self.pooling == "cls":
                emb = tokens[:, 0]
            else:
                mask = feeds["attention_mask"][..., None].astype(np.float32)
                emb = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            if self.normalize:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            out[rows] = emb
        return out


def onnx_encoder(model: str, task: str | None, *, quantize: bool = False, prompt_name: str | None = None) -> OnnxEncoder:
    """An :class:`OnnxEncoder` of ``model`` for ``task``, exported once and kept in the scimult-hf cache
    (``$SCIMULT_HF_CACHE/onnx``); a model whose weights change is exported again."""
    from ..defaults import cache_dir, model_stamp
    from .folder import read_sentence_transformers_setup
    from .tasks import prompt_for

    folder = cache_dir() / "onnx" / model_stamp(model, task or "dense")
    if not (folder / "onnx" / (INT8 if quantize else FP32)).is_file():
        logger.warning("exporting %s (%s) to ONNX once, into %s", model, task, folder)
        export_onnx(model, task, folder, quantize=True, overwrite=True)
    prompts = read_sentence_transformers_setup(model).get("prompts") or {}
    chosen = prompt_for(prompts, task, prompt_name)  # the same rule as the PyTorch path
    return OnnxEncoder(folder, INT8 if quantize else FP32, prompt=prompts.get(chosen) if chosen else None)
