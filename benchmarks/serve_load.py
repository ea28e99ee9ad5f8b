"""``jaxhash serve`` under load: many concurrent local clients, a fixed number of requests.

    python -m benchmarks.serve_load            # 10^6 random 64-bit codes; 1, 8 and 64 clients
    python -m benchmarks.serve_load --quick    # 10^4 codes, 8 clients, a few hundred requests
    python -m benchmarks.serve_load --workdir RUN --codes 100000 --clients 16
    python -m benchmarks.serve_load --max-batch 1   # the server without coalescing

Builds an index-like file of random codes (fake paths; the bits of the run), starts the real
command ``python -m jaxhash serve`` on a free port of 127.0.0.1 (and only there), waits for it,
then sends a warm-up, ``--neighbors`` requests ``GET /api/neighbors/{random id}?k=10`` and
``--searches`` uploads ``POST /api/search?k=10`` (64 x 64 PNGs) at each level of ``--clients``
asyncio clients on keep-alive connections, closed-loop (a client sends its next request when
its answer is in), and stops the server. The encoding run is ``--workdir`` or, by default, the
quick demo trained for a few steps at ``--bits`` into a temporary folder.

One JSON line per endpoint and level: requests/s, p50/p99 latency (client side: request sent
to answer read), errors (non-200 answers and failed connections), the server's resident memory
(VmRSS) when ready and before and after the level, the CPU time per request of the server (all
its threads) and of the clients, and the shapes. The CPU times hardly depend on other work on
the machine, unlike the latencies: on a busy machine they say what the same run would cost
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit

HOST = "127.0.0.1"  # load is only ever sent to this machine
ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train_quick_run(workdir: Path, bits: int) -> Path:
    """The quick demo config at ``bits`` bits, trained for its few steps into ``workdir``."""
    from jaxhash import train
    from jaxhash.config import demo_config

    config = demo_config("quick")
    config.model.bits = bits
    config.data.data_dir = str(workdir.parent / "tfds")
    config.eval.at_end = False
    train.run(config, workdir, progress=False)
    return workdir


def random_index(out: Path, run: Path, codes: int, bits: int, seed: int = 0) -> Path:
    """An index file of ``codes`` random ``bits``-bit codes with fake paths ``img/NNNNNNN.png``."""
    from jaxhash.image_index import ImageIndex, save_index

    rng = np.random.default_rng(seed)
    index = ImageIndex(
        codes=rng.integers(0, 256, (codes, -(-bits // 8)), np.uint8),
        paths=np.char.add(
            np.char.add("img/", np.char.zfill(np.arange(codes).astype(str), 7)), ".png"
        ),
        root=str(out.parent / "images"),
        bits=bits,
        run=str(run),
        step=0,
        fingerprint="random",
    )
    return save_index(index, out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(
    index: Path, run: Path, port: int, log: Path, max_batch: int | None = None
) -> subprocess.Popen:
    """``python -m jaxhash serve`` on ``HOST:port`` (``--max-batch`` when given), its output to
    ``log``; waits until it answers and its encoder is loaded (at most 5 minutes)."""
    command = [sys.executable, "-m", "jaxhash", "serve", "--index", str(index)]
    command += ["--workdir", str(run), "--host", HOST, "--port", str(port)]
    if max_batch is not None:
        command += ["--max-batch", str(max_batch)]
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            status, body = asyncio.run(_one(port, _get("/api/info")))
        except OSError:
            time.sleep(0.2)
            continue
        encoder = json.loads(body)["encoder"] if status == 200 else "loading"
        if encoder == "ready":
            return server
        if encoder != "loading":
            server.kill()
            raise RuntimeError(f"the server's encoder did not load: {encoder}")
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not answer within 5 minutes")


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def _upload(path: str, data: bytes) -> bytes:
    boundary = "jaxhashloadtest"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection and read its answer: (status, body)."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return int(status_line.split()[1]), body


async def _one(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        return await _exchange(reader, writer, request)
    finally:
        writer.close()


async def load(port: int, requests: list[bytes], clients: int) -> tuple[list[float], int, float]:
    """Send ``requests`` from ``clients`` closed-loop clients; (latencies in ms of the
    answered 200s, errors, wall seconds)."""
    queue = iter(requests)
    latencies: list[float] = []
    errors = 0

    async def client():
        nonlocal errors
        reader = writer = None
        for request in queue:
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                status, _ = await _exchange(reader, writer, request)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if status == 200:
                latencies.append(1e3 * (time.perf_counter() - started))
            else:
                errors += 1
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def query_png(size: int = 64, seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _row(endpoint, shape, latencies, errors, seconds, rss_before, rss_after, rss_start, cpu):
    lat = np.asarray(latencies) if latencies else np.full(1, np.nan)
    server_cpu, client_cpu = cpu
    p50 = float(np.percentile(lat, 50))
    return emit(
        "serve_load",
        endpoint,
        shape,
        p50,
        None,
        None,
        requests_per_s=round(shape["requests"] / seconds, 1),
        p50_ms=round(p50, 2),
        p99_ms=round(float(np.percentile(lat, 99)), 2),
        max_ms=round(float(lat.max()), 2),
        errors=errors,
        rss_start_mb=round(rss_start, 1),
        rss_before_mb=round(rss_before, 1),
        rss_after_mb=round(rss_after, 1),
        server_cpu_ms_per_request=round(1e3 * server_cpu / shape["requests"], 3),
        client_cpu_ms_per_request=round(1e3 * client_cpu / shape["requests"], 3),
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^4 codes, 8 clients, seconds")
    parser.add_argument("--codes", type=int, default=None, help="index size (default 10^6)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument(
        "--clients", type=int, nargs="+", default=None, help="concurrent clients (1 8 64)"
    )
    parser.add_argument("--neighbors", type=int, default=None, help="requests a level (10,000)")
    parser.add_argument("--searches", type=int, default=None, help="uploads a level (1,000)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workdir", default=None, help="encoding run (default: quick demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-batch", type=int, default=None, help="the server's --max-batch (its default)"
    )
    args = parser.parse_args(argv)
    sizes = (10**4, [8], 400, 40) if args.quick else (10**6, [1, 8, 64], 10_000, 1_000)
    codes, levels, neighbors, searches = (
        given if given is not None else default
        for given, default in zip(
            (args.codes, args.clients, args.neighbors, args.searches), sizes, strict=True
        )
    )
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxhash-serve-load-") as tmp:
        tmp = Path(tmp)
        run = Path(args.workdir) if args.workdir else train_quick_run(tmp / "run", args.bits)
        index = random_index(tmp / "load.npz", run, codes, args.bits, args.seed)
        port = free_port()
        server = start_server(index, run, port, tmp / "server.log", args.max_batch)
        try:
            rss_start = rss_mb(server.pid)
            most = max(levels)
            warmup = [_get(f"/api/neighbors/{rng.randrange(codes)}?k={args.k}")] * 2 * most
            warmup += [_upload(f"/api/search?k={args.k}", query_png())] * most
            asyncio.run(load(port, warmup, most))
            for endpoint, count in (("neighbors", neighbors), ("search", searches)):
                for clients in levels:
                    if endpoint == "neighbors":
                        ids = [rng.randrange(codes) for _ in range(count)]
                        requests = [_get(f"/api/neighbors/{i}?k={args.k}") for i in ids]
                    else:
                        pngs = [query_png(seed=i) for i in range(16)]
                        requests = [
                            _upload(f"/api/search?k={args.k}", pngs[i % 16]) for i in range(count)
                        ]
                    rss_before = rss_mb(server.pid)
                    server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                    measured = asyncio.run(load(port, requests, clients))
                    cpu = (
                        cpu_seconds(server.pid) - server_cpu,
                        time.process_time() - client_cpu,
                    )
                    shape = {"codes": codes, "bits": args.bits, "k": args.k}
                    shape |= {"clients": clients, "requests": count}
                    if args.max_batch is not None:
                        shape["max_batch"] = args.max_batch
                    rss_after = rss_mb(server.pid)
                    rows.append(
                        _row(endpoint, shape, *measured, rss_before, rss_after, rss_start, cpu)
                    )
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    return rows


if __name__ == "__main__":
    main()
