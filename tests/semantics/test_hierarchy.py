"""jaxhash.semantics.hierarchy: class trees (random trees against an oracle, parent-child
files, two levels, WordNet's tree rules) and their similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from jaxhash.semantics import (
    ClassHierarchy,
    HierarchyError,
    known,
    read_parent_child,
)


def _random_tree(rng, num_inner: int, num_leaves: int):
    """Random rooted tree: inner nodes i1.. attach to earlier inner nodes, leaves to any."""
    parent = {}
    inner = ["r"]
    for i in range(num_inner):
        name = f"i{i}"
        parent[name] = inner[rng.integers(len(inner))]
        inner.append(name)
    leaves = [f"c{j}" for j in range(num_leaves)]
    for leaf in leaves:
        parent[leaf] = inner[rng.integers(len(inner))]
    order = list(rng.permutation(leaves))
    return parent, order


def _oracle(parent: dict[str, str], classes: list[str], kind: str) -> np.ndarray:
    """Similarity by plain recursion on the pruned tree (independent of the library)."""

    def up(node):
        path = [node]
        while path[-1] in parent:
            path.append(parent[path[-1]])
        return path

    kept = {n for c in classes for n in up(c)}
    children = {n: [c for c, p in parent.items() if p == n and c in kept] for n in kept}

    def height(n):
        return 0 if not children[n] else 1 + max(height(c) for c in children[n])

    def depth(n):
        return len(up(n)) - 1

    root = up(classes[0])[-1]
    out = np.zeros((len(classes), len(classes)))
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            above_a = up(a)
            lcs = next(n for n in up(b) if n in above_a)
            if kind == "lcs_height":
                out[i, j] = 1 - height(lcs) / height(root)
            elif kind == "wup":
                out[i, j] = 2 * depth(lcs) / (depth(a) + depth(b))
            else:
                out[i, j] = 1 / (1 + depth(a) + depth(b) - 2 * depth(lcs))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["lcs_height", "wup", "path"])
def test_random_trees_match_oracle(seed, kind):
    """Similarity matrices of random trees equal the recursive oracle's, in class order."""
    rng = np.random.default_rng(seed)
    parent, classes = _random_tree(rng, num_inner=int(rng.integers(1, 12)), num_leaves=9)
    edges = [(p, c) for c, p in parent.items()]
    tree = ClassHierarchy.from_parent_child(edges, classes)
    np.testing.assert_allclose(tree.similarity(kind), _oracle(parent, classes, kind), atol=1e-12)
    np.testing.assert_array_equal(np.diag(tree.similarity(kind)), 1.0)
    np.testing.assert_allclose(tree.distance(kind), 1.0 - tree.similarity(kind))


def test_queries_on_a_known_tree(tmp_path):
    """depth, height, lcs and pruning on a small hand-made tree, also read from a file."""
    text = "# a comment\nroot animal\nroot plant\nanimal cat\nanimal dog\ncat tiger\nplant rose\n"
    path = tmp_path / "tree.txt"
    path.write_text(text)
    tree = ClassHierarchy.from_parent_child(path, ["tiger", "dog"])
    assert tree.root == "root"
    assert "plant" not in tree.nodes and "rose" not in tree.nodes  # no class below: pruned
    assert tree.depth("root") == 0 and tree.depth("tiger") == 3
    assert tree.height("root") == 3 and tree.height("animal") == 2 and tree.height("dog") == 0
    assert tree.lcs("tiger", "dog") == "animal" and tree.lcs("tiger", "tiger") == "tiger"
    assert tree.ancestors("tiger") == ("tiger", "cat", "animal", "root")
    np.testing.assert_allclose(tree.similarity("lcs_height"), [[1, 1 / 3], [1 / 3, 1]])
    written = tmp_path / "out.txt"
    tree.write_parent_child(written)
    again = ClassHierarchy.from_parent_child(read_parent_child(written), ["tiger", "dog"])
    np.testing.assert_array_equal(again.similarity("wup"), tree.similarity("wup"))


def test_two_level():
    """from_two_level: root -> coarse -> fine, CIFAR-100's official superclasses."""
    tree = known.cifar100("two_level")
    assert tree.classes == known.CIFAR100_CLASSES and tree.height(tree.root) == 2
    sim = tree.similarity("lcs_height")
    coarse = np.array(known.CIFAR100_COARSE_OF_FINE)
    same = coarse[:, None] == coarse[None, :]
    off = ~np.eye(100, dtype=bool)
    np.testing.assert_array_equal(sim[same & off], 0.5)
    np.testing.assert_array_equal(sim[~same], 0.0)
    assert tree.parent("tiger") == "large_carnivores"
    by_name = ClassHierarchy.from_two_level({"a": "X", "b": "X", "c": "Y"}, ["a", "b", "c"])
    assert by_name.lcs("a", "b") == "X" and by_name.lcs("a", "c") == "root"


@pytest.mark.parametrize(
    ("edges", "classes", "message"),
    [
        ([("r", "a"), ("s", "a")], ["a"], "two parents"),
        ([("a", "b"), ("b", "c"), ("c", "a")], ["c"], "cycle"),
        ([("r", "a"), ("s", "b")], ["a", "b"], "exactly one root"),
        ([("r", "a")], ["a", "zebra"], "zebra"),
        ([("r", "a"), ("a", "b")], ["a", "b"], "inner node"),
        ([("r", "a")], ["a", "a"], "unique"),
        ([("r", "r")], ["r"], "its own parent"),
    ],
)
def test_not_a_tree_errors(edges, classes, message):
    """Each malformed hierarchy raises HierarchyError naming the node at fault."""
    with pytest.raises(HierarchyError, match=message):
        ClassHierarchy.from_parent_child(edges, classes)


def test_bad_file_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("root a\nroot b c\n")
    with pytest.raises(HierarchyError, match=r"bad\.txt:2"):
        read_parent_child(path)


def test_unknown_node_and_kind():
    tree = ClassHierarchy.from_parent_child([("r", "a"), ("r", "b")], ["a", "b"])
    with pytest.raises(HierarchyError, match="unknown node 'zz'"):
        tree.depth("zz")
    with pytest.raises(HierarchyError, match="kind must be one of"):
        tree.similarity("cosine")


def test_wordnet_known_pairs(wordnet):
    """tiger and leopard share big_cat.n.01; tiger is nearer leopard than apple in every kind."""
    tree = ClassHierarchy.from_wordnet(
        ["tiger.n.02", "leopard.n.02", "apple.n.01"],
        ["tiger", "leopard", "apple"],
        wordnet=wordnet,
    )
    assert tree.lcs("tiger", "leopard") == "big_cat.n.01"
    assert tree.root == "entity.n.01"
    assert tree.synsets == {"tiger": "tiger.n.02", "leopard": "leopard.n.02", "apple": "apple.n.01"}
    for kind in ("lcs_height", "wup", "path"):
        sim = tree.similarity(kind)
        assert sim[0, 1] > sim[0, 2], kind


def test_wordnet_tree_rules(wordnet):
    """A synset with two hypernyms keeps one parent per rule; every rule gives a tree."""
    person = wordnet.synset("person.n.01")  # hypernyms: causal_agent.n.01 and organism.n.01
    assert len(person.hypernyms()) == 2
    parents = set()
    for rule in ("longest", "shortest", "first"):
        tree = ClassHierarchy.from_wordnet(
            ["person.n.01", "dog.n.01"], ["person", "dog"], tree_rule=rule, wordnet=wordnet
        )
        parents.add(tree.parent("person"))
        assert tree.parent("person") in {h.name() for h in person.hypernyms()}
    longest = ClassHierarchy.from_wordnet(["person.n.01"], ["person"], wordnet=wordnet)
    assert longest.depth("person") == person.max_depth()
    with pytest.raises(HierarchyError, match="tree_rule"):
        ClassHierarchy.from_wordnet(["dog.n.01"], tree_rule="random", wordnet=wordnet)


def test_wordnet_class_that_subsumes_another(wordnet):
    """A class whose synset is an ancestor of another class stays a leaf below its synset."""
    tree = ClassHierarchy.from_wordnet(["dog.n.01", "canine.n.02"], wordnet=wordnet)
    assert tree.parent("canine.n.02") == "canine.n.02*"
    assert tree.lcs("dog.n.01", "canine.n.02") == "canine.n.02*"
    named = ClassHierarchy.from_wordnet(
        ["dog.n.01", "canine.n.02"], ["dog", "canine"], wordnet=wordnet
    )
    assert named.parent("canine") == "canine.n.02" and named.height("canine") == 0


def test_tiny_imagenet_wnids(wordnet):
    """A hierarchy for Tiny ImageNet's 200 wnids (tests/data): all resolve, one root."""
    from tests.conftest import TEST_DATA

    wnids = (TEST_DATA / "tiny_imagenet_wnids.txt").read_text().split()
    assert len(wnids) == 200
    tree = ClassHierarchy.from_wordnet(wnids, classes=wnids, wordnet=wordnet)
    assert tree.classes == tuple(wnids) and tree.root == "entity.n.01"
    sim = tree.similarity()
    assert sim.shape == (200, 200) and np.allclose(sim, sim.T)
    cat, kart = wnids.index("n02124075"), wnids.index("n03444034")  # Egyptian cat, go-kart
    assert tree.synsets[wnids[cat]] == "egyptian_cat.n.01"
    assert sim[cat, kart] < sim[cat].max(initial=0, where=~np.eye(200, dtype=bool)[cat])
