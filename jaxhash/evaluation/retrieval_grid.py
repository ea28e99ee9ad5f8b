"""The retrieval grid: a few queries, each followed by its nearest database images.

One row per query: the query's thumbnail, then its top ``k`` results by Hamming distance (ties
to the lower database index, as the evaluation ranks them). Every thumbnail is labelled with
its name (class name, or file name), every result with its Hamming distance ``d`` to the query.
When a semantic distance is known (``1 - similarity`` of the class hierarchy; for caption data
the caption-embedding cosine distance) each result's frame is coloured by it on a green (0: the
query's class) to red (1: farthest) ramp, explained by a colour bar.

:func:`evaluation_grid` builds the rows of an evaluation (queries chosen by
:func:`choose_queries`: a fixed seed, spread over the classes); :func:`draw_grid` renders rows
to a PNG (matplotlib, a base dependency). ``jaxhash query`` draws its single row the same way.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

# Green (same class) through yellow to red (farthest): the frame colour of a result.
COLOURMAP = "RdYlGn_r"


@dataclasses.dataclass
class RetrievalGrid:
    """Rows to draw, the colour bar's text (rows with semantic distances) and a note."""

    rows: Sequence[GridRow]
    colour_label: str | None = None
    note: str | None = None


@dataclasses.dataclass
class GridRow:
    """One query and its results: uint8 pixels ``[S, S, 3]`` / ``[k, S, S, 3]``, names,
    Hamming distances ``[k]`` and semantic distances ``[k]`` in [0, 1] (None: not coloured)."""

    query: np.ndarray
    query_name: str
    results: np.ndarray
    result_names: Sequence[str]
    hamming: np.ndarray
    semantic: np.ndarray | None = None


def choose_queries(labels, num: int, seed: int = 0) -> np.ndarray:
    """``num`` row indices (fewer if there are fewer rows), one per class as far as the classes
    go: classes in a seeded random order, a seeded random row of each; more queries than
    classes start a second round. Labels ``[N]`` (or None / multi-hot: random rows)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.zeros(0, np.int64)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        return np.sort(rng.permutation(len(labels))[:num]).astype(np.int64)
    chosen: list[int] = []
    left = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    while len(chosen) < min(num, len(labels)):
        for c in rng.permutation(sorted(left)):
            if left[c] and len(chosen) < num:
                chosen.append(int(left[c].pop()))
    return np.asarray(chosen, np.int64)


def nearest(query_codes, db_codes, k: int, self_rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Hamming ``(distances, indices)`` ``[Q, k]`` of a few queries against all database rows
    (real-valued, +-1 or packed codes), ties to the lower index; ``self_rows [Q]``: each
    query's own database row, left out."""
    from jaxhash import retrieval

    def packed(codes):
        codes = np.asarray(codes)
        return codes if codes.dtype == np.uint8 else np.asarray(retrieval.pack_codes(codes))

    distances = np.asarray(retrieval.hamming_distances(packed(query_codes), packed(db_codes)))
    distances = distances.astype(np.int64)
    if self_rows is not None:
        distances[np.arange(len(distances)), np.asarray(self_rows)] = np.iinfo(np.int64).max
    k = min(k, distances.shape[1] - (self_rows is not None))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


def evaluation_grid(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    query_pixels: Callable[[np.ndarray], np.ndarray],
    db_pixels: Callable[[np.ndarray], np.ndarray],
    names: Callable[[int], str],
    class_distance=None,
    exclude_self: bool = False,
    num_queries: int = 8,
    k: int = 8,
    seed: int = 0,
) -> list[GridRow]:
    """The rows of an evaluation's retrieval grid.

    Codes and labels are the evaluated ones (rows of the query set and of the database;
    ``exclude_self``: they are the same rows, each query's own row is skipped). ``query_pixels``
    / ``db_pixels`` map row indices to uint8 pixels ``[n, S, S, 3]``; ``names`` a label to its
    text; ``class_distance [C, C]`` in [0, 1] colours the frames (None: no colours).
    """
    rows = choose_queries(query_labels, num_queries, seed)
    if rows.size == 0:
        return []
    query_codes, query_labels = np.asarray(query_codes)[rows], np.asarray(query_labels)[rows]
    hamming, found = nearest(query_codes, db_codes, k, rows if exclude_self else None)
    queries = query_pixels(rows)
    results = db_pixels(found.ravel()).reshape(*found.shape, *queries.shape[1:])
    db_labels = np.asarray(db_labels)
    grid = []
    for i, label in enumerate(query_labels):
        result_labels = db_labels[found[i]]
        semantic = None
        if class_distance is not None:
            semantic = np.asarray(class_distance, np.float64)[label, result_labels]
        grid.append(
            GridRow(
                query=queries[i],
                query_name=names(int(label)),
                results=results[i],
                result_names=[names(int(r)) for r in result_labels],
                hamming=hamming[i],
                semantic=semantic,
            )
        )
    return grid


def _label(text: str, width: int = 21) -> str:
    """At most two lines of about ``width`` characters, broken after '/' or at spaces (class
    paths such as ``box/red/striped``), words longer than a line cut."""
    words = [w for w in re.split(r"(?<=/)|(?<=\s)", text) if w]
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word.rstrip()) > width:
            lines.append("")
        lines[-1] += word
    lines = [line.strip()[:width] for line in lines]
    if len(lines) > 2:
        lines = [lines[0], lines[1][: width - 1] + "\u2026"]
    return "\n".join(lines)


def draw_grid(
    rows: Sequence[GridRow],
    path: str | os.PathLike,
    *,
    title: str,
    colour_label: str | None = None,
    note: str | None = None,
) -> str:
    """Render ``rows`` to a PNG at ``path`` (returned): a query column, then the results.

    ``colour_label``: the colour bar's text when rows carry semantic distances; ``note``: a
    line under the title (e.g. why frames are not coloured).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    if not rows:
        raise ValueError("a retrieval grid needs at least one query row.")
    k = max(len(r.results) for r in rows)
    coloured = any(r.semantic is not None for r in rows)
    cmap, norm = plt.get_cmap(COLOURMAP), colors.Normalize(0.0, 1.0)
    cell_w, cell_h = 1.35, 1.75
    width = cell_w * (k + 1) + 0.35 + (1.0 if coloured else 0.0)
    height = cell_h * len(rows) + 0.9 + (0.25 if note else 0.0)
    fig = plt.figure(figsize=(width, height))
    right = 1.0 - ((1.0 if coloured else 0.1) / width)
    grid = fig.add_gridspec(
        len(rows),
        k + 2,
        width_ratios=[1.0, 0.22] + [1.0] * k,
        left=0.1 / width,
        right=right,
        top=1.0 - (0.6 + (0.25 if note else 0.0)) / height,
        bottom=0.3 / height,
        hspace=0.55,
        wspace=0.08,
    )
    for i, row in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0])
        _thumbnail(ax, row.query, "black", 3.0)
        ax.set_title(_label(row.query_name), fontsize=7.5, fontweight="bold", pad=3)
        ax.set_xlabel("query", fontsize=7.5, labelpad=2)
        for j in range(len(row.results)):
            ax = fig.add_subplot(grid[i, j + 2])
            semantic = None if row.semantic is None else float(row.semantic[j])
            colour = "0.6" if semantic is None else cmap(norm(semantic))
            _thumbnail(ax, row.results[j], colour, 5.0 if semantic is not None else 1.0)
            ax.set_title(_label(row.result_names[j]), fontsize=7, pad=3)
            ax.set_xlabel(f"d = {int(row.hamming[j])}", fontsize=7.5, labelpad=2)
    fig.suptitle(title, fontsize=11, y=1.0 - 0.12 / height, va="top")
    if note:
        fig.text(0.5, 1.0 - 0.42 / height, note, ha="center", va="top", fontsize=8, color="0.3")
    if coloured:
        bar = fig.add_axes([right + 0.25 / width, 0.2, 0.15 / width, 0.6])
        mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, cax=bar).set_label(colour_label or "semantic distance", fontsize=8)
        bar.tick_params(labelsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _thumbnail(ax, pixels: np.ndarray, colour, linewidth: float) -> None:
    ax.imshow(pixels, interpolation="nearest" if pixels.shape[0] < 96 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(linewidth)


__all__ = [
    "COLOURMAP",
    "GridRow",
    "RetrievalGrid",
    "choose_queries",
    "draw_grid",
    "evaluation_grid",
    "nearest",
]
