"""Hub-hosted inference: the Inference Endpoints custom handler (served locally by :mod:`.server`).

Inference Endpoints load ``handler.py`` from the model repository and call ``EndpointHandler(path)(data)``.
``scimult-hf push`` copies this file there unchanged, so it imports only the standard library, torch and
sentence-transformers (like the remote-code files, it must run where scimult-hf is not installed); the
repository's ``requirements.txt`` pins sentence-transformers and transformers. A request::

    {"inputs": "a query" | ["text", ...] | [{"title": ..., "abstract": ...}, ...],
     "parameters": {"task": "search", "prompt_name": null, "normalize": false}}

returns ``[[float, ...], ...]`` (one vector per input; a bare string gives one vector in a list). Papers
given as ``{"title", "abstract"}`` become ``title [SEP] abstract``. A malformed request returns
``{"error": {"code": ..., "message": ...}}`` naming the problem and the fix, never a stack trace; the
local server answers it with HTTP 400.

Tasks and prompts follow scimult-hf's one rule (``scimult_hf.models.tasks``, tested to agree with this file): a
SciMult model takes its own task names (``config.valid_task_names()``) and needs one when it has experts; a
per-task export (``scimult_export.json`` beside it) takes its own task only; ``prompt_name`` when given, else the
prompt named after the task, else none.

    >>> handler = EndpointHandler("path/to/scimult-folder")                     # doctest: +SKIP
    >>> handler({"inputs": ["protein folding"], "parameters": {"task": "search"}})  # doctest: +SKIP
    [[0.013, ...]]
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["EndpointHandler", "RequestError"]

#: Beside a per-task export: the task whose experts it holds (written by ``scimult_hf.models.export``).
EXPORT_RECORD = "scimult_export.json"


class RequestError(ValueError):
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

        path = path or "."
        # Hub kernels off: an endpoint may have no Hub access, and the vectors must equal the model's own
        self.model = SentenceTransformer(path, trust_remote_code=True, model_kwargs={"use_kernels": False},
                                         device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.max_inputs, self.max_chars, self.batch_size = max_inputs, max_chars, batch_size
        config = getattr(getattr(self.model[0], "model", None), "config", None)
        routed = any("task" in list(k or []) for k in (getattr(self.model, "module_kwargs", None) or {}).values())
        scimult = routed and getattr(config, "model_type", None) == "scimult"
        #: The tasks a request may name ([] : any, the model ignores it), and whether it must name one.
        self.tasks: list[str] = list(config.valid_task_names()) if scimult else []
        self.needs_task = bool(scimult and config.has_experts)
        self.routed = scimult
        record = os.path.join(path, EXPORT_RECORD)
        if os.path.isfile(record):  # a per-task export: plain BERT, one task's experts
            with open(record, encoding="utf-8") as f:
                task = json.load(f).get("task")
            self.tasks = [task] if task else []

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
        unknown = sorted(map(str, set(params) - {"task", "prompt_name", "normalize"}))
        if unknown:
            raise RequestError("bad_parameters", f"Unknown parameters {unknown}; use task, prompt_name, normalize.")
        for name in ("task", "prompt_name"):
            if params.get(name) is not None and not isinstance(params[name], str):
                raise RequestError("bad_parameters", f'"{name}" must be a string, not {type(params[name]).__name__}.')
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
            extra = sorted(map(str, set(item) - {"title", "abstract"}))
            if extra or not all(isinstance(item.get(k, ""), (str, type(None))) for k in ("title", "abstract")):
                raise RequestError("bad_inputs", f'inputs[{i}]: a paper is {{"title": str, "abstract": str}}; '
                                   f"got keys {sorted(map(str, item))}.")
            # SciMult's input form, as scimult_hf.text.paper_text writes it
            title, abstract = (item.get("title") or "").strip(), (item.get("abstract") or "").strip()
            item = f"{title} [SEP] {abstract}" if title and abstract else (title or abstract)
        elif not isinstance(item, str):
            raise RequestError("bad_inputs", f'inputs[{i}] is a {type(item).__name__}; give a text or a '
                               '{"title", "abstract"} object.')
        if not item.strip():
            raise RequestError("empty_input", f"inputs[{i}] is empty; every input needs some text.")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON allows "\ud800" alone; no tokenizer can read it
            raise RequestError("bad_text", f"inputs[{i}] has a lone UTF-16 surrogate at character {err.start}, which "
                               "is not text; send valid Unicode (a surrogate must come in a high+low pair).") from None
        if len(item) > self.max_chars:
            raise RequestError("input_too_long", f"inputs[{i}] has {len(item):,} characters; at most "
                               f"{self.max_chars:,}. Shorten it (the model reads only its first tokens anyway).")
        return item

    # ---------------------------------------------------------------------------------------------- encoding
    def _encode(self, texts: list[str], params: dict) -> list[list[float]]:
        task = params.get("task")
        if task is not None and self.tasks and task not in self.tasks:
            raise RequestError("unknown_task", f"Unknown task {task!r}; this model's tasks are {self.tasks}.")
        if task is None and self.needs_task:
            raise RequestError("missing_task", f'This SciMult model needs "parameters": {{"task": ...}}, one of '
                               f"{self.tasks}.")
        prompts = self.model.prompts or {}
        prompt_name = params.get("prompt_name")
        if prompt_name is not None and prompt_name not in prompts:
            raise RequestError("unknown_prompt", f"Unknown prompt_name {prompt_name!r}; this model's prompts are "
                               f"{sorted(prompts)}.")
        if prompt_name is None and task is not None and prompts.get(task):
            prompt_name = task  # the instruction variant: the task's own prompt
        normalize = params.get("normalize", False)
        if not isinstance(normalize, bool):
            raise RequestError("bad_parameters", '"normalize" must be true or false.')
        kwargs = {"task": task} if self.routed else {}
        emb = self.model.encode(texts, batch_size=self.batch_size, prompt_name=prompt_name,
                                normalize_embeddings=normalize, convert_to_numpy=True, **kwargs)
        return emb.tolist()
