"""jaxhash.serve and jaxhash.index_search: the JSON API through a real uvicorn server on a
loopback port, hostile requests, the page in headless Chromium (skipped, saying why, without
one), over an index of rendered synthetic images made by a briefly trained quick demo run."""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import io
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from jaxhash import cli, image_index, index_search, retrieval, serve
from jaxhash.data import synthetic

ROOT = Path(__file__).resolve().parents[1]
SECRET = "top secret, outside the root"
LIMITS = serve.Limits(max_upload_bytes=300_000, max_pixels=1_000_000, max_k=50, default_k=8)


def _tool():
    spec = importlib.util.spec_from_file_location(
        "serve_screenshot", ROOT / "tools" / "serve_screenshot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _tool()


@pytest.fixture(scope="module")
def indexed(quick_run, tmp_path_factory):
    """(encoder, index, image folder): 20 rendered images (64 px PNGs in class folders), a
    symbolic link in the folder to an image outside it, and a secret file beside the folder,
    indexed with the shared quick run."""
    workdir = quick_run[0]
    encoder = image_index.Encoder(workdir)

    base = tmp_path_factory.mktemp("photos")
    folder = base / "images"
    labels = np.arange(20) % 5 * 13
    for i, (pixels, label) in enumerate(
        zip(synthetic.render(labels, seed=3).images, labels, strict=True)
    ):
        target = folder / synthetic.class_names()[label].replace("/", "-")
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).resize((64, 64)).save(target / f"{i:02d}.png")
    (base / "secret.txt").write_text(SECRET)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(base / "outside.png")
    (folder / "zz_link.png").symlink_to(base / "outside.png")
    index, _ = image_index.build_index(workdir, folder, base / "index.npz", encoder=encoder)
    return encoder, index, folder


@pytest.fixture(scope="module")
def server(indexed):
    """The URL of a uvicorn server over the index (small limits), stopped after the module."""
    encoder, index, _ = indexed
    app = serve.create_app(index, encoder=encoder, limits=LIMITS, index_name="index.npz")
    with tool.running(app) as url:
        yield url


def _request(url: str, method: str, path: str, body=None, headers=None):
    """(status, content type, body) of one request, ``path`` sent exactly as given; a list
    ``body`` is sent in chunks (no Content-Length)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        chunked = isinstance(body, list)
        connection.request(
            method,
            path,
            body=iter(body) if chunked else body,
            headers=headers or {},
            encode_chunked=chunked,
        )
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def _multipart(data: bytes, field: str = "image", name: str = "query.png"):
    """(body, headers) of a multipart/form-data upload of ``data``."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _chunks(body: bytes, headers: dict, size: int = 32_768):
    """``body`` as a list of chunks (sent without a Content-Length), and ``headers``."""
    return [body[i : i + size] for i in range(0, len(body), size)], headers


def _png(pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _json(url, method, path, body=None, headers=None):
    status, kind, data = _request(url, method, path, body, headers)
    assert kind.startswith("application/json"), (status, kind, data[:200])
    return status, json.loads(data)


@pytest.mark.slow
def test_scan_search_is_hamming_topk():
    """The server's search equals retrieval.hamming_topk: widths of 1 to 9 bytes, many ties."""
    rng = np.random.default_rng(0)
    for rows, width, k in [(1, 1, 1), (300, 1, 7), (500, 2, 40), (257, 8, 256), (400, 9, 13)]:
        codes = rng.integers(0, 256, (rows, width), np.uint8)
        codes[::5] = codes[0]  # ties: every fifth row is row 0
        search = index_search.ScanSearch(codes)
        want_d, want_i = retrieval.hamming_topk(codes[:4], codes, k)
        for q in range(min(4, rows)):
            distances, ids = search(codes[q], k)
            np.testing.assert_array_equal(distances, np.asarray(want_d)[q])
            np.testing.assert_array_equal(ids, np.asarray(want_i)[q])
    with pytest.raises(ValueError, match=r"k must be in \[1, 300\]"):
        index_search.ScanSearch(codes[:300, :1])(codes[0, :1], 301)


@pytest.mark.slow
def test_search_and_neighbors_answer_the_index(indexed, server, caplog):
    encoder, index, _ = indexed
    status, info = _json(server, "GET", "/api/info")
    assert status == 200 and info["size"] == len(index) == 21 and info["bits"] == 16
    assert info["index"] == "index.npz" and info["run"] == encoder.workdir and info["search"]

    query = index.file(4)
    view = encoder.view(query)
    want_d, want_i = retrieval.hamming_topk(encoder.encode_views([view[None]]), index.codes, 6)
    with caplog.at_level(logging.INFO, logger="jaxhash.serve"):
        status, answer = _json(server, "POST", "/api/search?k=6", *_multipart(query.read_bytes()))
    assert status == 200 and answer["k"] == 6 and answer["query"] == {"name": "query.png"}
    assert [r["id"] for r in answer["results"]] == np.asarray(want_i)[0].tolist()
    assert [r["distance"] for r in answer["results"]] == np.asarray(want_d)[0].tolist()
    assert [r["path"] for r in answer["results"]] == [
        str(index.paths[r["id"]]) for r in answer["results"]
    ]
    assert 4 in [r["id"] for r in answer["results"] if r["distance"] == 0]
    assert 0 < answer["search_ms"] <= answer["query_ms"]
    assert any(
        r.name == "jaxhash.serve" and r.getMessage().startswith("POST /api/search 200 ")
        for r in caplog.records
    )

    status, answer = _json(server, "GET", "/api/neighbors/7?k=50")  # k lowered to the size
    want_d, want_i = retrieval.hamming_topk(index.codes[7:8], index.codes, len(index))
    assert status == 200 and answer["k"] == len(index) and answer["query"] == {"id": 7}
    assert [r["id"] for r in answer["results"]] == np.asarray(want_i)[0].tolist()
    assert [r["distance"] for r in answer["results"]] == np.asarray(want_d)[0].tolist()
    status, answer = _json(server, "GET", "/api/neighbors/7")
    assert len(answer["results"]) == LIMITS.default_k


def test_thumbnails_files_and_page(indexed, server):
    _, index, _ = indexed
    status, kind, data = _request(server, "GET", "/thumb/3")
    assert status == 200 and kind == "image/png"
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.size == (64, 64)  # small images are not enlarged
    path = str(index.paths[3])
    status, _, data = _request(server, "GET", f"/file/{path}")
    assert status == 200 and data == index.file(3).read_bytes()
    status, kind, page = _request(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b"/static/app.js" in page
    for name in ("app.js", "style.css"):
        assert _request(server, "GET", f"/static/{name}")[0] == 200
    assert b"http" not in page.replace(b"http-equiv", b"")  # nothing from elsewhere


def _hostile_requests(index):
    """(name, method, path, body, headers, status) of requests the server must refuse."""
    link = int(np.flatnonzero(index.paths == "zz_link.png")[0])
    noise = np.random.default_rng(1).integers(0, 256, (200, 200, 3))
    truncated = _png(noise)[:3000]
    big_pixels = io.BytesIO()
    Image.new("L", (1100, 1000)).save(big_pixels, "PNG")  # 1.1 Mpx, a few kB
    cases = [
        ("not an image", "POST", "/api/search", *_multipart(b"hello, world\n" * 10), 400),
        ("truncated image", "POST", "/api/search", *_multipart(truncated), 400),
        ("empty upload", "POST", "/api/search", *_multipart(b""), 400),
        ("too many bytes", "POST", "/api/search", *_multipart(b"\0" * 400_000), 413),
        (
            "too many bytes, chunked",
            "POST",
            "/api/search",
            *_chunks(*_multipart(b"\0" * 400_000)),
            413,
        ),
        ("too many pixels", "POST", "/api/search", *_multipart(big_pixels.getvalue()), 413),
        ("wrong field", "POST", "/api/search", *_multipart(_png(noise), field="file"), 400),
        ("not multipart", "POST", "/api/search", _png(noise), {"Content-Type": "image/png"}, 400),
        (
            "broken multipart",
            "POST",
            "/api/search",
            b"--x\r\ngarbage",
            {"Content-Type": "multipart/form-data; boundary=x"},
            400,
        ),
        ("unknown id", "GET", "/api/neighbors/21", None, None, 404),
        ("negative id", "GET", "/api/neighbors/-1", None, None, 404),
        ("id not a number", "GET", "/api/neighbors/abc", None, None, 404),
        ("k = 0", "GET", "/api/neighbors/1?k=0", None, None, 400),
        ("k < 0", "GET", "/api/neighbors/1?k=-3", None, None, 400),
        ("k over the cap", "GET", "/api/neighbors/1?k=51", None, None, 400),
        ("k not a number", "GET", "/api/neighbors/1?k=1e3", None, None, 400),
        ("k over the cap, upload", "POST", "/api/search?k=1000", *_multipart(_png(noise)), 400),
        ("thumb of unknown id", "GET", "/thumb/999", None, None, 404),
        ("thumb of a link out", "GET", f"/thumb/{link}", None, None, 404),
        ("file by a link out", "GET", "/file/zz_link.png", None, None, 404),
        ("dot-dot", "GET", "/file/../secret.txt", None, None, 404),
        ("dot-dot deeper", "GET", "/file/box-red-solid/../../secret.txt", None, None, 404),
        ("absolute path", "GET", "/file//etc/passwd", None, None, 404),
        ("encoded dot-dot", "GET", "/file/%2e%2e/secret.txt", None, None, 404),
        ("encoded slash", "GET", "/file/..%2fsecret.txt", None, None, 404),
        ("double-encoded", "GET", "/file/%252e%252e%252fsecret.txt", None, None, 404),
        ("encoded absolute", "GET", "/file/%2Fetc%2Fpasswd", None, None, 404),
        ("static dot-dot", "GET", "/static/../serve.py", None, None, 404),
        ("static encoded", "GET", "/static/%2e%2e/serve.py", None, None, 404),
        ("unknown route", "GET", "/nowhere", None, None, 404),
        ("wrong method", "GET", "/api/search", None, None, 405),
    ]
    return cases


def test_hostile_requests_are_one_line_json_4xx(indexed, server):
    _, index, _ = indexed
    for name, method, path, body, headers, want in _hostile_requests(index):
        status, kind, data = _request(server, method, path, body, headers)
        assert status == want, (name, status, data[:300])
        assert kind.startswith("application/json"), (name, kind)
        assert list(json.loads(data)) == ["error"] and b"\n" not in data, (name, data)
        assert b"Traceback" not in data and SECRET.encode() not in data and b"root:" not in data
    # the server still answers
    assert _json(server, "GET", "/api/neighbors/0?k=1")[0] == 200


def test_serve_command_passes_its_flags(monkeypatch):
    calls = []
    monkeypatch.setattr(serve, "serve", lambda index, **kw: calls.append((index, kw)))
    flags = ["--index", "i.npz", "--port", "9000", "--max-upload-mb", "1", "--max-k", "20"]
    flags += ["--threads", "3"]
    assert cli.main(["serve", *flags]) == 0
    ((index, kw),) = calls
    assert index == "i.npz" and kw["host"] == "127.0.0.1" and kw["port"] == 9000
    assert kw["threads"] == 3 and kw["workdir"] is None
    assert kw["limits"] == serve.Limits(max_upload_bytes=2**20, max_k=20)


@pytest.mark.slow
def test_page_in_a_headless_browser(indexed, server, tmp_path):
    """Load the page, upload an indexed image, see the grid, click a result: its neighbours."""
    reason = tool.browser_missing()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    _, index, _ = indexed
    driver = tool.chromium()
    try:
        seen = tool.walk_through(driver, server, index.file(2), tmp_path / "page.png")
    finally:
        driver.quit()
    assert "index.npz: 21 images, 16-bit codes" in seen["about"]
    assert len(seen["uploaded"]) == LIMITS.default_k
    name = index.file(2).name
    assert seen["upload_status"].startswith(f"{name}: 8 nearest of 21 in "), seen
    assert 2 in [i for i, distance, _ in seen["uploaded"] if distance == "0 bits"]
    _, want = retrieval.hamming_topk(index.codes[seen["clicked_id"]][None], index.codes, 8)
    assert [i for i, _, _ in seen["clicked"]] == np.asarray(want)[0].tolist()
    assert [p for _, _, p in seen["clicked"]] == [str(index.paths[i]) for i in np.asarray(want)[0]]
    data = (tmp_path / "page.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_load_benchmark_counts_answers_and_errors(indexed, server):
    """benchmarks/serve_load.py's clients: every request answered once, non-200s as errors."""
    from benchmarks import serve_load

    port = urlsplit(server).port
    good = [serve_load._get(f"/api/neighbors/{i % 21}?k=3") for i in range(40)]
    bad = [serve_load._get("/api/neighbors/99"), serve_load._get("/api/neighbors/1?k=0")]
    uploads = [serve_load._upload("/api/search?k=2", serve_load.query_png(32))] * 3
    latencies, errors, seconds = asyncio.run(serve_load.load(port, good + bad + uploads, 4))
    assert len(latencies) == 43 and errors == 2 and seconds > 0
    assert all(ms > 0 for ms in latencies)


def test_encoder_loading_in_the_background(indexed):
    """Until the loader returns, uploads answer 503 and the index is served; a loader that
    fails leaves uploads off with its reason."""
    encoder, index, _ = indexed
    release = threading.Event()

    def slow_loader():
        release.wait(60)
        return encoder

    def failing_loader():
        raise ValueError("run folder /nowhere has no checkpoint")

    upload = _multipart(index.file(0).read_bytes())
    app = serve.create_app(index, encoder=slow_loader, limits=LIMITS)
    with tool.running(app) as url:
        assert _json(url, "GET", "/api/info")[1]["encoder"] == "loading"
        status, answer = _json(url, "POST", "/api/search", *upload)
        assert status == 503 and "still loading" in answer["error"]
        assert _json(url, "GET", "/api/neighbors/0")[0] == 200
        release.set()
        deadline = time.monotonic() + 60
        while _json(url, "GET", "/api/info")[1]["encoder"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _json(url, "GET", "/api/info")[1]["search"] is True
        assert _json(url, "POST", "/api/search", *upload)[0] == 200

    app = serve.create_app(index, encoder=failing_loader, limits=LIMITS)
    with tool.running(app) as url:
        deadline = time.monotonic() + 60
        while (state := _json(url, "GET", "/api/info")[1]["encoder"]) == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state == "failed: run folder /nowhere has no checkpoint"
        status, answer = _json(url, "POST", "/api/search", *upload)
        assert status == 503 and "/nowhere has no checkpoint" in answer["error"]
