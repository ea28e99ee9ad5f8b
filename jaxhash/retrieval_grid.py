"""The retrieval grid: moved to :mod:`jaxhash.evaluation.retrieval_grid`; these names stay
importable from here."""

from jaxhash.evaluation.retrieval_grid import (
    COLOURMAP,
    GridRow,
    RetrievalGrid,
    choose_queries,
    draw_grid,
    evaluation_grid,
    nearest,
)

__all__ = [
    "COLOURMAP",
    "GridRow",
    "RetrievalGrid",
    "choose_queries",
    "draw_grid",
    "evaluation_grid",
    "nearest",
]
