"""jaxhash serve under concurrent requests, through a real uvicorn server on a loopback port:
searches that wait together are answered by one batched search, each answer (distances, ids,
tie order) equals the unbatched search's, and a request whose search fails fails alone."""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_image_index import index_of_codes

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from jaxhash import index_search, retrieval, serve
from jaxhash.multi_index import MultiIndex

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("serve_tool", ROOT / "tools" / "serve_screenshot.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

# 2-byte codes: 3,000 rows over 65,536 values, so most distances tie many times
CODES = np.random.default_rng(0).integers(0, 256, (3000, 2), np.uint8)
CODES[::7] = CODES[0]


class _PixelEncoder:
    """Stands in for the run's encoder: an upload's code is its first pixel's red and green."""

    bits, workdir, step = 16, "/run", 1

    def view(self, stream):
        with Image.open(stream) as image:
            return np.asarray(image.convert("RGB"))

    def encode_views(self, batches):
        return np.stack([views[0][0, 0, :2] for views in batches]).astype(np.uint8)


def _png(code) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (int(code[0]), int(code[1]), 0)).save(out, "PNG")
    return out.getvalue()


class _HoldFirstBatch:
    """The index's search (``fastest_searcher``), whose first batch waits until ``waiting``
    more queries are queued, so that they must be answered together; ``poison``: a code whose
    search raises."""

    def __init__(self, index, waiting: int, poison=None):
        self.inner = index_search.fastest_searcher(index)
        self.waiting, self.poison, self.sizes, self.app = waiting, poison, [], None
        self.held = threading.Event()

    def __call__(self, query, k):
        distances, ids = self.search_many(query[None], k)
        return distances[0], ids[0]

    def search_many(self, queries, k):
        self.sizes.append(len(queries))
        if len(self.sizes) == 1:
            self.held.set()
            deadline = time.monotonic() + 60
            while self.app.state.batcher._queue.qsize() < self.waiting:
                assert time.monotonic() < deadline, "the queries did not queue"
                time.sleep(0.005)
        if self.poison is not None and (queries == self.poison).all(axis=1).any():
            raise RuntimeError("a search that fails")
        return self.inner.search_many(queries, k)


def _run(url, requests):
    """Send ``requests`` ((method, path, body)) at once from one thread each: (status, JSON)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)

    def send(request):
        method, path, body = request
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            headers = {}
            if body is not None:
                boundary = "batchtest"
                headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
                body = (
                    (
                        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                        f'filename="q.png"\r\nContent-Type: image/png\r\n\r\n'
                    ).encode()
                    + body
                    + f"\r\n--{boundary}--\r\n".encode()
                )
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def _serve(search):
    index = index_of_codes(CODES, MultiIndex.build(CODES))
    app = serve.create_app(
        index, encoder=_PixelEncoder, search=search, limits=serve.Limits(max_k=100)
    )
    search.app = app
    return index, app


def _behind_a_held_search(url, search, requests):
    """One request whose search is held until ``requests``, sent at once, are queued: the
    answers to ``requests``."""
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_run, url, [("GET", "/api/neighbors/0?k=3", None)])
        assert search.held.wait(60)
        answers = _run(url, requests)
        assert first.result()[0][0] == 200
    return answers


def _wait_for_encoder(url):
    deadline = time.monotonic() + 60
    while _run(url, [("GET", "/api/info", None)])[0][1]["encoder"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_concurrent_searches_share_a_batch_and_answer_as_alone():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, len(CODES), 32)
    ks = rng.integers(1, 101, 40)
    uploads = rng.integers(0, 256, (8, 2), np.uint8)
    requests = [
        ("GET", f"/api/neighbors/{i}?k={k}", None) for i, k in zip(ids, ks[:32], strict=True)
    ]
    requests += [
        ("POST", f"/api/search?k={k}", _png(c)) for c, k in zip(uploads, ks[32:], strict=True)
    ]
    index = index_of_codes(CODES, MultiIndex.build(CODES))
    search = _HoldFirstBatch(index, waiting=len(requests))
    _, app = _serve(search)
    with tool.running(app) as url:
        _wait_for_encoder(url)
        answers = _behind_a_held_search(url, search, requests)
    assert search.sizes == [1, len(requests)]
    assert app.state.batcher.largest_batch == len(requests)

    queries = np.concatenate([CODES[ids], uploads])
    want_d, want_i = (np.asarray(a) for a in retrieval.hamming_topk(queries, CODES, 100))
    alone = index_search.ScanSearch(CODES, compiled=False)  # the unbatched path, one by one
    for q, ((status, answer), k) in enumerate(zip(answers, ks, strict=True)):
        assert status == 200, answer
        got_i = [r["id"] for r in answer["results"]]
        got_d = [r["distance"] for r in answer["results"]]
        assert answer["k"] == k and got_i == want_i[q, :k].tolist(), q
        assert got_d == want_d[q, :k].tolist(), q
        alone_d, alone_i = alone(queries[q], int(k))
        assert got_i == alone_i.tolist() and got_d == alone_d.tolist()
        assert [r["path"] for r in answer["results"]] == [f"img{i}.png" for i in got_i]
        assert 0 < answer["search_ms"] <= answer["query_ms"]


def test_a_failing_search_fails_only_its_own_request():
    poison = np.array([1, 2], np.uint8)
    rows = [int(i) for i in np.flatnonzero((CODES != poison).any(axis=1))[:20]]
    requests = [("GET", f"/api/neighbors/{i}?k=5", None) for i in rows]
    requests.append(("POST", "/api/search?k=5", _png(poison)))
    index = index_of_codes(CODES, MultiIndex.build(CODES))
    search = _HoldFirstBatch(index, waiting=len(requests), poison=poison)
    _, app = _serve(search)
    with tool.running(app) as url:
        _wait_for_encoder(url)
        answers = _behind_a_held_search(url, search, requests)
        assert _run(url, [("GET", "/api/neighbors/2?k=2", None)])[0][0] == 200  # still serving
    status, answer = answers[-1]
    assert status == 500 and list(answer) == ["error"]
    assert search.sizes[:2] == [1, len(requests)]  # the batch failed, then each alone
    want_d, want_i = retrieval.hamming_topk(CODES[rows], CODES, 5)
    for q, (status, answer) in enumerate(answers[:-1]):
        assert status == 200
        assert [r["id"] for r in answer["results"]] == np.asarray(want_i)[q].tolist()
        assert [r["distance"] for r in answer["results"]] == np.asarray(want_d)[q].tolist()
