"""The Inference Endpoints handler: vectors equal to sentence-transformers', one error object per malformed
request, and the same handler served over loopback HTTP with concurrent requests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import PAPERS, free_port

from scimult_hf import paper_text
from scimult_hf.serving.handler import EndpointHandler
from scimult_hf.serving.server import make_app


@pytest.fixture(scope="module")
def handler(tiny_scimult):
    return EndpointHandler(str(tiny_scimult), max_inputs=8, max_chars=500, batch_size=2, device="cpu")


@pytest.mark.smoke
def test_vectors_equal_sentence_transformers(handler):
    st = handler.model
    got = handler({"inputs": PAPERS, "parameters": {"task": "classification"}})
    np.testing.assert_allclose(np.array(got), st.encode(PAPERS, task="classification"), atol=1e-5)
    one = handler({"inputs": PAPERS[0], "parameters": {"task": "search"}})
    np.testing.assert_allclose(np.array(one), st.encode(PAPERS[:1], task="search"), atol=1e-5)
    papers = [{"title": "BERT", "abstract": "We introduce a model."}, {"title": "Only a title"}]
    got = handler({"inputs": papers, "parameters": {"task": "link_prediction", "normalize": True}})
    texts = [paper_text("BERT", "We introduce a model."), "Only a title"]
    np.testing.assert_allclose(np.array(got), st.encode(texts, task="link_prediction", normalize_embeddings=True),
                               atol=1e-5)


@pytest.mark.parametrize(
    "request_, code",
    [
        ({}, "missing_inputs"),
        ("just a string", "missing_inputs"),
        ({"inputs": 3, "parameters": {"task": "search"}}, "bad_inputs"),
        ({"inputs": [], "parameters": {"task": "search"}}, "bad_inputs"),
        ({"inputs": ["ok", 4], "parameters": {"task": "search"}}, "bad_inputs"),
        ({"inputs": [{"title": "t", "body": "b"}], "parameters": {"task": "search"}}, "bad_inputs"),
        ({"inputs": ["ok"], "parameters": {"task": "astrology"}}, "unknown_task"),
        ({"inputs": ["ok"]}, "missing_task"),
        ({"inputs": ["ok", "  "], "parameters": {"task": "search"}}, "empty_input"),
        (json.loads('{"inputs": ["ok", "a \\ud800 b"], "parameters": {"task": "search"}}'), "bad_text"),
        (json.loads('{"inputs": [{"title": "\\udfff"}], "parameters": {"task": "search"}}'), "bad_text"),
        ({"inputs": ["x"] * 9, "parameters": {"task": "search"}}, "too_many_inputs"),
        ({"inputs": ["x" * 501], "parameters": {"task": "search"}}, "input_too_long"),
        ({"inputs": ["ok"], "parameters": {"task": "search", "top_k": 3}}, "bad_parameters"),
        ({"inputs": ["ok"], "parameters": ["search"]}, "bad_parameters"),
        ({"inputs": ["ok"], "parameters": {"task": "search", "normalize": "yes"}}, "bad_parameters"),
        ({"inputs": ["ok"], "parameters": {"task": "search", "prompt_name": "nope"}}, "unknown_prompt"),
    ],
)
def test_each_malformed_request_gets_an_error_object(handler, request_, code):
    result = handler(request_)
    assert isinstance(result, dict) and result["error"]["code"] == code, result
    assert result["error"]["message"]


def post(url: str, body: bytes) -> tuple[int, object]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn on a free loopback port; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_local_server_over_loopback_with_concurrent_requests(handler):
    with running(make_app(handler)) as url:
        with urllib.request.urlopen(url + "health", timeout=10) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        tasks = ["search", "link_prediction", "classification"] * 4
        bodies = [json.dumps({"inputs": PAPERS[:3], "parameters": {"task": t}}).encode() for t in tasks]
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda b: post(url, b), bodies))
        for task, (status, vectors) in zip(tasks, answers):
            assert status == 200
            np.testing.assert_allclose(np.array(vectors), handler.model.encode(PAPERS[:3], task=task), atol=1e-5)
        status, body = post(url, json.dumps({"inputs": ["ok"], "parameters": {"task": "nope"}}).encode())
        assert status == 400 and body["error"]["code"] == "unknown_task"
        status, body = post(url, b"{not json")
        assert status == 400 and body["error"]["code"] == "bad_json"


def test_odd_parameters_and_deep_json_are_400_not_500(handler):
    with running(make_app(handler)) as url:
        for params in ({"task": "search", "prompt_name": ["a"]}, {"task": {"x": 1}}, {"task": "search", "prompt_name": {}}):
            status, body = post(url, json.dumps({"inputs": ["ok"], "parameters": params}).encode())
            assert status == 400 and body["error"]["code"] == "bad_parameters", (params, body)
        status, body = post(url, b"[" * 20_000 + b"]" * 20_000)  # deeper than the parser recurses
        assert status == 400 and body["error"]["code"] == "bad_json"


def test_a_body_over_the_limit_is_refused_with_413(handler):
    with running(make_app(handler, max_body_bytes=2_000)) as url:
        status, body = post(url, json.dumps({"inputs": ["x" * 5_000], "parameters": {"task": "search"}}).encode())
        assert status == 413 and body["error"]["code"] == "body_too_large"
        status, _ = post(url, json.dumps({"inputs": ["fits"], "parameters": {"task": "search"}}).encode())
        assert status == 200
        # 5 MB: far more than the socket buffers hold, so urllib is still sending when the server answers; the
        # server reads the rest away, and the client gets the 413 rather than a broken pipe
        status, body = post(url, json.dumps({"inputs": ["x" * 5_000_000], "parameters": {"task": "search"}}).encode())
        assert status == 413 and body["error"]["code"] == "body_too_large"


def test_a_lone_surrogate_over_http_is_a_400(handler):
    with running(make_app(handler)) as url:
        status, body = post(url, b'{"inputs": ["a \\ud800 b"], "parameters": {"task": "search"}}')
        assert status == 400 and body["error"]["code"] == "bad_text", body


class _Slow:
    """A handler that takes a while per request (what a large batch on a CPU does)."""

    max_inputs, max_chars = 8, 100

    def __call__(self, data):
        time.sleep(1.0)
        return [[0.0]]


def test_concurrent_encoding_is_bounded_and_the_rest_get_503():
    with running(make_app(_Slow(), max_concurrent=1, max_waiting=1)) as url:
        body = json.dumps({"inputs": ["a"]}).encode()
        with ThreadPoolExecutor(max_workers=5) as pool:
            statuses = sorted(status for status, _ in pool.map(lambda _: post(url, body), range(5)))
    assert statuses.count(200) >= 2 and 503 in statuses, statuses  # one encoding, one waiting, the rest refused


def test_a_line_of_large_bodies_is_bounded_by_bytes_with_a_retry_after_estimate():
    """Small requests queue by count, large ones by their bytes: a burst of large bodies gets quick 503s with a
    Retry-After from the measured rate instead of a wait longer than any client's timeout."""
    body = json.dumps({"inputs": ["a" * 60]}).encode()
    with running(make_app(_Slow(), max_concurrent=1, max_waiting=10, max_waiting_bytes=2 * len(body))) as url:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = sorted(status for status, _ in pool.map(lambda _: post(url, body), range(6)))
        assert statuses.count(200) == 2 and statuses.count(503) == 4, statuses  # two bodies fit the line
        busy = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(post, url, body) for _ in range(2)]
            time.sleep(0.3)
            try:
                urllib.request.urlopen(busy, timeout=30)
                retry = None
            except urllib.error.HTTPError as err:
                retry = err.headers.get("Retry-After")
            [f.result() for f in futures]
        assert retry is not None and int(retry) >= 1  # estimated from the seconds per byte served so far
