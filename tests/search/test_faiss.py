"""jaxhash.search.faiss: the FAISS bridge finds the same neighbours, and says how to install
FAISS."""

import numpy as np
import pytest

from jaxhash import retrieval
from tests.search.topk_oracles import packed_hamming, random_packed


def test_faiss_bridge_agrees():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(10)
    database = random_packed(rng, 2000, 8, 256)
    queries = random_packed(rng, 25, 8, 256)
    index = retrieval.faiss_index(database)
    assert isinstance(index, faiss.IndexBinaryFlat) and index.ntotal == 2000
    f_dist, f_idx = index.search(queries, 30)
    dist, idx = (np.asarray(a) for a in retrieval.hamming_topk(queries, database, 30))
    np.testing.assert_array_equal(f_dist, dist)
    full = packed_hamming(queries, database)
    for q in range(len(queries)):
        # Same neighbours up to the order inside a distance; the last distance's group may be
        # cut at a different member, but every member FAISS returns is at that distance.
        inner = dist[q] < dist[q, -1]
        assert set(f_idx[q][inner]) == set(idx[q][inner])
        np.testing.assert_array_equal(full[q, f_idx[q]], f_dist[q])


_DB = np.zeros((10, 2), np.uint8)


def test_faiss_missing_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="faiss-cpu"):
        retrieval.faiss_index(_DB)
