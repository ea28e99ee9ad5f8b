"""``jaxhash serve``: a web page and JSON API to search an image index from a browser.

    jaxhash serve --index INDEX.npz [--workdir RUN] [--host 127.0.0.1] [--port 8000]
        [--max-upload-mb 20] [--max-megapixels 50] [--max-k 100] [--threads CORES]
        [--max-batch 64]

Starlette under uvicorn (the ``serve`` extra). The index, its search (:mod:`jaxhash.index_search`:
the multi-index or the scan, whichever answers a batch of the index's own codes faster) and the
run's encoder (:class:`jaxhash.image_index.Encoder`, warmed up on one blank image) are
loaded once at start, the encoder in a background thread (uploads answer 503 until it is
ready; the index is served in the meantime); then:

    GET  /                       the page (jaxhash/web/): drop an image, see its nearest images
    GET  /api/info               the index and run: names, size, code length, limits
    POST /api/search?k=10        multipart form, field "image": its k nearest indexed images
    GET  /api/neighbors/{id}?k=  the k nearest of indexed image ``id`` (itself included)
    GET  /thumb/{id}             a PNG thumbnail (at most THUMB_SIZE px a side) of image ``id``
    GET  /file/{path}            the indexed file at ``path`` (relative to the index's root)

Searches answer ``{"results": [{"id", "path", "distance"}], "k", "size", "query_ms",
"search_ms"}`` (distances in bits; ``query_ms``: the whole query, encoding included;
``search_ms``: the Hamming search, its wait for a batch included). Searches of concurrent
requests are coalesced (:mod:`jaxhash.query_batching`): the queries waiting while a search runs
are answered together by the next one, up to ``max_batch``, with the same answers as one search
each; a lone request is searched at once. Files are served only when the index lists them and
they resolve (symbolic links followed) inside the index's root. Every refusal is a 4xx with a
one-line body ``{"error": "..."}``; an unexpected failure is a 500 with a one-line body, its
traceback goes to the log. Each request is logged in one INFO line. Searches run in the
batching thread; uploads (decoding, encoding) and thumbnails in worker threads, at most
``threads`` at once (default: one per core), while the event loop keeps reading requests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxhash import console
from jaxhash.image_index import Encoder, ImageIndex, load_index
from jaxhash.index_search import SearchFn, batch_search, fastest_searcher
from jaxhash.query_batching import QueryBatcher

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
THUMB_SIZE = 256
_THUMB_CACHE = 512  # PNGs of at most THUMB_SIZE^2 RGB pixels: about 100 MB at worst


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a request may ask: upload bytes, decoded pixels, results per search."""

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 50_000_000
    max_k: int = 100
    default_k: int = 12


class ApiError(Exception):
    """A refused request: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _json_error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def parse_k(value: str | None, limits: Limits, size: int) -> int:
    """The ``k`` of a request (default ``limits.default_k``), at most the index size."""
    if value is None or value == "":
        return min(limits.default_k, size)
    try:
        k = int(value)
    except ValueError:
        raise ApiError(400, f"k must be an integer; got {value[:40]!r}.") from None
    if not 1 <= k <= limits.max_k:
        raise ApiError(400, f"k must be in [1, {limits.max_k}]; got {k}.")
    return min(k, size)


def check_image(data: bytes, limits: Limits) -> None:
    """Refuse (ApiError 400 / 413) bytes that are not one whole image of at most
    ``limits.max_pixels`` pixels; the size is read from the header, before decoding."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError(400, "the upload is empty: send an image file in the field 'image'.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ApiError(
                    413,
                    f"the image has {width} x {height} pixels; the limit is {limits.max_pixels:,}.",
                )
            image.load()
    except UnidentifiedImageError:
        raise ApiError(400, "the upload is not an image Pillow can read.") from None
    except Image.DecompressionBombError:
        raise ApiError(413, "the image has too many pixels.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ApiError(400, f"the image cannot be decoded: {error}".splitlines()[0]) from None


class _Service:
    """The loaded index, its batched search and encoder; the work behind each route.

    ``encoder``: an :class:`Encoder`, None, or a function that loads one, called in a
    background thread so that the index is served while the run loads (``encoder_state``
    "loading", then "ready" or the error)."""

    def __init__(self, index, index_name, batcher: QueryBatcher, encoder, limits):
        self.index, self.index_name, self.batcher, self.limits = index, index_name, batcher, limits
        self.root = Path(index.root).resolve()
        self.thumbnail = functools.lru_cache(_THUMB_CACHE)(self._thumbnail)
        self.encoder: Encoder | None = None
        self.encoder_state = "none"
        if isinstance(encoder, Encoder):
            self.attach(encoder)
        elif encoder is not None:
            self.encoder_state = "loading"
            threading.Thread(target=self._load, args=(encoder,), daemon=True).start()

    def attach(self, encoder: Encoder) -> None:
        if encoder.bits != self.index.bits:
            raise ValueError(
                f"the index holds {self.index.bits}-bit codes but run {encoder.workdir} makes "
                f"{encoder.bits}-bit codes: serve it with the run that built it "
                f"({self.index.run})."
            )
        self.encoder, self.encoder_state = encoder, "ready"

    def _load(self, load_encoder) -> None:
        started = time.perf_counter()
        try:
            self.attach(load_encoder())
        except Exception as error:  # any failure: keep serving the index, say why uploads fail
            self.encoder_state = f"failed: {console.one_line(error)}"
            log.error("the run's encoder did not load (uploads answer 503): %s", error)
            return
        log.info(
            "encoder of %s (step %d) ready in %.1f s: uploads are on",
            self.encoder.workdir,
            self.encoder.step,
            time.perf_counter() - started,
        )

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        """Indexed path -> id (built on the first request by path)."""
        return {str(p): i for i, p in enumerate(self.index.paths)}

    def info(self) -> dict:
        index, encoder = self.index, self.encoder
        return {
            "index": self.index_name,
            "run": encoder.workdir if encoder else index.run,
            "step": encoder.step if encoder else index.step,
            "bits": index.bits,
            "size": len(index),
            "root": index.root,
            "search": encoder is not None,
            "encoder": self.encoder_state,
            "max_k": self.limits.max_k,
            "default_k": min(self.limits.default_k, len(index)),
            "max_upload_bytes": self.limits.max_upload_bytes,
        }

    def image_id(self, value: str) -> int:
        try:
            i = int(value)
        except ValueError:
            raise ApiError(404, f"no image with id {value[:40]!r}: ids are integers.") from None
        if not 0 <= i < len(self.index):
            raise ApiError(404, f"no image with id {i}: ids are 0 to {len(self.index) - 1}.")
        return i

    async def results(self, code: np.ndarray, k: int, started: float, **extra) -> dict:
        """The answer to a search for ``code``: its ``k`` nearest (batched with the searches
        that wait beside it); ``started``: when the request's work began."""
        t0 = time.perf_counter()
        distances, ids = await self.batcher.search(code, k)
        done = time.perf_counter()
        paths = self.index.paths
        return {
            **extra,
            "k": k,
            "size": len(self.index),
            "results": [
                {"id": int(i), "path": str(paths[i]), "distance": int(d)}
                for i, d in zip(ids, distances, strict=True)
            ],
            "search_ms": round(1e3 * (done - t0), 3),
            "query_ms": round(1e3 * (done - started), 3),
        }

    async def neighbors(self, i: int, k: int) -> dict:
        started = time.perf_counter()
        return await self.results(self.index.codes[i], k, started, query={"id": i})

    def encode_upload(self, data: bytes) -> np.ndarray:
        """The packed code of an uploaded image (ApiError 503 without an encoder, 400 / 413
        for bytes that are not one image within the limits)."""
        if self.encoder is None:
            if self.encoder_state == "loading":
                raise ApiError(503, "the run's encoder is still loading: try again in seconds.")
            if self.encoder_state.startswith("failed"):
                reason = self.encoder_state.removeprefix("failed: ")
                raise ApiError(503, f"this server cannot encode uploads: {reason}")
            raise ApiError(503, "this server has no encoder: start it with --workdir RUN.")
        check_image(data, self.limits)
        try:
            view = self.encoder.view(io.BytesIO(data))
        except ValueError as error:
            raise ApiError(400, "the image cannot be decoded.") from error
        return self.encoder.encode_views([view[None]])[0]

    def file(self, i: int) -> Path:
        """The absolute path of image ``i`` if it lies inside the root (ApiError 404 else)."""
        path = (self.root / str(self.index.paths[i])).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise ApiError(404, f"image {i} is not a file inside the index's root.")
        return path

    def _thumbnail(self, i: int) -> bytes:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.file(i)) as image:
                image.thumbnail((THUMB_SIZE, THUMB_SIZE))
                out = io.BytesIO()
                image.convert("RGB").save(out, "PNG")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise ApiError(404, f"image {i} can no longer be read.") from None
        return out.getvalue()


def _web_file(name: str):
    from starlette.responses import FileResponse

    return FileResponse(WEB_DIR / name)


def create_app(
    index: ImageIndex,
    *,
    encoder: Encoder | Callable[[], Encoder] | None = None,
    search: SearchFn | None = None,
    limits: Limits = Limits(),
    index_name: str = "index",
    threads: int | None = None,
    max_batch: int = 64,
):
    """The Starlette application over ``index`` (see the module docstring).

    ``encoder``: encodes uploads (None: ``/api/search`` answers 503); its code length must be
    the index's. A function returning one is run in a background thread: until it returns,
    uploads answer 503 and everything else works. ``search``: default
    :func:`jaxhash.index_search.fastest_searcher` of the index (timed at start).
    ``threads``: uploads and thumbnails computed at once (default: one per CPU core; more only
    queue on the GIL and lengthen the slowest answers). ``max_batch``: the most concurrent
    searches answered by one batched search (1: each alone).
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    search = search or fastest_searcher(index, k=min(limits.default_k, len(index)))
    width = int(np.shape(index.codes)[1])
    batcher = QueryBatcher(batch_search(search), width=width, size=len(index), max_batch=max_batch)
    service = _Service(index, index_name, batcher, encoder, limits)
    workers = anyio.CapacityLimiter(threads or os.cpu_count() or 2)

    async def in_worker(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=workers)

    async def page(request):
        return _web_file("index.html")

    async def info(request):
        return JSONResponse(service.info())

    async def neighbors(request):
        i = service.image_id(request.path_params["id"])
        k = parse_k(request.query_params.get("k"), limits, len(index))
        return JSONResponse(await service.neighbors(i, k))

    async def search(request):
        k = parse_k(request.query_params.get("k"), limits, len(index))
        data, name = await _read_upload(request)
        started = time.perf_counter()
        code = await in_worker(service.encode_upload, data)
        return JSONResponse(await service.results(code, k, started, query={"name": name}))

    async def _read_upload(request) -> tuple[bytes, str]:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "send the image as multipart/form-data in the field 'image'.")
        cap = limits.max_upload_bytes + 64 * 1024  # room for the form's own headers
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ApiError(413, f"the upload is over {limits.max_upload_bytes:,} bytes.")

        async def capped():
            total = 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > cap:
                    raise ApiError(413, f"the upload is over {limits.max_upload_bytes:,} bytes.")
                yield chunk

        try:
            form = await MultiPartParser(request.headers, capped(), max_files=1).parse()
        except MultiPartException as error:
            raise ApiError(400, f"bad multipart form: {error.message}") from None
        try:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "send the image as a file in the form field 'image'.")
            data = await upload.read()
            if len(data) > limits.max_upload_bytes:
                raise ApiError(413, f"the upload is over {limits.max_upload_bytes:,} bytes.")
            return data, Path(upload.filename or "upload").name
        finally:
            await form.close()

    async def thumb(request):
        i = service.image_id(request.path_params["id"])
        data = await in_worker(service.thumbnail, i)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def indexed_file(request):
        from starlette.responses import FileResponse

        i = service.ids.get(request.path_params["path"])
        if i is None:
            raise ApiError(404, "no indexed file at that path.")
        return FileResponse(service.file(i))

    async def api_error(request, error: ApiError):
        return _json_error(error.status, error.message)

    async def http_error(request, error: HTTPException):
        return _json_error(error.status_code, str(error.detail))

    async def server_error(request, error: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _json_error(500, "internal error: see the server's log.")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await anyio.to_thread.run_sync(batcher.close)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/", page),
            Route("/api/info", info),
            Route("/api/search", search, methods=["POST"]),
            Route("/api/neighbors/{id}", neighbors),
            Route("/thumb/{id}", thumb),
            Route("/file/{path:path}", indexed_file),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
        ],
        middleware=[Middleware(_RequestLog)],
        exception_handlers={ApiError: api_error, HTTPException: http_error, 500: server_error},
    )
    app.state.batcher = batcher  # its batch counts, for logs and tests
    return app


class _RequestLog:
    """ASGI middleware: one INFO line per request, ``METHOD path status milliseconds``,
    written before the response's last bytes go out."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, state = time.perf_counter(), {"status": 500, "logged": False}

        def write():
            state["logged"] = True
            milliseconds = 1e3 * (time.perf_counter() - started)
            log.info(
                "%s %s %d %.1f ms", scope["method"], scope["path"], state["status"], milliseconds
            )

        async def logging_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                write()
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            if not state["logged"]:
                write()


def warm_encoder(workdir: str | os.PathLike) -> Encoder:
    """``Encoder(workdir)`` after one upload's path (decode, crop, resize, encode) has run, so
    that the first request does not compile."""
    from PIL import Image

    encoder = Encoder(workdir)
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(blank, "PNG")
    encoder.encode_views([encoder.view(blank)[None]])
    return encoder


def load_service(
    index_path: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    *,
    limits: Limits = Limits(),
    threads: int | None = None,
    max_batch: int = 64,
    background: bool = False,
    freeze_gc: bool = False,
):
    """The application of :func:`create_app` for an index file and its run (default: the run
    that built it), warmed up (:func:`warm_encoder`); with ``background`` the run loads in a
    background thread while the index is already served. ``freeze_gc``: for a process that
    only serves, :func:`gc.freeze` once the index is served and again once the run is
    loaded (see :func:`serve`)."""
    index = load_index(index_path)
    load_encoder = functools.partial(warm_encoder, workdir or index.run)
    if freeze_gc:
        load_encoder = _then_freeze_gc(load_encoder)
    encoder = load_encoder if background else load_encoder()
    name = Path(index_path).name
    app = create_app(
        index,
        encoder=encoder,
        limits=limits,
        index_name=name,
        threads=threads,
        max_batch=max_batch,
    )
    if freeze_gc:
        gc.freeze()
    return app


def _then_freeze_gc(load: Callable[[], Encoder]) -> Callable[[], Encoder]:
    """``load``, then :func:`gc.freeze` of everything alive (the run's model, TensorFlow)."""

    def load_and_freeze() -> Encoder:
        encoder = load()
        gc.freeze()
        return encoder

    return load_and_freeze


def serve(
    index_path: str | os.PathLike,
    *,
    workdir: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = Limits(),
    threads: int | None = None,
    max_batch: int = 64,
) -> None:
    """Load the index, then serve until interrupted (uvicorn); the run's encoder loads in the
    background meanwhile (uploads answer 503 until it is ready, a few seconds).

    What is loaded is then frozen out of the cyclic garbage collector (:func:`gc.freeze`):
    otherwise each full collection walks the hundreds of thousands of objects of JAX,
    TensorFlow and the encoder, and no request is answered meanwhile (under load, full
    collections of about a second stalled every request in flight; benchmarks/RESULTS.md).
    Requests' own objects are still collected."""
    try:
        import multipart  # noqa: F401  (python-multipart, for uploads)
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as error:
        raise ValueError(
            f'{error}; install the serve extra: pip install "jaxhash[serve]"'
        ) from None

    started = time.perf_counter()
    app = load_service(
        index_path,
        workdir,
        limits=limits,
        threads=threads,
        max_batch=max_batch,
        background=True,
        freeze_gc=True,
    )
    log.info(
        "serving %s at http://%s:%d (index ready in %.1f s, the run loading; Ctrl-C stops)",
        Path(index_path).name,
        host,
        port,
        time.perf_counter() - started,
    )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


__all__ = [
    "THUMB_SIZE",
    "ApiError",
    "Limits",
    "check_image",
    "create_app",
    "load_service",
    "parse_k",
    "serve",
    "warm_encoder",
]
