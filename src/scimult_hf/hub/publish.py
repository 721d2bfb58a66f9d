"""Push a SciMult model folder to the Hub in one commit, or write exactly what would be pushed (dry run).

The repository gets the model folder as it is (safetensors weights, ``config.json`` with ``auto_map``,
the two remote-code files, the sentence-transformers files, the tokenizer), the per-task plain-BERT
exports in ``exports/<task>/``, ``handler.py`` with its ``requirements.txt`` for Inference Endpoints, and
the model card as ``README.md`` (its metadata parsed with huggingface_hub's ``ModelCard`` before pushing,
so a malformed card never reaches the Hub).

The exports go in subfolders of the same repository: one commit keeps model and exports at the same
revision. TEI and Inference Endpoints serve a repository's root, so serving one task with them means
pushing that task's export (``scimult-hf export``) to a repository of its own with :func:`push_folder`.

The ``api`` argument takes any object with huggingface_hub's ``HfApi`` methods used here
(``create_repo``, ``create_branch``, ``upload_folder``); tests pass a recording fake. The token comes
from ``token=``, else ``HF_TOKEN`` or the stored login, as huggingface_hub resolves it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError
from ..io import atomic_directory, check_output
from .cards import card_with_results, check_card_metadata

logger = logging.getLogger(__name__)

__all__ = ["HANDLER_FILE", "SERVING_REQUIREMENTS", "card_with_results", "prepare_model_repo", "push_folder", "push_model", "requirements_txt"]

#: ``handler.py`` of a model repository: the package's own handler file, copied unchanged (it imports only the
#: standard library, torch and sentence-transformers, so the repository serves without scimult-hf).
HANDLER_FILE = Path(__file__).resolve().parent.parent / "serving" / "handler.py"


#: What the pushed repository's code needs on an Inference Endpoint: ``handler.py`` imports sentence-transformers,
#: the remote code imports transformers (torch is on every endpoint image).
SERVING_REQUIREMENTS = ("sentence-transformers", "transformers")


def requirements_txt() -> str:
    """What Inference Endpoints install before loading ``handler.py``: sentence-transformers and transformers
    within the ranges this package declares (its own tested floors and next majors), so a repository pushed
    today does not pin the versions of the machine that pushed it. ``.ci/run`` serves a pushed repository in a
    fresh environment that has only these requirements, at their newest releases."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    declared = {Requirement(r).name: Requirement(r) for r in requires("scimult-hf") or () if "extra" not in r}
    def spec(name):  # the floor first: sentence-transformers>=6.0,<7
        return ",".join(str(s) for s in sorted(declared[name].specifier, key=lambda s: (s.operator != ">=", str(s))))

    return "".join(f"{name}{spec(name)}\n" for name in SERVING_REQUIREMENTS)


_SKIP = {"README.md", ".gitattributes"}


def prepare_model_repo(model_dir: str | os.PathLike, output: str | os.PathLike, card: str,
                       overwrite: bool = False) -> Path:
    """Write the folder that :func:`push_model` would upload (``--dry-run``): model, exports, handler, card.

    ``card`` is the README text (YAML metadata and markdown); it must parse as a model card.
    """
    from huggingface_hub import ModelCard

    from ..modeling_scimult import SciMultModel
    from ..models.export import export_task
    from ..models.folder import read_sentence_transformers_setup

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder (no config.json).")
    if model_dir.resolve() in Path(output).resolve().parents:
        raise InputError(f"the output {output} is inside the model folder {model_dir}: the copy would be pushed "
                         "with the model next time. Choose a folder outside it.")
    check_output(output, [model_dir], overwrite)
    parsed = ModelCard(card)
    if not parsed.data.to_dict():
        raise InputError("the model card has no metadata block (--- YAML ---); render it from model_cards/ first.")
    check_card_metadata(parsed.data.to_dict())
    _check_card_fits(card, parsed.data.to_dict(), model_dir)
    with atomic_directory(output) as tmp:
        for item in sorted(model_dir.iterdir()):
            if item.name in _SKIP or item.name.startswith("."):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        model = SciMultModel.from_pretrained(model_dir)
        if model.config.has_experts:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
            setup = read_sentence_transformers_setup(str(model_dir))  # the exports keep the model's prompts
            for task in model.config.tasks:
                export_task(model, task, tmp / "exports" / task, tokenizer=tokenizer, prompts=setup.get("prompts"),
                            max_seq_length=setup.get("max_seq_length"),
                            default_prompt_name=setup.get("default_prompt_name"))
        shutil.copyfile(HANDLER_FILE, tmp / "handler.py")
        (tmp / "requirements.txt").write_text(requirements_txt(), encoding="utf-8")
        parsed.save(tmp / "README.md")
    return Path(output)


def _check_card_fits(card: str, metadata: dict, model_dir: Path) -> None:
    """Refuse a card that describes another model: its mixture-of-experts tag against the model's experts, and
    a released checkpoint's card (it tells how to download and convert the release) on a folder not converted
    from one."""
    from ..configuration_scimult import SciMultConfig

    config = SciMultConfig.from_pretrained(model_dir)
    tagged = "mixture-of-experts" in (metadata.get("tags") or [])
    if tagged != config.has_experts:
        raise InputError(
            f"the card {'says' if tagged else 'does not say'} mixture-of-experts, but {model_dir} has "
            f"{'no experts' if not config.has_experts else 'experts'}: it is another model's card. Use the card "
            "written with the model (README.md in its folder), or render the right one from model_cards/."
        )
    if "hf download yuz9yuz/SciMult" in card and not (model_dir / "conversion.json").is_file():
        raise InputError(
            f"the card describes a converted SciMult release (yuz9yuz/SciMult, base model "
            f"{metadata.get('base_model')}), but {model_dir} was not converted from one (no conversion.json): use "
            "the card written with the model (README.md in its folder) or another card with --card."
        )


def push_folder(folder: str | os.PathLike, repo_id: str, *, api=None, private: bool = False,
                revision: str | None = None, commit_message: str | None = None, token: str | None = None):
    """Upload ``folder`` to ``repo_id`` in one commit (the repository and the branch are created if needed)."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    return api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder), revision=revision,
                             commit_message=commit_message or f"Upload SciMult model ({Path(folder).name})")


def push_model(model_dir: str | os.PathLike, repo_id: str, card: str, *, api=None, private: bool = False,
               revision: str | None = None, commit_message: str | None = None, token: str | None = None,
               dry_run: str | os.PathLike | None = None, overwrite: bool = False):
    """Push ``model_dir`` with its exports, handler and ``card`` to ``repo_id`` in one commit.

    With ``dry_run=DIR`` nothing is uploaded: the exact folder is written to ``DIR`` (replacing an existing one
    only with ``overwrite``) and returned.
    """
    if dry_run is not None:
        return prepare_model_repo(model_dir, dry_run, card, overwrite=overwrite)
    with tempfile.TemporaryDirectory(prefix="scimult-push-") as tmp:
        folder = prepare_model_repo(model_dir, Path(tmp) / "repo", card)
        return push_folder(folder, repo_id, api=api, private=private, revision=revision,
                           commit_message=commit_message, token=token)
