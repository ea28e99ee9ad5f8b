"""Rebuild jaxhash/semantics/data/cifar100_wordnet_tree.txt and cifar100_similarity.npz.

    python tools/build_semantics_data.py [--wordnet DIR]

DIR holds corpora/wordnet(.zip) (default: nltk's own search path, NLTK_DATA; the WordNet subset
in tests/data/wordnet is enough). The tests rebuild both the same way and check they are identical.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jaxhash.semantics import SIMILARITY_KINDS, load_wordnet
from jaxhash.semantics.known import (
    CIFAR100_SIMILARITY_FILE,
    CIFAR100_TREE_FILE,
    build_cifar100_wordnet,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "jaxhash" / "semantics" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wordnet", default=None, help="folder holding corpora/wordnet.zip (default: NLTK_DATA)"
    )
    args = parser.parse_args()
    tree = build_cifar100_wordnet(load_wordnet(args.wordnet))
    tree.write_parent_child(DATA / CIFAR100_TREE_FILE)
    np.savez_compressed(
        DATA / CIFAR100_SIMILARITY_FILE, **{k: tree.similarity(k) for k in SIMILARITY_KINDS}
    )
    print(f"wrote {DATA / CIFAR100_TREE_FILE} and {DATA / CIFAR100_SIMILARITY_FILE}: {tree}")


if __name__ == "__main__":
    main()
