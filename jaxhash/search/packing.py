"""Packed binary codes and their Hamming distances.

Codes are ``sign(z)`` of a network's outputs ``z`` in R^K. They are stored packed, 8 bits a byte,
in exactly the layout of ``np.packbits(z > 0, axis=1)`` (first bit = most significant bit of the
first byte), which is also what FAISS binary indexes take, so codes move between the two as-is.
Distances are XOR + popcount on 32-bit words (:func:`to_words`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike


def pack_codes(z: ArrayLike) -> jax.Array:
    """Pack codes to bits: ``bit = z > 0``, 8 a byte, as ``np.packbits(z > 0, axis=1)``.

    Args:
      z: ``[N, K]`` real-valued outputs, +-1 codes, {0, 1} bits or bools (bit = value > 0).

    Returns:
      ``uint8 [N, ceil(K / 8)]``; the last byte is zero-padded on the right (low bits).
    """
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"z must be a matrix [N, K] with K >= 1; got shape {z.shape}.")
    if not (jnp.issubdtype(z.dtype, jnp.number) or z.dtype == jnp.bool_):
        raise ValueError(f"z must be numeric or bool; got dtype {z.dtype}.")
    if jnp.issubdtype(z.dtype, jnp.floating) and not isinstance(z, jax.core.Tracer):
        if bool(jnp.isnan(z).any()):
            raise ValueError("z contains NaN: its sign, and so its code, is undefined.")
    n, num_bits = z.shape
    num_bytes = -(-num_bits // 8)
    bits = jnp.pad(z > 0, ((0, 0), (0, 8 * num_bytes - num_bits)))
    weights = jnp.asarray([128, 64, 32, 16, 8, 4, 2, 1], jnp.uint8)
    return jnp.sum(
        bits.reshape(n, num_bytes, 8).astype(jnp.uint8) * weights, axis=2, dtype=jnp.uint8
    )


def unpack_codes(
    packed: ArrayLike, num_bits: int | None = None, *, dtype: DTypeLike = jnp.float32
) -> jax.Array:
    """Inverse of :func:`pack_codes`: ``[N, num_bits]`` codes in {-1, +1} (+1 where the bit is set).

    ``num_bits`` defaults to ``8 * packed.shape[1]``; ``pack_codes(unpack_codes(p, K)) == p``.
    """
    packed = check_packed(packed, "packed")
    width = packed.shape[1]
    if num_bits is None:
        num_bits = 8 * width
    check_num_bits(num_bits, width, "packed")
    shifts = jnp.arange(7, -1, -1, dtype=jnp.uint8)
    bits = (packed[:, :, None] >> shifts) & jnp.uint8(1)
    bits = bits.reshape(packed.shape[0], 8 * width)[:, :num_bits]
    return (2 * bits.astype(dtype) - 1).astype(dtype)


def check_packed(x: ArrayLike, name: str) -> jax.Array:
    """``x`` as packed codes ``uint8 [N, bytes]``, else a ValueError naming it."""
    return _checked_packed(jnp.asarray(x), name)


def check_packed_host(x: ArrayLike, name: str) -> np.ndarray:
    """:func:`check_packed` as a NumPy array in host memory (no copy to a device)."""
    return _checked_packed(np.asarray(x), name)


def _checked_packed(x, name: str):
    if x.dtype != np.uint8:
        raise ValueError(
            f"{name} must be packed codes (uint8 [N, ceil(K/8)], as from pack_codes); got dtype "
            f"{x.dtype}. Pack real-valued or +-1 codes with pack_codes(z)."
        )
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a matrix [N, bytes] with bytes >= 1; got {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): need at least one code.")
    return x


def check_num_bits(num_bits: int, width: int, name: str) -> None:
    """``num_bits`` must fit ``width`` packed bytes exactly: ``ceil(num_bits / 8) == width``."""
    if not isinstance(num_bits, int) or isinstance(num_bits, bool) or num_bits < 1:
        raise ValueError(f"num_bits must be a positive int; got {num_bits!r}.")
    if -(-num_bits // 8) != width:
        raise ValueError(
            f"num_bits={num_bits} does not match {name}'s packed width of {width} bytes "
            f"(ceil(num_bits / 8) must equal it: {8 * width - 7}..{8 * width} bits)."
        )


def to_words(packed: jax.Array) -> jax.Array:
    """``uint8 [N, B] -> uint32 [N, ceil(B / 4)]`` (zero bytes appended; byte order is irrelevant
    to a popcount of XOR as long as queries and database share it)."""
    n, width = packed.shape
    num_words = -(-width // 4)
    packed = jnp.pad(packed, ((0, 0), (0, 4 * num_words - width)))
    return lax.bitcast_convert_type(packed.reshape(n, num_words, 4), jnp.uint32)


def popcount_distance(queries: jax.Array, columns: jax.Array) -> jax.Array:
    """``sum_w popcount(q[:, w] ^ columns[w])``: queries ``[Q, W]``, columns ``[W, *S]`` ->
    ``uint32 [Q, *S]``."""
    expand = (slice(None),) + (None,) * (columns.ndim - 1)
    total = None
    for w in range(queries.shape[1]):
        bits = lax.population_count(queries[:, w][expand] ^ columns[w][None])
        total = bits if total is None else total + bits
    return total


def hamming_distances(queries: ArrayLike, database: ArrayLike) -> jax.Array:
    """All pairwise Hamming distances of packed codes: ``int32 [Q, N]``.

    Forms the full matrix: for small sets and checks. Use :func:`hamming_topk` to search.
    """
    queries = check_packed(queries, "queries")
    database = check_packed(database, "database")
    _check_widths(queries, database)
    return _hamming_distances(to_words(queries), to_words(database))


@jax.jit
def _hamming_distances(q_words, db_words):
    return popcount_distance(q_words, db_words.T).astype(jnp.int32)


def _check_widths(queries: jax.Array, database: jax.Array) -> None:
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must have the same packed width (code length); got "
            f"{queries.shape[1]} and {database.shape[1]} bytes."
        )
