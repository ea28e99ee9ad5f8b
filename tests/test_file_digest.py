"""jaxhash.file_digest: the sha256 prefix of a file's bytes equals hashlib's over the whole
file, across several 1 MiB blocks."""

import hashlib

import numpy as np

from jaxhash.file_digest import file_digest


def test_digest_equals_hashlib_across_blocks(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (1 << 20) * 2 + 123, np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert file_digest(path) == want[:12]
    assert file_digest(path, length=64) == want
