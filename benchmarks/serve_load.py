"""Throughput and memory of ``scimult-hf serve`` under load: 50 concurrent requests, bodies of 1 KB or 5 MB.

Starts the server on the offline default model in a process of its own, measures its resident memory (psutil,
sampled every 50 ms) idle, at the peak of the load and after it, counts the answers (200, or 503 for the
requests beyond the waiting line) and the papers encoded per second. The serve defaults (``--max-concurrent``,
``--max-waiting``) were sized from these figures (README, "Serving").

    python benchmarks/serve_load.py --body 1kb       # one abstract a request (about 1 KB)
    python benchmarks/serve_load.py --body 5mb       # 256 inputs of 19,500 characters (about 5 MB)
    python benchmarks/serve_load.py --body 5mb --retry     # clients that honour Retry-After (within 600 s)

``--output`` adds the row (with the stack's versions and the machine) to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_retrying(url: str, body: bytes, deadline: float) -> int:
    """``post``, and on 503 again after the server's Retry-After, until ``deadline`` (a patient client)."""
    while True:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.time())) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as err:
            wait = float(err.headers.get("Retry-After") or 1)
            if err.code != 503 or time.time() + wait > deadline:
                return err.code
            time.sleep(wait)
        except OSError:
            return -1


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # reset, broken pipe: counted as "other"
        return -1


def main() -> int:
    import psutil

    from scimult_hf import default_model_path
    from scimult_hf.sample import sample_papers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--body", choices=["1kb", "5mb"], default="1kb")
    parser.add_argument("--max-concurrent", type=int, default=None, help="default: serve's own")
    parser.add_argument("--max-waiting", type=int, default=None, help="default: serve's own")
    parser.add_argument("--output", help="a JSON file to add this run's row to")
    parser.add_argument("--retry", action="store_true",
                        help="clients honour Retry-After on 503 and try again, within 600 s each")
    args = parser.parse_args()
    with open(sample_papers(), encoding="utf-8") as f:
        rows = [{"title": r["title"], "abstract": r["abstract"]} for r in map(json.loads, f)]
    if args.body == "1kb":
        papers = [next(p for p in rows if 800 <= len(json.dumps(p)) <= 1100)]
    else:
        text = " ".join(p["abstract"] for p in rows)[:19_500]
        papers = [text] * 256
    limits = []
    for flag in ("max_concurrent", "max_waiting"):
        if getattr(args, flag) is not None:
            limits += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "scimult_hf.cli", "serve", "--model", str(default_model_path()),
                               "--port", str(port), *limits], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        process = psutil.Process(server.pid)
        body = json.dumps({"inputs": papers, "parameters": {"task": "search"}}).encode()
        post(url, body)  # warm
        idle = process.memory_info().rss
        peak, running = idle, True

        def sample():
            nonlocal peak
            while running:
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.requests) as pool:
            if args.retry:
                deadline = time.time() + 600
                statuses = list(pool.map(lambda _: post_retrying(url, body, deadline), range(args.requests)))
            else:
                statuses = list(pool.map(lambda _: post(url, body), range(args.requests)))
        seconds = time.perf_counter() - start
        time.sleep(1.0)
        after = process.memory_info().rss
        running = False
        sampler.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # uvicorn still finishing a request the client gave up on
            server.kill()
            server.wait()
    from scimult_hf.serving.server import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_WAITING, DEFAULT_MAX_WAITING_BYTES

    concurrent = args.max_concurrent or DEFAULT_MAX_CONCURRENT
    waiting = args.max_waiting if args.max_waiting is not None else DEFAULT_MAX_WAITING
    row = {"requests": args.requests, "body_bytes": len(body), "inputs_each": len(papers),
           "max_concurrent": concurrent, "max_waiting": waiting, "max_waiting_bytes": DEFAULT_MAX_WAITING_BYTES,
           "server": "defaults" if args.max_waiting is None else f"max_waiting {args.max_waiting}",
           "client": "honours Retry-After (600 s)" if args.retry else "no retry", "answered_200": statuses.count(200),
           "answered_503": statuses.count(503), "other": len(statuses) - statuses.count(200) - statuses.count(503),
           "wall_s": round(seconds, 1), "papers_per_s": round(statuses.count(200) * len(papers) / seconds, 1),
           "idle_rss_gb": round(idle / 1e9, 2), "peak_rss_gb": round(peak / 1e9, 2), "after_rss_gb": round(after / 1e9, 2)}
    print("| requests | body | max concurrent / waiting | 200 | 503 | other | wall | papers/s | idle RSS | peak RSS | "
          "RSS after |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {row['requests']} | {len(body) / 1e3:,.0f} KB | {concurrent} / {waiting} | {row['answered_200']} | "
          f"{row['answered_503']} | {row['other']} | {seconds:.1f} s | {row['papers_per_s']} | {row['idle_rss_gb']} GB | "
          f"{row['peak_rss_gb']} GB | {row['after_rss_gb']} GB |")
    if args.output:
        from pathlib import Path

        from scimult_hf.environment import environment_record
        from scimult_hf.io import atomic_write_text

        out = Path(args.output)
        data = json.loads(out.read_text()) if out.is_file() else {"rows": []}
        data["rows"].append(row)
        data["environment"] = environment_record()
        atomic_write_text(out, json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
