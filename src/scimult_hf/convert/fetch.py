"""The released SciMult models by name: fetched from the Hub and converted on first use, then read from the cache.

The authors released four training checkpoints in ``yuz9yuz/SciMult`` (MIT). A name from :data:`~scimult_hf.released.RELEASED`
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
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .. import released as _released
from ..defaults import cache_dir
from ..errors import DownloadError, InputError, ScimultError
from ..released import TOKENIZER_FILES, TOKENIZER_REPO, released_folder

logger = logging.getLogger(__name__)

__all__ = ["ReleasedModelError", "cached_release", "converted_from", "fetch_released", "is_complete", "lock",
           "matches_release", "next_steps", "remote_metadata"]

# The table is read as ``_released.RELEASED`` at call time (never bound here), so a table patched in a test or a
# preamble is the one the fetch uses.

class ReleasedModelError(InputError):
    """A released model could not be fetched or does not match what was released; the message says why."""


def is_complete(folder: Path) -> bool:
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
    if not is_complete(folder):
        return None
    source, release = converted_from(folder), _released.RELEASED[name]
    if source != release.sha256:
        raise ReleasedModelError(
            f"{folder} was converted from a checkpoint with sha256 {source}, not the pinned {release.filename} "
            f"(sha256 {release.sha256}); it was not used. Replace it with `scimult-hf fetch {name} --overwrite`, "
            "or pass that folder as a path if you meant it."
        )
    return folder


def lock(name: str):
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
    release = _released.RELEASED[name]
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

    release = _released.RELEASED[name]
    url = hf_hub_url(release.repo_id, release.filename, revision=release.revision)
    if url not in _METADATA:
        _METADATA[url] = url, get_hf_file_metadata(url, timeout=timeout)
    return _METADATA[url]


def matches_release(name: str, metadata) -> bool:
    """Whether the Hub's metadata is that of the pinned release (sha256 and size)."""
    release = _released.RELEASED[name]
    return metadata.etag == release.sha256 and metadata.size == release.size


def _check_metadata(name: str, metadata) -> None:
    release = _released.RELEASED[name]
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

    from .partial import RangeFile, fetch_model_records

    remote = RangeFile(url, metadata.size, headers=build_hf_headers())
    desc = f"fetching the model tensors of {_released.RELEASED[name].filename}"
    return fetch_model_records(remote, dest, metadata.etag, progress=lambda total: tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc))


def _download_full(name: str) -> Path:
    import hashlib

    from huggingface_hub import hf_hub_download

    release = _released.RELEASED[name]
    try:
        path = Path(hf_hub_download(release.repo_id, release.filename, revision=release.revision))
    except Exception as err:  # dropped connections, timeouts after huggingface_hub's own retries
        if isinstance(err, (ScimultError, KeyboardInterrupt)):
            raise
        raise DownloadError(f"{name}: downloading {release.repo_id}/{release.filename} failed ({type(err).__name__}: "
                            f"{err}); run the command again: huggingface_hub resumes the download.") from None
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
    if name not in _released.RELEASED:
        raise ReleasedModelError(f"unknown released model {name!r}: use one of {', '.join(_released.RELEASED)}.")
    folder = released_folder(name)
    if not overwrite and cached_release(name):
        return folder
    if _offline():
        raise ReleasedModelError(f"{name} is not converted in {folder} yet and HF_HUB_OFFLINE is set. "
                                 + next_steps(name))
    with lock(name):  # whoever held the lock before may have made the folder meanwhile
        if not overwrite and cached_release(name):
            return folder
        return _fetch_and_convert(name, full)


def _fetch_and_convert(name: str, full: bool) -> Path:
    release = _released.RELEASED[name]
    folder = released_folder(name)
    from ..io import remove_leftovers
    from .writer import convert_checkpoint

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


