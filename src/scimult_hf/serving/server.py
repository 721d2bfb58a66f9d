"""``scimult-hf serve``: the Inference Endpoints handler behind a local HTTP endpoint (Starlette + uvicorn)."""

from __future__ import annotations

import os

from .handler import EndpointHandler, RequestError

__all__ = ["make_app", "serve"]


def make_app(handler: EndpointHandler):
    """A Starlette (ASGI) app: ``POST /`` runs the handler (400 with the error object for a bad request),
    ``GET /health`` answers ``{"status": "ok"}``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        try:
            data = await request.json()
        except ValueError:
            return JSONResponse(RequestError("bad_json", "The request body is not valid JSON.").as_dict(), 400)
        result = await run_in_threadpool(handler, data)
        return JSONResponse(result, status_code=400 if isinstance(result, dict) and "error" in result else 200)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/", predict, methods=["POST"]), Route("/health", health, methods=["GET"])])


def serve(model: str, host: str = "127.0.0.1", port: int = 8080, **handler_kwargs) -> None:
    """Run the handler behind uvicorn (``scimult-hf serve``)."""
    import uvicorn

    uvicorn.run(make_app(EndpointHandler(os.fspath(model), **handler_kwargs)), host=host, port=port,
                log_level="info")
