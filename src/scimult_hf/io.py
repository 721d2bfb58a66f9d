"""The one way scimult-hf writes files and folders: atomically, next to the target.

A writer stages its output in a hidden sibling (``.NAME.tmp-PID-XXXXXXXX``) and moves it into place with
``os.replace`` only when it is complete, so a reader never sees half a file and a failure leaves the
old content untouched. A writer killed outright (``kill -9``, power loss) cannot clean up after itself:
the next writer of the same target removes what dead writers left (:func:`remove_leftovers`; the PID in
the name tells a dead writer from one still running), and if the kill fell between moving the old
folder aside and moving the new one in, it puts the old folder back first.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "out.json"
>>> atomic_write_text(target, "{}")
>>> target.read_text()
'{}'
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskFullError, InputError, OutputError, json_error_text

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_directory",
    "atomic_file",
    "atomic_write_text",
    "check_output",
    "check_writable",
    "remove_leftovers",
    "replace_directory",
    "share_as_umask_allows",
    "staging_name",
]

_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def staging_name(path: Path, kind: str = "tmp") -> Path:
    """A hidden sibling of ``path`` for staging (``kind="tmp"``) or for the replaced old copy (``"old"``)."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _root(name: str) -> str:
    """The target a staging name belongs to, through nested staging (a writer staging inside a staging)."""
    while match := _STAGING.match(name):
        name = match["name"]
    return name


def remove_leftovers(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the staging files and folders that dead writers left in ``folder`` (for target ``name`` only,
    or for every target); returns what was removed. A target that a dead writer had moved aside and not yet
    replaced (only its ``.old-`` copy exists) is restored first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        match = _STAGING.match(entry.name)
        if not match or (name is not None and _root(entry.name) != name) or _alive(int(match["pid"])):
            continue
        target = folder / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.replace(entry, target)
            logger.warning("restored %s from %s, left by an interrupted writer", target, entry.name)
            continue
        _remove(entry)
        removed.append(entry)
    if removed:
        logger.info("removed %d leftover(s) of interrupted writers in %s", len(removed), folder)
    return removed


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 overwrite: bool = False) -> Path:
    """Refuse, before any work, an output that would destroy an input or an existing folder.

    An output that is one of ``inputs``, contains one (an input inside the folder that would be replaced) or
    lies inside an input folder is always refused; an existing output only without ``overwrite``. Inputs that are not
    local paths (Hub ids) are ignored.
    """
    out = Path(output).resolve()
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        source = Path(item).resolve()
        if source == out or out in source.parents:
            raise InputError(
                f"the output {output} {'is' if source == out else 'contains'} the input {item}: writing it would "
                "delete that input. Choose another output folder."
            )
        if source.is_dir() and source in out.parents:
            raise InputError(
                f"the output {output} is inside the input folder {item}: it would become part of that model (copied, "
                "pushed and read with it). Choose a folder outside it."
            )
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"the output {output} already exists; choose another output, or pass --overwrite (overwrite=True) to "
            "replace it once the new one is complete."
        )
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"the output {output} is a file, not a folder; choose another output.")
    return out


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, not after a long job, if a file cannot be written at ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"the output {path} is a folder; give a file name (e.g. {path / 'results.json'}).")
    parent = path.parent
    make_parent(path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the output {path}: the folder {parent} is not writable.")
    return path


def make_parent(path: Path) -> None:
    """Create ``path``'s folder, or say in one line why it cannot be (a file in the way, a read-only disk)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else (e.strerror or str(e))
        raise OutputError(f"cannot create the folder {path.parent} for the output {path}: {why}. Choose another "
                          "output path.") from None


def _stage(path: str | os.PathLike) -> tuple[Path, Path]:
    """The target and a fresh staging name beside it, after clearing dead writers' leftovers of it."""
    path = Path(path)
    make_parent(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the output {path}: the folder {path.parent} is not writable (read-only "
                          "or another user's). Choose another output path.")
    remove_leftovers(path.parent, path.name)
    return path, staging_name(path)


def _is_disk_full(err: BaseException) -> bool:
    """True for the ways a full disk shows up: ENOSPC / EDQUOT, numpy's short write, safetensors' StorageFull."""
    text = str(err)
    return (getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text
            or "StorageFull" in text or ("requested and" in text and "written" in text))


@contextmanager
def _disk_full_is_one_error(path: Path) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into :class:`~scimult_hf.errors.DiskFullError` (one line)."""
    try:
        yield
    except Exception as err:
        if not _is_disk_full(err):
            raise
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
        raise DiskFullError(
            f"no space left to write {path} ({free / 1e6:,.0f} MB free on its device): free some space or write "
            "to another disk. Nothing was replaced; run the command again to finish."
        ) from None


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it is removed (a full
    disk is a :class:`~scimult_hf.errors.DiskFullError`)."""
    path, tmp = _stage(path)
    try:
        with _disk_full_is_one_error(path):
            yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_as_umask_allows(folder: Path) -> None:
    """Give every file and folder under ``folder`` the mode a plain ``open`` / ``mkdir`` would (0644 / 0755
    under the usual umask): some writers (safetensors) create their files 0600, which other users and
    non-root containers cannot read."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling folder; on success it replaces ``path`` (its files readable as the
    umask allows), on failure it is removed."""
    path, tmp = _stage(path)
    tmp.mkdir()
    try:
        with _disk_full_is_one_error(path):
            yield tmp
        share_as_umask_allows(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, path)


def replace_directory(new: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put the complete folder ``new`` at ``path``: an existing ``path`` is moved aside first (``.NAME.old-...``,
    which the next writer restores if a kill falls between the two moves) and deleted after."""
    new, path = Path(new), Path(path)
    old = None
    if path.exists():
        old = staging_name(path, "old")
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------- reading line files
def text_lines(path: str | os.PathLike, error: type[InputError] = InputError) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file (gzip-compressed when it ends in ``.gz``); a line that is not UTF-8
    raises ``error`` naming the file, the line and the byte."""
    import gzip

    path = Path(path)
    with (gzip.open if path.suffix.lower() == ".gz" else open)(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(
                    f"{path}, line {lineno}: not UTF-8 (byte {raw[e.start:e.start + 1]!r} at column {e.start + 1}). "
                    "Save the file as UTF-8."
                ) from None


def json_lines(path: str | os.PathLike, error: type[InputError] = InputError) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-blank line of a JSON-lines file (``.gz`` too); a missing file, or a
    line that is not UTF-8, not JSON or not a JSON object, raises ``error`` naming the file and the line."""
    import json

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found.")
    for lineno, line in text_lines(path, error):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}, line {lineno}: not valid JSON ({json_error_text(e)}).") from None
        if not isinstance(row, dict):
            raise error(f"{path}, line {lineno}: expected a JSON object per line, got {type(row).__name__}.")
        yield lineno, row
