"""Read only what the conversion needs from a remote SciMult checkpoint (HTTP range requests).

A released ``.ckpt`` is a zip archive written by ``torch.save``: one ``data.pkl`` record (the pickle), a
few small records (``version``, ``byteorder``, ...) and one record per tensor storage. Two thirds of the
bytes are the optimizer's ``exp_avg`` / ``exp_avg_sq``, which the conversion never reads. This module:

1. reads the zip's central directory from the end of the remote file (one or two small ranges);
2. reads ``data.pkl`` and walks its pickle with an unpickler that knows only the format's 14 globals
   (:data:`~scimult_hf.convert.checkpoint.ALLOWED_GLOBALS`) and builds no tensor: it only notes which
   storage records ``model_dict`` uses;
3. writes a *sparse* local file of the remote file's size holding the central directory, the small
   records and ``model_dict``'s storages at their own offsets; the optimizer's records stay holes.

``torch.load(mmap=True)`` maps that file and never touches the holes (it reads the tensors of
``model_dict`` alone), so :func:`~scimult_hf.convert.convert_checkpoint` converts it unchanged; the records
that were fetched are checked against their CRC-32, the others are listed as absent
(:data:`PARTIAL_SUFFIX` sidecar). Work survives interruption: each range is recorded once written, and a
second call fetches only what is missing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import time
import typing
import zipfile
import zlib
from collections import OrderedDict, defaultdict
from pathlib import Path

from ..errors import DownloadError
from ..io import atomic_write_text
from .checkpoint import (
    _STAND_INS,
    ALLOWED_GLOBALS,
    PARTIAL_SUFFIX,
    CheckpointError,
    _canonical,
)

__all__ = ["RangeFile", "fetch_model_records", "model_storage_keys"]

_CHUNK = 8 * 1024 * 1024


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP range requests, through ``huggingface_hub``'s session (its headers,
    proxies and ``http_backoff``: retries on 429/5xx and failed connections).

    A connection dropped in the middle of a body, or a short body, is retried too (``retries`` tries in all,
    waiting longer each time); a server that answers a range with the whole file (200) is an error, not a
    download of the whole file once per range. ``received`` counts the body bytes that came over the network.
    """

    def __init__(self, url: str, size: int, headers: dict[str, str] | None = None, timeout: float = 60,
                 retries: int = 5):
        super().__init__()
        self.url, self.size = url, size
        self.headers, self.timeout, self.retries = dict(headers or {}), timeout, retries
        self.position = 0
        self.received = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def fetch(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the remote file (one request, retried as the class doc says)."""
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import hf_raise_for_status, http_backoff

        if stop <= start:
            return b""
        problem = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
            try:
                response = http_backoff("GET", self.url, timeout=self.timeout, follow_redirects=True,
                                        headers={**self.headers, "Range": f"bytes={start}-{stop - 1}"})
                hf_raise_for_status(response)
            except HfHubHTTPError:
                raise
            except Exception as err:  # the connection dropped (mid-body too), a timeout after the backoff's tries
                problem = f"{type(err).__name__}: {err}"
                continue
            if response.status_code != 206:
                raise CheckpointError(
                    f"{self.url}: the server answered a byte range with the whole file (HTTP {response.status_code}), "
                    "so a partial fetch cannot work here: fetch the whole file (`scimult-hf fetch NAME --full`).")
            data = response.content
            if len(data) == stop - start:
                self.received += len(data)
                return data
            problem = f"{len(data)} bytes instead of {stop - start}"
        raise DownloadError(f"{self.url}: bytes {start}-{stop - 1} failed {self.retries} times (last: {problem}); run "
                            "the command again: what was already fetched is kept.")

    def read(self, n: int = -1) -> bytes:
        stop = self.size if n is None or n < 0 else min(self.size, self.position + n)
        data = self.fetch(self.position, stop)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _rebuild_tensor(storage, *_args):
    return ("tensor", storage)


class _KeyCollector(pickle.Unpickler):
    """Unpickles a SciMult checkpoint's ``data.pkl`` without tensors: a tensor becomes ``("tensor", key)``.

    Only the globals of the format are found (anything else is a :class:`CheckpointError`, before it is
    called); storages are never loaded, so nothing of the file's tensor data is needed.
    """

    _GLOBALS = {
        "builtins.dict": dict, "builtins.list": list, "builtins.int": int,
        "collections.OrderedDict": OrderedDict, "collections.defaultdict": defaultdict, "typing.Any": typing.Any,
        "torch.FloatStorage": "float32", "torch.LongStorage": "int64",
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor, **_STAND_INS,
    }

    def find_class(self, module: str, name: str):
        full = _canonical(f"{module}.{name}")
        if full not in ALLOWED_GLOBALS:
            raise CheckpointError(
                f"the checkpoint's pickle references {full}, which the SciMult format never uses; it was not "
                "loaded (it could run code)."
            )
        return self._GLOBALS[full]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"the checkpoint's pickle has an unexpected persistent id {pid!r}.")
        return str(pid[2])


def model_storage_keys(data_pkl: bytes) -> set[str]:
    """The storage keys of ``model_dict``'s tensors in a SciMult checkpoint's pickle (nothing is loaded)."""
    try:
        top = _KeyCollector(io.BytesIO(data_pkl), encoding="utf-8").load()
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"the checkpoint's pickle could not be read ({type(err).__name__}: {err}).") from None
    model_dict = top.get("model_dict") if isinstance(top, dict) else None
    if not isinstance(model_dict, dict) or not model_dict:
        raise CheckpointError("not an original SciMult training checkpoint: its pickle has no model_dict.")
    keys = set()
    for name, value in model_dict.items():
        if not (isinstance(value, tuple) and value[0] == "tensor"):
            raise CheckpointError(f"model_dict[{name!r}] is not a tensor.")
        keys.add(value[1])
    return keys


def _extents(infos: list[zipfile.ZipInfo], end: int) -> dict[str, tuple[int, int]]:
    """Each record's bytes in the archive: from its local header to the next record's (or the central directory)."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    stops = [i.header_offset for i in ordered[1:]] + [end]
    return {i.filename: (i.header_offset, stop) for i, stop in zip(ordered, stops)}


def _merge(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """``spans`` sorted and merged where less than ``gap`` bytes apart."""
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def fetch_model_records(remote: RangeFile, dest: str | os.PathLike, sha256: str, progress=None,
                        gap: int = 1 << 20) -> dict:
    """Write into ``dest`` the parts of the remote checkpoint that the conversion reads (see the module doc).

    ``dest`` becomes a sparse file of the remote size; ``dest`` + :data:`PARTIAL_SUFFIX` records what it holds
    and the ranges already written, so an interrupted call resumes; ``sha256`` (the whole file's, as the Hub
    reports it and the caller checked) is kept there for the conversion's records. ``progress(total)`` makes the
    progress bar (a tqdm) once the total is known. Returns ``{"records", "bytes", "received"}``.
    """
    dest = Path(dest)
    sidecar = Path(os.fspath(dest) + PARTIAL_SUFFIX)
    state = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() and dest.is_file() else {}
    if state.get("size") != remote.size or state.get("sha256") != sha256:
        state = {"size": remote.size, "sha256": sha256, "done": []}
    state.pop("records", None)
    try:
        archive = zipfile.ZipFile(remote)
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{remote.url} is not a PyTorch zip checkpoint ({err}).") from None
    infos = archive.infolist()
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{remote.url}: expected one data.pkl record in the archive, found {len(pickles)}.")
    prefix = pickles[0].filename[: -len("data.pkl")]
    keys = model_storage_keys(archive.read(pickles[0]))
    storages = {f"{prefix}data/{k}" for k in keys}
    wanted = [i for i in infos if i.filename in storages or not i.filename.startswith(f"{prefix}data/")]
    missing = storages - {i.filename for i in wanted}
    if missing:
        raise CheckpointError(f"{remote.url}: model_dict's storages {sorted(missing)[:3]} are not in the archive.")
    extents = _extents(infos, archive.start_dir)
    ranges = _merge([extents[i.filename] for i in wanted] + [(archive.start_dir, remote.size)], gap)
    bar = progress(sum(b - a for a, b in ranges)) if progress else None
    with open(dest, "r+b" if dest.is_file() else "w+b") as f, bar or contextlib.nullcontext():
        f.truncate(remote.size)
        done = {tuple(r) for r in state["done"]}
        for start, stop in ranges:
            for a in range(start, stop, _CHUNK):
                b = min(stop, a + _CHUNK)
                if (a, b) in done:
                    if bar:
                        bar.update(b - a)
                    continue
                f.seek(a)
                f.write(remote.fetch(a, b))
                f.flush()
                done.add((a, b))
                state["done"] = sorted(done)
                atomic_write_text(sidecar, json.dumps(state))
                if bar:
                    bar.update(b - a)
        for info in wanted:  # every record the conversion reads, checked against the archive's CRC-32
            f.seek(info.header_offset)
            head = f.read(30)
            f.seek(info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little"))
            crc = 0
            left = info.compress_size
            while left:
                block = f.read(min(left, _CHUNK))
                crc = zlib.crc32(block, crc)
                left -= len(block)
            if info.compress_type != zipfile.ZIP_STORED or crc != info.CRC:
                # forget only the chunks that hold this record: the next call fetches them anew, and no more
                first, last = extents[info.filename]
                done = {(a, b) for a, b in done if b <= first or a >= last}
                state["done"] = sorted(done)
                atomic_write_text(sidecar, json.dumps(state))
                raise CheckpointError(
                    f"{remote.url}: the record {info.filename} fails its CRC-32 check after download; "
                    "run the command again to fetch that record anew (the others are kept)."
                )
    state["records"] = sorted(i.filename for i in wanted)
    atomic_write_text(sidecar, json.dumps(state))
    total = sum(b - a for a, b in ranges)
    return {"records": len(wanted), "bytes": total, "received": remote.received}
