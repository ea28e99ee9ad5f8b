"""The FAISS bridge: packed codes into FAISS binary indexes, which take the same byte layout.

FAISS is optional: ``pip install 'jaxhash[faiss]'`` (faiss-cpu).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from jax.typing import ArrayLike

from jaxhash.search.packing import check_num_bits, check_packed

if TYPE_CHECKING:
    import faiss


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "the FAISS bridge needs faiss: pip install 'jaxhash[faiss]' (faiss-cpu)."
        ) from error
    return faiss


def check_faiss_factory(factory: str, num_bits: int = 64) -> faiss.IndexBinary:
    """An empty FAISS binary index of ``num_bits`` made by ``faiss.index_binary_factory(
    num_bits, factory)``, else a ValueError naming the factory string."""
    faiss = _faiss()
    if not isinstance(factory, str) or not factory.startswith("B"):
        raise ValueError(
            f"FAISS binary index factory strings start with B (BFlat, BIVF1024, BHNSW32, "
            f"BHash4x16); got {factory!r}."
        )
    try:
        return faiss.index_binary_factory(num_bits, factory)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"{factory!r} is not a FAISS binary index for {num_bits}-bit codes ({reason}); try "
            "BFlat, BIVF1024, BHNSW32 or BHash4x16."
        ) from None


def faiss_index(
    database: ArrayLike, num_bits: int | None = None, *, factory: str = "BFlat"
) -> faiss.IndexBinary:
    """A FAISS binary index holding packed codes ``uint8 [N, B]`` (the same layout): a
    ``faiss.IndexBinaryFlat``, or the index ``faiss.index_binary_factory`` makes of
    ``factory`` (e.g. "BIVF1024", "BHNSW32", "BHash4x16"; trained on the codes when it needs
    training).

    ``num_bits`` must be a multiple of 8 for FAISS (default ``8 * B``). Search it with
    ``index.search(queries_packed, k)``: the flat index gives identical distances to
    :func:`hamming_topk` (the order inside a group of equal distances may differ); the others
    are approximate.
    """
    database = np.ascontiguousarray(np.asarray(check_packed(database, "database")))
    width = database.shape[1]
    num_bits = 8 * width if num_bits is None else num_bits
    check_num_bits(num_bits, width, "database")
    if num_bits % 8:
        raise ValueError(
            f"FAISS binary indexes need a whole number of bytes; got num_bits={num_bits}. Pass "
            f"num_bits={8 * width} (the padding bits are zero in every code, so distances agree)."
        )
    if factory == "BFlat":
        index = _faiss().IndexBinaryFlat(num_bits)
    else:
        index = check_faiss_factory(factory, num_bits)
        if not index.is_trained:
            try:
                index.train(database)
            except RuntimeError as error:
                reason = str(error).strip().splitlines()[-1]
                raise ValueError(
                    f"FAISS could not train {factory} on {len(database)} codes ({reason}): "
                    "choose an index with fewer lists, or BFlat."
                ) from None
    index.add(database)
    return index
