"""Shipped semantic data for known data sets: CIFAR-100 and ImageNet-100.

Training needs no WordNet download: the CIFAR-100 WordNet tree and its similarity matrices are
package data (``data/``), rebuilt from WordNet 3.0 by ``tools/build_semantics_data.py`` and
checked identical by the tests. ``data/README.md`` gives the provenance of the class lists.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from jaxhash.semantics.errors import HierarchyError
from jaxhash.semantics.hierarchy import SIMILARITY_KINDS, ClassHierarchy

#: CIFAR-100 fine classes in the official label order (apple = 0 ... worm = 99).
CIFAR100_CLASSES = (
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
)
#: CIFAR-100 superclasses in the official coarse label order.
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
)
#: Official coarse label of each fine label.
CIFAR100_COARSE_OF_FINE = (
    4,
    1,
    14,
    8,
    0,
    6,
    7,
    7,
    18,
    3,
    3,
    14,
    9,
    18,
    7,
    11,
    3,
    9,
    7,
    11,
    6,
    11,
    5,
    10,
    7,
    6,
    13,
    15,
    3,
    15,
    0,
    11,
    1,
    10,
    12,
    14,
    16,
    9,
    11,
    5,
    5,
    19,
    8,
    8,
    15,
    13,
    14,
    17,
    18,
    10,
    16,
    4,
    17,
    4,
    2,
    0,
    17,
    4,
    18,
    17,
    10,
    3,
    2,
    12,
    12,
    16,
    12,
    1,
    9,
    19,
    2,
    10,
    0,
    1,
    16,
    12,
    9,
    13,
    15,
    13,
    16,
    19,
    2,
    4,
    6,
    19,
    5,
    5,
    8,
    19,
    18,
    1,
    2,
    15,
    6,
    0,
    17,
    8,
    14,
    13,
)

CIFAR100_TREE_FILE = "cifar100_wordnet_tree.txt"
CIFAR100_SIMILARITY_FILE = "cifar100_similarity.npz"
CIFAR100_TREE_RULE = "longest"


def _data_text(name: str) -> str:
    try:
        return resources.files("jaxhash.semantics").joinpath("data", name).read_text()
    except FileNotFoundError:
        raise HierarchyError(
            f"package data file {name!r} is missing from jaxhash/semantics/data; reinstall "
            "jaxhash, or rebuild it with tools/build_semantics_data.py."
        ) from None


def _tsv_rows(name: str) -> list[list[str]]:
    return [
        line.split("\t")
        for line in _data_text(name).splitlines()
        if line.strip() and not line.startswith("#")
    ]


@functools.cache
def cifar100_zero_shot_classes() -> list[str]:
    """The 20 zero-shot CIFAR-100 classes: the last fine class (label order) of each superclass.

    Every superclass keeps seen relatives, so retrieval among these classes is helped by the
    hierarchy targets only through what the codes learned from those relatives.
    """
    last = {}
    for name, coarse in zip(CIFAR100_CLASSES, CIFAR100_COARSE_OF_FINE, strict=True):
        last[coarse] = name
    return [last[c] for c in sorted(last)]


def cifar100_synsets() -> dict[str, str]:
    """CIFAR-100 class name -> WordNet 3.0 noun synset name, chosen by hand (label order)."""
    rows = _tsv_rows("cifar100_synsets.tsv")
    mapping = {row[1]: row[2] for row in rows}
    if tuple(mapping) != CIFAR100_CLASSES:
        raise HierarchyError("cifar100_synsets.tsv is not in CIFAR-100 label order.")
    return mapping


@functools.cache
def cifar100_definitions() -> dict[str, str]:
    """CIFAR-100 class name -> the WordNet 3.0 gloss of its synset (label order)."""
    return {row[1]: row[4] for row in _tsv_rows("cifar100_synsets.tsv")}


def build_cifar100_wordnet(wordnet=None, tree_rule: str = CIFAR100_TREE_RULE) -> ClassHierarchy:
    """The CIFAR-100 WordNet tree built from WordNet itself (needs WordNet; see cifar100())."""
    synsets = cifar100_synsets()
    return ClassHierarchy.from_wordnet(
        [synsets[c] for c in CIFAR100_CLASSES],
        classes=CIFAR100_CLASSES,
        tree_rule=tree_rule,
        wordnet=wordnet,
    )


@functools.cache
def _cifar100_wordnet() -> ClassHierarchy:
    edges = [tuple(line.split()) for line in _data_text(CIFAR100_TREE_FILE).splitlines() if line]
    tree = ClassHierarchy.from_parent_child(edges, CIFAR100_CLASSES)
    tree.synsets = cifar100_synsets()
    return tree


def cifar100(kind: str = "wordnet") -> ClassHierarchy:
    """The CIFAR-100 class hierarchy, ``.classes`` in official label order.

    kind: "wordnet" (default): the WordNet 3.0 noun tree above the hand-chosen synsets
    (``.synsets`` maps each class to its synset), read from package data, no WordNet needed;
    "two_level": root -> 20 superclasses -> 100 classes (the official coarse labels).
    """
    if kind == "wordnet":
        return _cifar100_wordnet()
    if kind == "two_level":
        return ClassHierarchy.from_two_level(
            CIFAR100_COARSE_OF_FINE, CIFAR100_CLASSES, CIFAR100_SUPERCLASSES
        )
    raise HierarchyError(f"kind must be 'wordnet' or 'two_level'; got {kind!r}.")


@functools.cache
def _cifar100_matrices() -> dict[str, np.ndarray]:
    data = resources.files("jaxhash.semantics").joinpath("data", CIFAR100_SIMILARITY_FILE)
    with data.open("rb") as f:
        with np.load(f) as z:
            return {k: z[k] for k in z.files}


def cifar100_similarity(kind: str = "lcs_height") -> np.ndarray:
    """Precomputed ``[100, 100]`` similarity of the CIFAR-100 WordNet tree (float64).

    Equal to ``cifar100().similarity(kind)``; shipped so training starts without building it.
    """
    if kind not in SIMILARITY_KINDS:
        raise HierarchyError(f"kind must be one of {SIMILARITY_KINDS}; got {kind!r}.")
    return _cifar100_matrices()[kind].copy()


def imagenet100_wnids() -> list[str]:
    """The 100 WordNet ids of the ImageNet-100 hashing subset (HashNet's), in label order."""
    return [row[0] for row in _tsv_rows("imagenet100_wnids.txt")]


def imagenet100(wordnet=None, tree_rule: str = "longest") -> ClassHierarchy:
    """WordNet hierarchy of ImageNet-100 (needs WordNet; classes are the wnids)."""
    wnids = imagenet100_wnids()
    return ClassHierarchy.from_wordnet(wnids, classes=wnids, tree_rule=tree_rule, wordnet=wordnet)
