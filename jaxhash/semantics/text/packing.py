"""Packing sentences into forward passes: few shapes to compile, little padding to compute.

Each batch is padded up to the first length bucket that holds its longest sentence, so a corpus
compiles a handful of shapes instead of one per batch; short sentences are packed several to a
row (best-fit decreasing), which the packed forward pass
(:func:`jaxhash.semantics.text.bert.packed_sentence_embeddings`) keeps apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

# Padded sequence lengths: each batch is padded up to the first bucket that holds its longest
# sentence. The ~1.5x spacing bounds the padding waste (a Flickr8k caption is ~16 tokens).
DEFAULT_LENGTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# Short sentences are packed several to a row of this many tokens (see plan_passes).
DEFAULT_PACK_LENGTH = 64


def _round_up(value: int, buckets: Sequence[int]) -> int:
    return next(bucket for bucket in buckets if bucket >= value)


def _row_buckets(limit: int) -> list[int]:
    """Padded row counts: 1..8, then steps of 1/4 octave (10, 12, 14, 16, 20, ...), then limit.

    Consecutive buckets differ by at most 25%, and a corpus meets only a few of them.
    """
    buckets = list(range(1, 9))
    octave = 8
    while octave < limit:
        buckets += [octave + octave * q // 4 for q in range(1, 5)]
        octave *= 2
    return sorted({b for b in buckets if b < limit} | {limit})


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing of sentences into rows of ``width`` tokens.

    Args:
      lengths: token counts, each <= width.

    Returns:
      rows, each a list of indices into ``lengths`` whose lengths sum to <= width; longest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    by_space: list[list[int]] = [[] for _ in range(width + 1)]  # free tokens -> row numbers
    space: list[int] = []
    for index in order:
        need = lengths[index]
        fit = next((free for free in range(need, width + 1) if by_space[free]), None)
        if fit is None:
            rows.append([])
            space.append(width)
            row = len(rows) - 1
        else:
            row = by_space[fit].pop()
        rows[row].append(index)
        space[row] -= need
        by_space[space[row]].append(row)
    return rows


class Pass(NamedTuple):
    """One forward pass: ``rows`` (sentence indices per row) padded to ``[num_rows, width]``."""

    rows: list[list[int]]
    num_rows: int
    width: int
    num_segments: int


def plan_passes(
    lengths: Sequence[int],
    batch_size: int,
    length_buckets: Sequence[int],
    pack_length: int,
) -> list[Pass]:
    """Group sentences into forward passes of at most ``batch_size`` sentences each.

    Sentences are sorted by length (longest first, as sentence-transformers does) and cut into
    chunks of ``batch_size``. Each chunk is packed into rows of either its length bucket or
    ``pack_length`` tokens, whichever costs less (rows x width x (1 + width / 1024): the dense
    layers plus the attention); the row count is rounded up to a bucket of
    :func:`_row_buckets`, and segments per row to a power of two, so shapes repeat.
    """
    lengths = [int(n) for n in lengths]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    row_buckets = _row_buckets(batch_size)
    passes = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        longest = lengths[chunk[0]]
        widths = {_round_up(longest, length_buckets)}
        if longest <= pack_length:
            widths.add(max(pack_length, min(widths)))
        best = None
        for width in sorted(widths):
            rows = [
                [chunk[i] for i in row] for row in pack_rows([lengths[i] for i in chunk], width)
            ]
            num_rows = _round_up(len(rows), row_buckets)
            cost = num_rows * width * (1.0 + width / 1024)
            if best is None or cost < best[0]:
                segments = max(len(row) for row in rows)
                num_segments = 1 << (segments - 1).bit_length()
                best = (cost, Pass(rows, num_rows, width, num_segments))
        passes.append(best[1])
    return passes


def plan_fixed_passes(lengths: Sequence[int], rows_per_pass: int, width: int) -> list[Pass]:
    """Passes of one shape: ``[rows_per_pass, width]`` rows, ``width // 2`` segments each.

    All sentences are packed best-fit into rows of ``width`` tokens (:func:`pack_rows`), and the
    rows cut into passes of ``rows_per_pass`` (the last padded with empty rows). A sentence has
    at least 2 tokens (``[CLS] [SEP]``), so a row never holds more than ``width // 2`` of them:
    every pass has the same shape and the forward pass compiles once.
    """
    rows = pack_rows([int(n) for n in lengths], width)
    num_segments = max([width // 2, *(len(row) for row in rows)])
    return [
        Pass(rows[start : start + rows_per_pass], rows_per_pass, width, num_segments)
        for start in range(0, len(rows), rows_per_pass)
    ]
