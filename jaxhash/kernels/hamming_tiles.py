"""Pallas kernel: XOR-popcount Hamming distances fused with each database tile's minimum.

The first stage of :func:`jaxhash.retrieval.hamming_topk`'s two-stage selection: database rows
come in tiles of ``T`` consecutive rows, and each query needs only the minimum distance of each
tile. The database is laid out ``[W, T, tiles]`` (word, row within the tile, tile), so row ``t``
of every tile is one contiguous ``[tiles]`` slice; a program takes a block of ``bq`` queries and
``bt`` tiles, and for each of the T rows XORs, popcounts and sums the W words of the
``[bq, bt]`` distances and folds them into the running minimum. Distances never leave registers
(GPUs) or VMEM (TPUs): the only output is the ``[Q, tiles]`` minima, 1/T of the distances.
The result is exact (integers), identical to the XLA path's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxhash.kernels import check_variant, interpret_default, next_power_of_2, round_up


def _kernel(q_ref, db_ref, o_ref, *, num_words, tile):
    """``q_ref [bq, Wp]``, ``db_ref [Wp * T, bt]`` (row ``w * T + t``) -> ``o_ref [bq, bt]``."""
    queries = [q_ref[:, pl.ds(w, 1)] for w in range(num_words)]  # [bq, 1] each
    tile_min = None
    for t in range(tile):
        dist = None
        for w in range(num_words):
            bits = lax.population_count(queries[w] ^ db_ref[pl.ds(w * tile + t, 1), :])
            dist = bits if dist is None else dist + bits
        tile_min = dist if tile_min is None else jnp.minimum(tile_min, dist)
    o_ref[...] = tile_min


def tile_minima(
    q_words: jax.Array,
    chunk: jax.Array,
    *,
    variant: str | None = None,
    interpret: bool | None = None,
    block_queries: int | None = None,
    block_tiles: int | None = None,
) -> jax.Array:
    """``min_t sum_w popcount(q[i, w] ^ chunk[w, t, j])``: the minimum Hamming distance from each
    query to each tile.

    Args:
      q_words: uint32 ``[Q, W]`` packed query words.
      chunk: uint32 ``[W, T, tiles]`` database words, row ``j * T + t`` of the chunk at
        ``[:, t, j]`` (``jaxhash.retrieval``'s tile layout).
      variant: "triton" (GPUs) or "mosaic" (TPUs); None: the default backend's.
      interpret: run in Pallas's interpreter; None: where there is no GPU or TPU.
      block_queries, block_tiles: block sizes (None: 64 x 128 for Triton, 256 x 512 for
        Mosaic).

    Returns:
      int32 ``[Q, tiles]``.
    """
    variant = check_variant(variant)
    interpret = interpret_default() if interpret is None else interpret
    num_queries, num_words = q_words.shape
    _, tile, num_tiles = chunk.shape
    if variant == "triton":  # power-of-two blocks
        bq = block_queries or min(64, max(16, next_power_of_2(num_queries)))
        bt = block_tiles or min(128, max(16, next_power_of_2(num_tiles)))
        words_padded = next_power_of_2(num_words)
    else:  # sublane (8) and lane (128) multiples
        bq = block_queries or min(256, round_up(num_queries, 8))
        bt = block_tiles or min(512, round_up(num_tiles, 128))
        words_padded = num_words
    q_rows, tiles_padded = round_up(num_queries, bq), round_up(num_tiles, bt)
    # Zero words add nothing to a popcount of XOR; padded queries and tiles are cut off below.
    q_words = jnp.pad(q_words, ((0, q_rows - num_queries), (0, words_padded - num_words)))
    chunk = jnp.pad(chunk, ((0, words_padded - num_words), (0, 0), (0, tiles_padded - num_tiles)))
    q_words = lax.bitcast_convert_type(q_words, jnp.int32)
    chunk = lax.bitcast_convert_type(chunk, jnp.int32).reshape(words_padded * tile, tiles_padded)
    if variant == "triton":
        from jax.experimental.pallas import triton as plgpu

        params = plgpu.CompilerParams(num_warps=4, num_stages=2)
    else:
        from jax.experimental.pallas import tpu as pltpu

        params = pltpu.CompilerParams(dimension_semantics=("parallel", "parallel"))
    out = pl.pallas_call(
        functools.partial(_kernel, num_words=num_words, tile=tile),
        out_shape=jax.ShapeDtypeStruct((q_rows, tiles_padded), jnp.int32),
        grid=(q_rows // bq, tiles_padded // bt),
        in_specs=[
            pl.BlockSpec((bq, words_padded), lambda i, j: (i, 0)),
            pl.BlockSpec((words_padded * tile, bt), lambda i, j: (0, j)),
        ],
        out_specs=pl.BlockSpec((bq, bt), lambda i, j: (i, j)),
        compiler_params=params,
        interpret=interpret,
        name=f"hamming_tile_minima_{variant}",
    )(q_words, chunk)
    return out[:num_queries, :num_tiles]
