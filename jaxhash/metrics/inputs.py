"""The checked inputs of a retrieval evaluation: codes or embeddings, labels, the ranking kind,
and the class tables of the hierarchical metrics. Every failure is one ValueError naming the
argument and the fix."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxhash.embeddings import check_embeddings, unit_rows
from jaxhash.search.packing import check_num_bits, check_packed, pack_codes, to_words

TIES = ("stable", "random", "expected")
RANKINGS = ("hamming", "euclidean", "cosine")


class RetrievalSet(NamedTuple):
    """Checked queries and database of a retrieval evaluation (see :func:`prepare`)."""

    queries: jax.Array  # uint32 words [Q, W] (hamming) or float32 [Q, D]
    database: jax.Array  # [N, W] or [N, D]
    ranking: str
    num_bits: int  # code length K (hamming) or embedding dimension
    query_labels: jax.Array  # int32 [Q] or float32 multi-hot [Q, L]
    db_labels: jax.Array  # int32 [N] or float32 [N, L]
    exclude_self: bool

    @property
    def multi_label(self) -> bool:
        return self.db_labels.ndim == 2

    @property
    def num_candidates(self) -> int:
        return self.database.shape[0] - int(self.exclude_self)


def _codes(codes, name: str, ranking: str, num_bits: int | None) -> tuple[jax.Array, int]:
    """Codes as packed uint8 (hamming) or float32 rows, and their length K."""
    if ranking != "hamming":
        return check_embeddings(codes, name), jnp.shape(codes)[1]
    codes = jnp.asarray(codes)
    if codes.dtype == jnp.uint8:
        packed = check_packed(codes, name)
        if packed.shape[1] > 1 and int(packed.max()) == 1:
            raise ValueError(
                f"{name} is uint8, so it is read as packed codes (8 bits a byte), but every byte "
                "is 0 or 1: these look like unpacked bits. Pass pack_codes(bits) or the bits as a "
                "float/int array."
            )
        width = packed.shape[1]
        if num_bits is not None:
            check_num_bits(num_bits, width, name)
        return packed, num_bits or 8 * width
    if codes.ndim != 2 or 0 in codes.shape:
        raise ValueError(f"{name} must be a non-empty matrix [N, K]; got shape {codes.shape}.")
    if num_bits is not None and num_bits != codes.shape[1]:
        raise ValueError(f"num_bits={num_bits} but {name} has {codes.shape[1]} columns.")
    try:
        return pack_codes(codes), codes.shape[1]
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _labels(labels, n: int, name: str, codes_name: str) -> jax.Array:
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be class indices [N] or multi-hot [N, L]; got shape {labels.shape}."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"{name} has {labels.shape[0]} rows but {codes_name} has {n}: one label per code."
        )
    if labels.ndim == 1:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices; got dtype {labels.dtype}.")
        if labels.size and labels.min() < 0:
            raise ValueError(f"{name} holds a negative class index ({labels.min()}).")
        return jnp.asarray(labels, jnp.int32)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} is 2-D, so it must be multi-hot: every entry 0 or 1.")
    return jnp.asarray(labels, jnp.float32)


def prepare(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    exclude_self: bool = False,
    ranking: str = "hamming",
    num_bits: int | None = None,
) -> RetrievalSet:
    """Check and convert the inputs shared by every metric (ValueError naming the problem).

    ``query_codes=None`` means the queries are the database (then ``query_labels`` may be None
    too). ``num_bits`` optionally states the code length to check packed widths against.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}; got {ranking!r}.")
    if query_codes is None:
        query_codes = db_codes
        query_labels = db_labels if query_labels is None else query_labels
    db, bits = _codes(db_codes, "db_codes", ranking, num_bits)
    queries, q_bits = _codes(query_codes, "query_codes", ranking, num_bits)
    if queries.shape[1] != db.shape[1] or q_bits != bits:
        raise ValueError(
            f"query_codes and db_codes must have the same code length; got {q_bits} and {bits} "
            f"({'packed bytes' if ranking == 'hamming' else 'columns'}: {queries.shape[1]} and "
            f"{db.shape[1]})."
        )
    if exclude_self and queries.shape[0] != db.shape[0]:
        raise ValueError(
            "exclude_self=True means the queries are the database; got "
            f"{queries.shape[0]} queries and {db.shape[0]} database codes."
        )
    q_labels = _labels(query_labels, queries.shape[0], "query_labels", "query_codes")
    d_labels = _labels(db_labels, db.shape[0], "db_labels", "db_codes")
    if q_labels.ndim != d_labels.ndim or q_labels.shape[1:] != d_labels.shape[1:]:
        raise ValueError(
            "query_labels and db_labels must be of one kind: both class indices [N] or both "
            f"multi-hot with the same number of labels; got {q_labels.shape} and {d_labels.shape}."
        )
    if ranking == "hamming":
        queries, db = to_words(queries), to_words(db)
    elif ranking == "cosine":
        queries, db = unit_rows(queries), unit_rows(db)
    return RetrievalSet(queries, db, ranking, bits, q_labels, d_labels, bool(exclude_self))


def check_ties(ties: str, data: RetrievalSet) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}; got {ties!r}.")
    if ties == "expected" and data.ranking != "hamming":
        raise ValueError(
            "ties='expected' needs ranking='hamming' (integer distances with tied groups); "
            "use 'stable' or 'random' for real-valued rankings."
        )


def class_table(table, data: RetrievalSet, name: str, *, nonnegative: bool) -> jax.Array:
    """A float32 ``[C, C]`` class table covering every label, else a ValueError naming it."""
    if data.multi_label:
        raise ValueError(f"{name} needs class-index labels [N], not multi-hot labels.")
    table = np.asarray(table, np.float64)
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"{name} must be a square [C, C] matrix; got shape {table.shape}.")
    if not np.isfinite(table).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if nonnegative and (table < 0).any():
        raise ValueError(f"{name} must be non-negative (similarities in [0, 1]).")
    top = max(int(data.query_labels.max()), int(data.db_labels.max()))
    if top >= table.shape[0]:
        raise ValueError(
            f"{name} covers {table.shape[0]} classes but the labels go up to {top}; it must be "
            "[C, C] with C above every class index."
        )
    return jnp.asarray(table, jnp.float32)
