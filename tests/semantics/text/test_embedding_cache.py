"""The on-disk embedding cache (jaxhash.semantics.text.cache)."""

import threading

import numpy as np

from jaxhash.semantics.text import cache


def test_cache_writes_are_atomic(tmp_path):
    """Concurrent writers and readers of one key: a reader sees nothing or a whole vector."""
    path = tmp_path / "ab" / "key.npy"
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    seen: list = []
    stop = threading.Event()

    def write():
        for _ in range(200):
            cache.write_cached(path, vector)

    def read():
        while not stop.is_set():
            seen.append(cache.read_cached(path, 384))

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write) for _ in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert any(v is not None for v in seen)
    assert all(v is None or np.array_equal(v, vector) for v in seen)
    assert [p.name for p in path.parent.iterdir()] == ["key.npy"]
    assert cache.read_cached(tmp_path / "absent.npy", 384) is None
    path.write_bytes(b"not a npy file")
    assert cache.read_cached(path, 384) is None
