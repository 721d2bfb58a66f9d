"""``scimult-hf serve`` (registered by :mod:`scimult_hf.cli`)."""

from __future__ import annotations

from .server import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_WAITING, DEFAULT_MAX_WAITING_BYTES

__all__ = ["register_serve"]


def run_serve(args) -> int:
    from ..resolve import resolve_model_path
    from .server import serve

    serve(resolve_model_path(args.model), host=args.host, port=args.port, max_inputs=args.max_inputs,
          max_chars=args.max_chars, batch_size=args.batch_size, device=args.device, max_concurrent=args.max_concurrent,
          max_waiting=args.max_waiting, max_waiting_bytes=args.max_waiting_bytes, max_body_bytes=args.max_body_bytes)
    return 0


def register_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP with the Inference Endpoints handler (POST / JSON)")
    p.add_argument("--model", required=True, help="a released name (scimult-moe, scimult-vanilla, scimult-moe-pmcpatients-par/-ppr: fetched and converted on first use), or a SciMult (or sentence-transformers) folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument("--max-inputs", type=int, default=256, help="most inputs per request")
    p.add_argument("--max-chars", type=int, default=20_000, help="longest input, in characters")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT,
                   help="requests encoded at the same time (default: %(default)s: on a CPU one batch already uses "
                        "every core)")
    p.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING,
                   help="requests waiting for their turn, each holding its parsed body; more get HTTP 503 with "
                        "Retry-After before their body is read (default: %(default)s, so a burst of 50 clients is "
                        "served; measured on 2 CPU cores: see docs/serving.md)")
    p.add_argument("--max-waiting-bytes", type=int, default=DEFAULT_MAX_WAITING_BYTES,
                   help="request bodies (by Content-Length) that may wait at once; more get 503 with an estimated "
                        "Retry-After (default: %(default)s = 32 MiB: 64 requests of 1 KB, about 6 of 5 MB, which on "
                        "2 CPU cores take tens of seconds each)")
    p.add_argument("--max-body-bytes", type=int, default=None,
                   help="largest request body, refused with 413 before it is read (default: 4 x max-inputs x "
                        "max-chars + 64 KiB)")
    p.set_defaults(func=run_serve)
