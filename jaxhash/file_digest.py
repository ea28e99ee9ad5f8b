"""The sha256 of a file's bytes, read in blocks: data archives' checks and checkpoints'
checksums use the same one."""

from __future__ import annotations

import hashlib
import os


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """Hex sha256 prefix of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
