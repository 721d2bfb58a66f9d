"""A local stand-in for the Hub's file endpoint, for tests and benchmarks (``HF_ENDPOINT=server.url``).

Serves ``HEAD`` / ``GET /{repo}/resolve/{revision}/{path}`` as ``huggingface_hub`` reads it: ``X-Repo-Commit``,
the file's sha256 as ``X-Linked-Etag`` (what the Hub sends for LFS files), ``Content-Length``, and byte
ranges (206). It counts the body bytes it sends. Two faults on demand: ``ignore_range = True`` answers every
GET with the whole file (200), as some proxies and mirrors do; ``drops[filename] = N`` cuts that file's next N
bodies off half way (the connection closes before ``Content-Length`` bytes came).

    with LocalHub({("yuz9yuz/SciMult", "scimult_moe.ckpt"): Path("model.ckpt")}) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "cb49f68" + "0" * 33


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class LocalHub:
    def __init__(self, files: dict[tuple[str, str], Path], commit: str = COMMIT):
        self.files: dict[tuple[str, str], tuple[Path, int, str]] = {}
        self.serve(files)
        self.commit = commit
        self.sent = 0
        self.ignore_range = False
        self.drops: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                match = re.match(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", self.path)
                entry = match and hub.files.get((match["repo"], match["path"]))
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                if not entry:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                return entry

            def _headers(self, entry, status, length, extra=()):
                path, size, sha = entry
                self.send_response(status)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(size))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(length))
                for key, value in extra:
                    self.send_header(key, value)
                self.end_headers()

            def do_HEAD(self):
                entry = self._file()
                if entry:
                    self._headers(entry, 200, entry[1])

            def do_GET(self):
                entry = self._file()
                if not entry:
                    return
                path, size, _ = entry
                start, stop = 0, size
                ranged = not hub.ignore_range and re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
                if ranged:
                    start = int(ranged[1])
                    stop = min(size, int(ranged[2]) + 1) if ranged[2] else size
                    self._headers(entry, 206, stop - start, [("Content-Range", f"bytes {start}-{stop - 1}/{size}")])
                else:
                    self._headers(entry, 200, size)
                left = stop - start
                name = self.path.rsplit("/", 1)[-1]  # the file as the repository names it
                if hub.drops.get(name, 0) > 0:  # send half the body, then close the connection
                    hub.drops[name] -= 1
                    left //= 2
                    self.close_connection = True
                with open(path, "rb") as f:
                    f.seek(start)
                    while left:
                        block = f.read(min(left, 1 << 20))
                        try:
                            self.wfile.write(block)
                        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
                            return
                        hub.sent += len(block)
                        left -= len(block)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, files: dict[tuple[str, str], Path]) -> None:
        """Serve (or replace) ``{(repo, path in repo): local file}``."""
        self.files.update({key: (Path(p), Path(p).stat().st_size, sha256_of(Path(p))) for key, p in files.items()})

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ the golden fixtures as the released files
FIXTURES = (Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures").resolve()
TOKENIZER_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
#: Which fixture (../shared/fixtures) stands in for which released file.
STAND_INS = {
    "scimult-moe": "scimult_moe_attn_s1",
    "scimult-vanilla": "scimult_vanilla_s3",
    "scimult-moe-pmcpatients-par": "scimult_moe_attn_s1",
    "scimult-moe-pmcpatients-ppr": "scimult_moe_fwd_s4",
}


def base_model_files(fx: str) -> dict[tuple[str, str], Path]:
    """The fixture's own base config and vocabulary as BiomedBERT's (each fixture has its own dimensions)."""
    return {(TOKENIZER_REPO, f): FIXTURES / fx / "bert_config" / f for f in ("config.json", "vocab.txt")}


def released_files() -> dict[tuple[str, str], Path]:
    """``yuz9yuz/SciMult``'s four files as the fixtures, and the moe fixture's base model as BiomedBERT."""
    from scimult_hf.released import RELEASED

    files = {("yuz9yuz/SciMult", RELEASED[name].filename): FIXTURES / fx / "checkpoint.ckpt"
             for name, fx in STAND_INS.items()}
    return {**files, **base_model_files("scimult_moe_attn_s1")}


def pinned_to_fixtures() -> dict:
    """The release table with the fixtures' sizes and hashes (what the stand-in endpoint serves)."""
    import dataclasses

    from scimult_hf.released import RELEASED

    table = {}
    for name, fx in STAND_INS.items():
        path = FIXTURES / fx / "checkpoint.ckpt"
        table[name] = dataclasses.replace(RELEASED[name], size=path.stat().st_size, sha256=sha256_of(path))
    return table


def pinning_preamble() -> str:
    """Python lines that pin the release table to the fixtures in a fresh interpreter (run before the code)."""
    pinned = {name: {"size": m.size, "sha256": m.sha256} for name, m in pinned_to_fixtures().items()}
    return ("import dataclasses as _dc, scimult_hf.released as _released\n"
            f"for _name, _fields in {pinned!r}.items():\n"
            "    _released.RELEASED[_name] = _dc.replace(_released.RELEASED[_name], **_fields)\n")


def online_env(hub: LocalHub, home: Path) -> dict[str, str]:
    """Environment of a fresh process that reaches ``hub`` as the Hub, with empty caches under ``home``."""
    import os

    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(home / "hub"),
            "SCIMULT_HF_CACHE": str(home / "cache")}
