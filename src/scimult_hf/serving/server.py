"""``scimult-hf serve``: the Inference Endpoints handler behind a local HTTP endpoint (Starlette + uvicorn)."""

from __future__ import annotations

import os

from .handler import EndpointHandler, RequestError

__all__ = ["make_app", "serve"]


def make_app(handler: EndpointHandler, *, max_body_bytes: int | None = None, max_concurrent: int = 1,
             max_waiting: int = 16):
    """A Starlette (ASGI) app: ``POST /`` runs the handler (400 with the error object for a bad request),
    ``GET /health`` answers ``{"status": "ok"}``.

    Bounded, so that no client can take the server's memory: a body larger than ``max_body_bytes`` (default:
    what ``max_inputs`` texts of ``max_chars`` characters can take, 4 bytes a character, plus 64 KiB) is refused
    with 413 before it is read past the limit; at most ``max_concurrent`` requests encode at a time and at most
    ``max_waiting`` more wait for their turn, later ones get 503 with ``Retry-After``.
    """
    import asyncio
    import json

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    limit = max_body_bytes or 4 * handler.max_inputs * handler.max_chars + 65536
    slots = asyncio.Semaphore(max_concurrent)
    queued = 0

    def error(code: str, message: str, status: int, **headers) -> JSONResponse:
        return JSONResponse(RequestError(code, message).as_dict(), status, headers=headers or None)

    async def body_of(request: Request) -> bytes | None:
        """The body, or None once it passes ``limit`` (announced or streamed)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(request: Request) -> JSONResponse:
        nonlocal queued
        body = await body_of(request)
        if body is None:
            return error("body_too_large", f"The request body is larger than {limit:,} bytes; send fewer or "
                         "shorter inputs per request.", 413)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # malformed, or nested deeper than the parser follows
            return error("bad_json", "The request body is not valid JSON (or is nested too deeply).", 400)
        if queued >= max_concurrent + max_waiting:
            return error("busy", f"The server is encoding {max_concurrent} request(s) with {max_waiting} waiting; "
                         "try again in a moment.", 503, **{"Retry-After": "1"})
        queued += 1
        try:
            async with slots:
                result = await run_in_threadpool(handler, data)
        finally:
            queued -= 1
        return JSONResponse(result, status_code=400 if isinstance(result, dict) and "error" in result else 200)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/", predict, methods=["POST"]), Route("/health", health, methods=["GET"])])


def serve(model: str, host: str = "127.0.0.1", port: int = 8080, *, max_concurrent: int = 1, max_waiting: int = 16,
          max_body_bytes: int | None = None, **handler_kwargs) -> None:
    """Run the handler behind uvicorn (``scimult-hf serve``); the limits are :func:`make_app`'s."""
    import uvicorn

    app = make_app(EndpointHandler(os.fspath(model), **handler_kwargs), max_body_bytes=max_body_bytes,
                   max_concurrent=max_concurrent, max_waiting=max_waiting)
    uvicorn.run(app, host=host, port=port, log_level="info")
