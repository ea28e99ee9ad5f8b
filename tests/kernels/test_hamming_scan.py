"""jaxhash.kernels.hamming_scan: the compiled batched scan equals a NumPy oracle (distances from
unpacked bits, order by (distance, id)) across code widths, blocks, ties and k."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from jaxhash.kernels import hamming_scan


def _oracle(queries, codes, k):
    bits_q = np.unpackbits(queries, axis=1).astype(np.int64)
    bits_c = np.unpackbits(codes, axis=1).astype(np.int64)
    distances = (bits_q[:, None, :] != bits_c[None, :, :]).sum(axis=2)
    ids = np.arange(len(codes))
    order = np.stack([np.lexsort((ids, row))[:k] for row in distances])
    return np.take_along_axis(distances, order, axis=1), order


@pytest.mark.parametrize(
    ("rows", "width", "k"),
    [
        (1, 1, 1),  # one code
        (300, 1, 7),  # 8-bit codes: every distance tied many times
        (500, 2, 500),  # k = N
        (257, 8, 256),  # one whole word
        (400, 9, 13),  # a word and a byte
        (2 * hamming_scan._BLOCK + 77, 3, 40),  # several blocks, the last one short
        (2 * hamming_scan._BLOCK + 5, 17, 100),  # three words
    ],
)
def test_topk_is_the_exact_order(rows, width, k):
    rng = np.random.default_rng(rows + width)
    codes = rng.integers(0, 256, (rows, width), np.uint8)
    codes[::5] = codes[0]  # ties in every block
    codes[-3:] = codes[min(1, rows - 1)]  # ties at the very end, once the top k is full
    queries = np.concatenate([codes[:3], codes[-1:], rng.integers(0, 256, (3, width), np.uint8)])
    distances, ids = hamming_scan.topk(hamming_scan.to_words(codes), queries, k)
    want_d, want_i = _oracle(queries, codes, k)
    np.testing.assert_array_equal(distances, want_d)
    np.testing.assert_array_equal(ids, want_i)
    assert distances.dtype == np.int32 and ids.dtype == np.int64


def test_a_batch_answers_like_its_queries_alone():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (3000, 4), np.uint8)
    words = hamming_scan.to_words(codes)
    queries = rng.integers(0, 256, (9, 4), np.uint8)
    batch = hamming_scan.topk(words, queries, 25)
    for q in range(len(queries)):
        alone = hamming_scan.topk(words, queries[q : q + 1], 25)
        np.testing.assert_array_equal(alone[0][0], batch[0][q])
        np.testing.assert_array_equal(alone[1][0], batch[1][q])


def test_words_are_zero_padded():
    codes = np.array([[1, 2, 3], [255, 0, 7]], np.uint8)
    words = hamming_scan.to_words(codes)
    assert words.shape == (1, 2) and words.dtype == np.uint64
    np.testing.assert_array_equal(words[:, 0].view(np.uint8), [1, 2, 3, 0, 0, 0, 0, 0])
