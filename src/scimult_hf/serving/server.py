"""``scimult-hf serve``: the Inference Endpoints handler behind a local HTTP endpoint (Starlette + uvicorn)."""

from __future__ import annotations

import os

from .handler import EndpointHandler, RequestError

__all__ = ["DEFAULT_MAX_CONCURRENT", "DEFAULT_MAX_WAITING", "DEFAULT_MAX_WAITING_BYTES", "DRAIN_BYTES", "make_app",
           "serve"]

#: Requests encoded at once: one on a CPU, where torch already uses every core for one batch (benchmarks/serve_load.py).
DEFAULT_MAX_CONCURRENT = 1
#: Requests that wait for their turn: enough that a burst of 50 concurrent small requests is served, not refused.
DEFAULT_MAX_WAITING = 64
#: The bodies (by their Content-Length) that may wait at once: a waiting request holds its parsed body, and a long
#: line of large requests would wait longer than a client does. 32 MiB: 64 requests of 1 KB, or 6 of 5 MB (on 2
#: CPU cores a 5 MB request of 256 long abstracts takes tens of seconds). The figures are in docs/serving.md.
DEFAULT_MAX_WAITING_BYTES = 32 * 2**20

#: How much of a refused body the server reads (and drops) before it answers, so that the client, still sending,
#: reads the answer instead of a reset connection; a larger refused body is cut off.
DRAIN_BYTES = 64 * 2**20


def make_app(handler: EndpointHandler, *, max_body_bytes: int | None = None,
             max_concurrent: int = DEFAULT_MAX_CONCURRENT, max_waiting: int = DEFAULT_MAX_WAITING,
             max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES):
    """A Starlette (ASGI) app: ``POST /`` runs the handler (400 with the error object for a bad request),
    ``GET /health`` answers ``{"status": "ok"}``.

    Bounded, so that no client can take the server's memory: a body larger than ``max_body_bytes`` (default:
    what ``max_inputs`` texts of ``max_chars`` characters can take, 4 bytes a character, plus 64 KiB) is refused
    with 413 before it is read past the limit; at most ``max_concurrent`` requests encode at a time and at most
    ``max_waiting`` more, whose bodies add up to at most ``max_waiting_bytes`` (by Content-Length), wait for their
    turn; later ones get 503 with a ``Retry-After`` estimated from the work ahead, answered from the headers alone,
    before their body is parsed or kept (a request finding the line empty is always taken). A request holds its
    parsed body while it waits, so memory beyond the model is bounded by about ``max_waiting_bytes`` (or one
    ``max_body_bytes``).
    """
    import asyncio
    import json
    import time

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    limit = max_body_bytes or 4 * handler.max_inputs * handler.max_chars + 65536
    slots = asyncio.Semaphore(max_concurrent)
    queued, queued_bytes = 0, 0
    rate = {"bytes": 0, "seconds": 0.0}  # work done so far, for Retry-After
    def error(code: str, message: str, status: int, **headers) -> JSONResponse:
        return JSONResponse(RequestError(code, message).as_dict(), status, headers=headers or None)

    async def body_of(request: Request) -> bytes | None:
        """The body, or None once it passes ``limit`` (announced or streamed)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await drain(request)
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await drain(request, size)
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def drain(request: Request, seen: int = 0) -> None:
        """Read and drop the rest of a refused body (up to :data:`DRAIN_BYTES`), so that a client that sends its
        whole body before reading the answer (urllib, requests) gets the 413 / 503 instead of a broken pipe."""
        try:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > DRAIN_BYTES:
                    return
        except Exception:  # the client went away: nothing to answer
            return

    def retry_after() -> str:
        """Seconds until the line ahead is likely done, from the bytes per second served so far (1 at first)."""
        per_second = rate["bytes"] / rate["seconds"] if rate["seconds"] > 0 else 0
        return str(max(1, min(600, round(queued_bytes / per_second)))) if per_second else "1"

    async def predict(request: Request) -> JSONResponse:
        nonlocal queued, queued_bytes
        declared = request.headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else limit
        full = queued >= max_concurrent + max_waiting or (queued > 0 and queued_bytes + min(size, limit) >
                                                           max_waiting_bytes)
        if full:  # refused from the headers, before the body is parsed or kept
            await drain(request)
            return error("busy", f"The server is encoding {max_concurrent} request(s) with {queued} in line "
                         f"({queued_bytes / 2**20:,.1f} MiB); try again after the Retry-After seconds.", 503,
                         **{"Retry-After": retry_after()})
        queued, queued_bytes = queued + 1, queued_bytes + min(size, limit)
        try:
            body = await body_of(request)
            if body is None:
                return error("body_too_large", f"The request body is larger than {limit:,} bytes; send fewer or "
                             "shorter inputs per request.", 413)
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):  # malformed, or nested deeper than the parser follows
                return error("bad_json", "The request body is not valid JSON (or is nested too deeply).", 400)
            served = len(body)
            del body
            async with slots:
                start = time.perf_counter()
                result = await run_in_threadpool(handler, data)
                rate["bytes"] += served
                rate["seconds"] += time.perf_counter() - start
        finally:
            queued, queued_bytes = queued - 1, queued_bytes - min(size, limit)
        return JSONResponse(result, status_code=400 if isinstance(result, dict) and "error" in result else 200)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/", predict, methods=["POST"]), Route("/health", health, methods=["GET"])])


def serve(model: str, host: str = "127.0.0.1", port: int = 8080, *, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
          max_waiting: int = DEFAULT_MAX_WAITING, max_waiting_bytes: int = DEFAULT_MAX_WAITING_BYTES,
          max_body_bytes: int | None = None, **handler_kwargs) -> None:
    """Run the handler behind uvicorn (``scimult-hf serve``); the limits are :func:`make_app`'s."""
    import uvicorn

    app = make_app(EndpointHandler(os.fspath(model), **handler_kwargs), max_body_bytes=max_body_bytes,
                   max_concurrent=max_concurrent, max_waiting=max_waiting, max_waiting_bytes=max_waiting_bytes)
    uvicorn.run(app, host=host, port=port, log_level="info")
