"""Hub-hosted inference: the Inference Endpoints custom handler (served locally by :mod:`.server`).

Inference Endpoints load ``handler.py`` from the model repository and call
``EndpointHandler(path)(data)``; the repository's ``handler.py`` is ``from scimult_hf.serving.handler import
EndpointHandler`` with ``scimult-hf`` in its ``requirements.txt``. A request::

    {"inputs": "a query" | ["text", ...] | [{"title": ..., "abstract": ...}, ...],
     "parameters": {"task": "search", "prompt_name": null, "normalize": false}}

returns ``[[float, ...], ...]`` (one vector per input; a bare string gives one vector in a list). Papers
given as ``{"title", "abstract"}`` become ``title [SEP] abstract``. A malformed request returns
``{"error": {"code": ..., "message": ...}}`` naming the problem and the fix, never a stack trace; the
local server answers it with HTTP 400.

    >>> handler = EndpointHandler("path/to/scimult-folder")                     # doctest: +SKIP
    >>> handler({"inputs": ["protein folding"], "parameters": {"task": "search"}})  # doctest: +SKIP
    [[0.013, ...]]
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import InputError
from ..models.tasks import check_task, task_names
from ..retrieval.encoding import encode_for_task
from ..text import paper_text

logger = logging.getLogger(__name__)

__all__ = ["EndpointHandler", "RequestError"]


class RequestError(InputError):
    """A malformed request; ``code`` is a stable machine-readable name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    def as_dict(self) -> dict:
        return {"error": {"code": self.code, "message": str(self)}}


class EndpointHandler:
    """The custom-handler contract of Inference Endpoints over a SciMult (or any sentence-transformers) folder.

    Args:
        path: the model folder (Inference Endpoints pass the repository's local copy).
        max_inputs: most inputs one request may carry.
        max_chars: longest input text, in characters (the model truncates to its maximum length anyway;
            this keeps a request from holding the server with megabytes of text).
        batch_size: inputs encoded together.
        device: torch device (default: cuda when available, else cpu).
    """

    def __init__(self, path: str = "", max_inputs: int = 256, max_chars: int = 20_000, batch_size: int = 32,
                 device: str | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path or ".", trust_remote_code=True,
                                         device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.max_inputs, self.max_chars, self.batch_size = max_inputs, max_chars, batch_size
        self.tasks = task_names(self.model) or []

    def __call__(self, data: Any) -> list[list[float]] | dict:
        try:
            texts, params = self._parse(data)
            return self._encode(texts, params)
        except RequestError as err:
            return err.as_dict()

    # ---------------------------------------------------------------------------------------------- parsing
    def _parse(self, data: Any) -> tuple[list[str], dict]:
        if not isinstance(data, dict) or "inputs" not in data:
            raise RequestError("missing_inputs", 'The request needs a JSON object with "inputs": a text, a list of '
                               'texts, or a list of {"title", "abstract"} papers.')
        inputs = data["inputs"]
        params = data.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError("bad_parameters", '"parameters" must be an object such as {"task": "search"}.')
        unknown = sorted(set(params) - {"task", "prompt_name", "normalize"})
        if unknown:
            raise RequestError("bad_parameters", f"Unknown parameters {unknown}; use task, prompt_name, normalize.")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("bad_inputs", '"inputs" must be a non-empty text, list of texts or list of '
                               '{"title", "abstract"} papers.')
        if len(inputs) > self.max_inputs:
            raise RequestError("too_many_inputs", f"{len(inputs)} inputs; at most {self.max_inputs} per request. "
                               "Split them over several requests.")
        texts = [self._text(i, item) for i, item in enumerate(inputs)]
        return texts, params

    def _text(self, i: int, item: Any) -> str:
        if isinstance(item, dict):
            extra = sorted(set(item) - {"title", "abstract"})
            if extra or not all(isinstance(item.get(k, ""), (str, type(None))) for k in ("title", "abstract")):
                raise RequestError("bad_inputs", f'inputs[{i}]: a paper is {{"title": str, "abstract": str}}; '
                                   f"got keys {sorted(item)}.")
            item = paper_text(item.get("title"), item.get("abstract"))
        elif not isinstance(item, str):
            raise RequestError("bad_inputs", f'inputs[{i}] is a {type(item).__name__}; give a text or a '
                               '{"title", "abstract"} object.')
        if not item.strip():
            raise RequestError("empty_input", f"inputs[{i}] is empty; every input needs some text.")
        if len(item) > self.max_chars:
            raise RequestError("input_too_long", f"inputs[{i}] has {len(item):,} characters; at most "
                               f"{self.max_chars:,}. Shorten it (the model reads only its first tokens anyway).")
        return item

    # ---------------------------------------------------------------------------------------------- encoding
    def _encode(self, texts: list[str], params: dict) -> list[list[float]]:
        task = params.get("task")
        try:  # the package's one rule for tasks and prompts (scimult_hf.models.tasks)
            task = check_task(self.model, task, "this model")
        except InputError as err:
            raise RequestError("missing_task" if task is None else "unknown_task", str(err)) from None
        prompt_name = params.get("prompt_name")
        if prompt_name is not None and (not isinstance(prompt_name, str) or prompt_name not in (self.model.prompts or {})):
            raise RequestError("unknown_prompt", f"Unknown prompt_name {prompt_name!r}; this model's prompts are "
                               f"{sorted(self.model.prompts or {})}.")
        normalize = params.get("normalize", False)
        if not isinstance(normalize, bool):
            raise RequestError("bad_parameters", '"normalize" must be true or false.')
        emb = encode_for_task(self.model, texts, task, prompt_name=prompt_name, batch_size=self.batch_size,
                              normalize_embeddings=normalize)
        return emb.tolist()
