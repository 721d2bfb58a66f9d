"""A local stand-in for the Hub's file endpoint, for tests and benchmarks (``HF_ENDPOINT=server.url``).

Serves ``HEAD`` / ``GET /{repo}/resolve/{revision}/{path}`` as ``huggingface_hub`` reads it: ``X-Repo-Commit``,
the file's sha256 as ``X-Linked-Etag`` (what the Hub sends for LFS files), ``Content-Length``, and byte
ranges (206). It counts the body bytes it sends.

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
                ranged = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
                if ranged:
                    start = int(ranged[1])
                    stop = min(size, int(ranged[2]) + 1) if ranged[2] else size
                    self._headers(entry, 206, stop - start, [("Content-Range", f"bytes {start}-{stop - 1}/{size}")])
                else:
                    self._headers(entry, 200, size)
                with open(path, "rb") as f:
                    f.seek(start)
                    left = stop - start
                    while left:
                        block = f.read(min(left, 1 << 20))
                        self.wfile.write(block)
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
