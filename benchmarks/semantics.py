"""Semantic targets: building class hierarchies and their similarity matrices.

Times (1) building the CIFAR-100 WordNet tree from WordNet and its lcs_height matrix, against
the straightforward nltk route (``lowest_common_hypernyms`` per class pair) for the same matrix,
and (2) a 1000-class WordNet hierarchy (the first 1000 leaf noun synsets) and its matrices, with
nltk's per-pair route timed on its first 100 classes only (reported as such). Needs WordNet:
``--wordnet DIR`` (a folder holding ``corpora/wordnet.zip``; default: nltk's search path,
``NLTK_DATA``). The sentence encoder has its own script,
benchmarks/semantics_text.py.

    python -m benchmarks.semantics
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit
from jaxhash.semantics import ClassHierarchy, load_wordnet
from jaxhash.semantics.known import CIFAR100_CLASSES, build_cifar100_wordnet, cifar100_synsets


def _seconds(fn, repeats: int = 3) -> float:
    """Median wall time in ms of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def nltk_lcs_height(synsets) -> np.ndarray:
    """Reference: nltk per pair, 1 - height(lcs)/height(root) with heights in WordNet's DAG
    restricted to these classes' longest paths (the usual quick script; not tree-exact)."""
    n = len(synsets)
    depth = np.array([s.max_depth() for s in synsets], float)
    max_depth = depth.max()
    out = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            lcs = synsets[i].lowest_common_hypernyms(synsets[j])[0]
            out[i, j] = out[j, i] = 1 - (max_depth - lcs.max_depth()) / max_depth
    return out


def run(wordnet_dir: str | None) -> list[dict]:
    wn = load_wordnet(wordnet_dir)
    rows = []
    cifar_synsets = [wn.synset(cifar100_synsets()[c]) for c in CIFAR100_CLASSES]
    ref_ms = _seconds(lambda: nltk_lcs_height(cifar_synsets), repeats=1)
    rows.append(
        emit(
            "hierarchy_cifar100",
            "reference_nltk_pairs",
            {"classes": 100},
            ref_ms,
            "reference_nltk_pairs",
            ref_ms,
        )
    )
    ms = _seconds(lambda: build_cifar100_wordnet(wn).similarity("lcs_height"))
    rows.append(
        emit("hierarchy_cifar100", "jaxhash", {"classes": 100}, ms, "reference_nltk_pairs", ref_ms)
    )

    leaves = []
    for synset in wn.all_synsets("n"):
        if not synset.hyponyms() and not synset.instance_hyponyms():
            leaves.append(synset)
            if len(leaves) == 1000:
                break
    ref100_ms = _seconds(lambda: nltk_lcs_height(leaves[:100]), repeats=1)
    rows.append(
        emit(
            "hierarchy_wordnet_1000",
            "reference_nltk_pairs_first_100_classes",
            {"classes": 100},
            ref100_ms,
            "reference_nltk_pairs_first_100_classes",
            ref100_ms,
        )
    )

    def ours():
        tree = ClassHierarchy.from_wordnet(leaves, wordnet=wn)
        return [tree.similarity(kind) for kind in ("lcs_height", "wup", "path")]

    ms = _seconds(ours)
    rows.append(
        emit(
            "hierarchy_wordnet_1000",
            "jaxhash_all_three_matrices",
            {"classes": 1000},
            ms,
            None,
            None,
        )
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wordnet", default=None, help="folder holding corpora/wordnet.zip (default: NLTK_DATA)"
    )
    run(parser.parse_args(argv).wordnet)


if __name__ == "__main__":
    main()
