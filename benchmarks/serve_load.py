"""Memory of ``scimult-hf serve`` under load: 50 concurrent requests of 32 abstracts each.

Starts the server on the offline default model in a process of its own, measures its resident memory (psutil,
sampled every 50 ms) idle, at the peak of the load and after it, and counts the answers (200, or 503 for the
requests beyond the waiting line).

    python benchmarks/serve_load.py [--requests 50] [--inputs 32] [--max-concurrent 1] [--max-waiting 16]
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


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def main() -> int:
    import psutil

    from scimult_hf.defaults import default_model_path
    from scimult_hf.sample import sample_papers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--max-waiting", type=int, default=16)
    args = parser.parse_args()
    with open(sample_papers(), encoding="utf-8") as f:
        papers = [{"title": r["title"], "abstract": r["abstract"]} for r in map(json.loads, f)][: args.inputs]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "scimult_hf.cli", "serve", "--model", str(default_model_path()),
                               "--port", str(port), "--max-concurrent", str(args.max_concurrent),
                               "--max-waiting", str(args.max_waiting)], stderr=subprocess.DEVNULL)
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
            statuses = list(pool.map(lambda _: post(url, body), range(args.requests)))
        seconds = time.perf_counter() - start
        time.sleep(1.0)
        after = process.memory_info().rss
        running = False
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("| requests | inputs each | max concurrent / waiting | answered 200 | 503 | wall | idle RSS | peak RSS | "
          "RSS after |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.requests} | {args.inputs} | {args.max_concurrent} / {args.max_waiting} | {statuses.count(200)} | "
          f"{statuses.count(503)} | {seconds:.1f} s | {idle / 1e9:.2f} GB | {peak / 1e9:.2f} GB | {after / 1e9:.2f} GB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
