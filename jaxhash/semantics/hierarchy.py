"""Class hierarchies: rooted trees whose leaves are the classes, and their similarity matrices.

The semantic targets of the similarity loss and of the hierarchical retrieval metrics
(docs/method.md, section 4) come from a tree over the classes:

* ``lcs_height``: ``1 - height(lcs(a, b)) / height(root)`` (Barz & Denzler, WACV 2019), heights
  counted from the leaves (a leaf has height 0).
* ``wup``: Wu & Palmer (1994), ``2 depth(lcs) / (depth(a) + depth(b))`` on the tree (root 0).
* ``path``: ``1 / (1 + path length)``, the path through the lowest common subsumer.

``distance(kind) = 1 - similarity(kind)``. Matrices are ``[C, C]`` in class (label) order with
an exact 1 on the diagonal of the similarity.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxhash.semantics.errors import HierarchyError

SIMILARITY_KINDS = ("lcs_height", "wup", "path")


def _name(synset) -> str:
    return synset.name()


def read_parent_child(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(parent, child)`` pairs from a text file of ``parent child`` lines.

    The format Barz & Denzler publish hierarchies in: one edge per line, whitespace separated;
    blank lines and lines starting with ``#`` are skipped.
    """
    edges = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise HierarchyError(
                f"{path}:{number}: expected 'parent child', got {line!r} ({len(fields)} fields)."
            )
        edges.append((fields[0], fields[1]))
    return edges


class ClassHierarchy:
    """A rooted tree over named nodes whose leaves are the classes, in label order.

    Build it with :meth:`from_parent_child`, :meth:`from_wordnet` or :meth:`from_two_level`.
    Nodes that lead to no class are pruned. Attributes: ``classes`` (tuple of leaf names in
    label order), ``root``, ``nodes``, ``synsets`` (class name -> WordNet synset name, when the
    hierarchy came from WordNet).
    """

    def __init__(
        self,
        parent_of: Mapping[str, str],
        classes: Sequence[str],
        synsets: Mapping[str, str] | None = None,
    ):
        classes = [str(c) for c in classes]
        if not classes:
            raise HierarchyError("classes is empty: a hierarchy needs at least one class.")
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        if duplicates:
            raise HierarchyError(f"classes must be unique; repeated: {duplicates}.")
        known = set(parent_of) | set(parent_of.values())
        missing = [c for c in classes if c not in known and len(classes) > 1]
        if missing:
            raise HierarchyError(
                f"{len(missing)} class(es) are not nodes of the hierarchy: {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}. Every class must appear as a child."
            )
        # Walk up from every class; keep only the nodes on those paths.
        kept: dict[str, str | None] = {}
        for name in classes:
            seen = []
            node = name
            while node is not None and node not in kept:
                if node in seen:
                    cycle = " -> ".join([*seen[seen.index(node) :], node])
                    raise HierarchyError(f"the hierarchy has a cycle: {cycle}.")
                seen.append(node)
                node = parent_of.get(node)
            for child in seen:
                kept[child] = parent_of.get(child)
        roots = sorted(n for n, p in kept.items() if p is None)
        if len(roots) != 1:
            raise HierarchyError(
                f"the hierarchy must have exactly one root above the classes; found {len(roots)}:"
                f" {roots[:10]}. Add a common root node as parent of these."
            )
        self.root = roots[0]
        self.classes = tuple(classes)
        self.synsets = dict(synsets or {})
        # Nodes in breadth-first order from the root, children sorted by name: deterministic.
        children: dict[str, list[str]] = {n: [] for n in kept}
        for node, parent in kept.items():
            if parent is not None:
                children[parent].append(node)
        for child_list in children.values():
            child_list.sort()
        order = [self.root]
        for node in order:
            order.extend(children[node])
        self.nodes = tuple(order)
        self._index = {n: i for i, n in enumerate(order)}
        self._children = children
        internal = [c for c in classes if children[c]]
        if internal:
            name = internal[0]
            raise HierarchyError(
                f"class {name!r} is an inner node (parent of {children[name][:5]}): classes "
                "must be leaves. Give it a leaf of its own, e.g. an edge "
                f"'{name} {name}_leaf', and use that leaf as the class."
            )
        self._parent = np.array(
            [-1 if kept[n] is None else self._index[kept[n]] for n in order], np.int32
        )
        depth = np.zeros(len(order), np.int32)
        for i in range(1, len(order)):
            depth[i] = depth[self._parent[i]] + 1
        height = np.zeros(len(order), np.int32)
        for i in range(len(order) - 1, 0, -1):  # children come after parents
            p = self._parent[i]
            height[p] = max(height[p], height[i] + 1)
        self._depth, self._height = depth, height
        self._class_index = np.array([self._index[c] for c in classes], np.int32)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_parent_child(
        cls,
        edges: Iterable[tuple[str, str]] | str | os.PathLike,
        classes: Sequence[str],
    ) -> ClassHierarchy:
        """From ``(parent, child)`` name pairs, or the path of a ``parent child`` text file.

        ``classes`` gives the leaves in label order. Every node has at most one parent (else
        the edges describe a DAG, not a tree: the error names the node).
        """
        if isinstance(edges, str | os.PathLike):
            edges = read_parent_child(edges)
        parent_of: dict[str, str] = {}
        for parent, child in edges:
            parent, child = str(parent), str(child)
            if parent == child:
                raise HierarchyError(f"node {child!r} is listed as its own parent.")
            if child in parent_of and parent_of[child] != parent:
                raise HierarchyError(
                    f"not a tree: node {child!r} has two parents, {parent_of[child]!r} and "
                    f"{parent!r}. Keep one edge per child."
                )
            parent_of[child] = parent
        return cls(parent_of, classes)

    @classmethod
    def from_two_level(
        cls,
        coarse_of_fine: Sequence[int] | Mapping[str, str],
        classes: Sequence[str],
        coarse_names: Sequence[str] | None = None,
        root: str = "root",
    ) -> ClassHierarchy:
        """A root, one node per coarse class, and the fine classes below (e.g. CIFAR-100's 20).

        ``coarse_of_fine``: per class (label order) the coarse index into ``coarse_names``, or a
        mapping class name -> coarse name.
        """
        if isinstance(coarse_of_fine, Mapping):
            unknown = [c for c in classes if c not in coarse_of_fine]
            if unknown:
                raise HierarchyError(f"coarse_of_fine has no entry for classes {unknown[:10]}.")
            coarse = [str(coarse_of_fine[c]) for c in classes]
        else:
            indices = list(coarse_of_fine)
            if len(indices) != len(classes):
                raise HierarchyError(
                    f"coarse_of_fine has {len(indices)} entries for {len(classes)} classes."
                )
            if coarse_names is None:
                coarse_names = [f"coarse_{i}" for i in range(max(indices) + 1)]
            bad = [i for i in indices if not 0 <= int(i) < len(coarse_names)]
            if bad:
                raise HierarchyError(
                    f"coarse indices {sorted(set(bad))[:10]} are outside [0, {len(coarse_names)})."
                )
            coarse = [str(coarse_names[int(i)]) for i in indices]
        clash = set(coarse) & set(classes) | ({root} & (set(coarse) | set(classes)))
        if clash:
            raise HierarchyError(f"node names used at two levels: {sorted(clash)}; rename them.")
        parent_of = {c: p for c, p in zip(classes, coarse, strict=True)}
        parent_of.update({p: root for p in coarse})
        return cls(parent_of, classes)

    @classmethod
    def from_wordnet(
        cls,
        synsets: Sequence,
        classes: Sequence[str] | None = None,
        *,
        tree_rule: str = "longest",
        wordnet=None,
    ) -> ClassHierarchy:
        """The WordNet noun hierarchy above ``synsets``, made a tree (through nltk).

        Args:
          synsets: per class, an nltk ``Synset``, a synset name (``"tiger.n.02"``) or an
            ImageNet WordNet id (``"n02129604"``, resolved through the synset offset).
          classes: class names in label order (default: the synset names).
          tree_rule: WordNet is a DAG (2,213 noun synsets have several hypernyms); each node
            keeps one parent, so every class keeps one hypernym path:
            "longest" (default) keeps the parent with the deepest ancestry (``max_depth``), so
            each class keeps its longest, most specific path; "shortest" the parent with the
            shallowest (``min_depth``); "first" the first by name. Ties go to the first synset
            name, so the tree is the same in every process. Instance hypernyms count as parents.
          wordnet: an nltk WordNet corpus reader (default: :func:`jaxhash.semantics.wordnet`).

        A class's leaf is named by the class and takes the place of its synset; if the synset
        also subsumes another class, it stays an inner node and the class hangs below it (the
        inner node is then named ``<synset>*`` when the class is named by the synset).
        """
        from jaxhash.semantics.wordnet import load_wordnet, resolve_synsets

        if tree_rule not in ("longest", "shortest", "first"):
            raise HierarchyError(
                f"tree_rule must be 'longest', 'shortest' or 'first'; got {tree_rule!r}."
            )
        wn = wordnet if wordnet is not None else load_wordnet()
        resolved = resolve_synsets(synsets, wordnet=wn)
        names = [s.name() for s in resolved]
        classes = list(names if classes is None else classes)
        if len(classes) != len(resolved):
            raise HierarchyError(f"{len(classes)} class names for {len(resolved)} synsets.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise HierarchyError(f"two classes map to the same synset: {duplicates}.")

        def chosen_parent(synset):
            # nltk's hypernym order changes between processes (set order): sort by name.
            parents = sorted(synset.hypernyms() + synset.instance_hypernyms(), key=_name)
            if not parents:
                return None
            if tree_rule == "longest":
                return max(parents, key=lambda p: p.max_depth())  # max keeps the first of ties
            if tree_rule == "shortest":
                return min(parents, key=lambda p: p.min_depth())
            return parents[0]

        parent_of: dict[str, str] = {}
        for synset in resolved:
            node = synset
            while node is not None and node.name() not in parent_of:
                parent = chosen_parent(node)
                if parent is None:
                    break
                parent_of[node.name()] = parent.name()
                node = parent
        inner = set(parent_of.values())
        for class_name, synset in zip(classes, resolved, strict=True):
            if synset.name() in inner:
                if class_name == synset.name():  # the inner node needs another name
                    renamed = f"{class_name}*"
                    parent_of = {
                        (renamed if c == class_name else c): (renamed if p == class_name else p)
                        for c, p in parent_of.items()
                    }
                    parent_of[class_name] = renamed
                else:
                    parent_of[class_name] = synset.name()
            elif class_name != synset.name():
                parent = parent_of.pop(synset.name(), None)
                if parent is not None:
                    parent_of[class_name] = parent
        return cls(parent_of, classes, synsets=dict(zip(classes, names, strict=True)))

    # ------------------------------------------------------------------ queries

    def _node(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise HierarchyError(
                f"unknown node {name!r}; the hierarchy has {len(self.nodes)} nodes "
                f"(root {self.root!r})."
            ) from None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def parent(self, node: str) -> str | None:
        p = self._parent[self._node(node)]
        return None if p < 0 else self.nodes[p]

    def children(self, node: str) -> tuple[str, ...]:
        return tuple(self._children[self.nodes[self._node(node)]])

    def depth(self, node: str) -> int:
        """Edges from the root (the root has depth 0)."""
        return int(self._depth[self._node(node)])

    def height(self, node: str) -> int:
        """Length of the longest downward path to a leaf (leaves have height 0)."""
        return int(self._height[self._node(node)])

    def ancestors(self, node: str) -> tuple[str, ...]:
        """The node and its ancestors, up to and including the root."""
        path = []
        i = self._node(node)
        while i >= 0:
            path.append(self.nodes[i])
            i = self._parent[i]
        return tuple(path)

    def lcs(self, a: str, b: str) -> str:
        """Lowest common subsumer: the deepest node that is an ancestor of both (or itself)."""
        above_a = set(self.ancestors(a))
        for node in self.ancestors(b):
            if node in above_a:
                return node
        raise AssertionError("unreachable: the root is an ancestor of every node")

    def edges(self) -> list[tuple[str, str]]:
        """``(parent, child)`` pairs, breadth-first."""
        return [(self.nodes[p], n) for n, p in zip(self.nodes, self._parent, strict=True) if p >= 0]

    def write_parent_child(self, path: str | os.PathLike) -> None:
        """Write the tree as ``parent child`` lines (readable by :meth:`from_parent_child`)."""
        Path(path).write_text("".join(f"{p} {c}\n" for p, c in self.edges()))

    # ------------------------------------------------------------------ matrices

    def _lcs_matrix(self) -> np.ndarray:
        """``[C, C]`` node index of the lowest common subsumer of every class pair."""
        depth = self._depth[self._class_index]
        max_depth = int(depth.max())
        # paths[c, d] = ancestor of class c at depth d (-1 below the class).
        paths = np.full((self.num_classes, max_depth + 1), -1, np.int64)
        for row, leaf in enumerate(self._class_index):
            i = leaf
            while i >= 0:
                paths[row, self._depth[i]] = i
                i = self._parent[i]
        common = np.ones((self.num_classes, self.num_classes), np.int64)  # the root
        for d in range(1, max_depth + 1):
            same = (paths[:, None, d] == paths[None, :, d]) & (paths[:, None, d] >= 0)
            common += same & (common == d)  # still on a shared prefix of length d
        lcs_depth = common - 1
        rows = np.arange(self.num_classes)[:, None]
        return paths[rows, lcs_depth]

    def similarity(self, kind: str = "lcs_height") -> np.ndarray:
        """``[C, C]`` float64 class similarity in label order (diagonal exactly 1).

        kind: "lcs_height" = 1 - height(lcs) / height(root); "wup" = 2 depth(lcs) /
        (depth(a) + depth(b)); "path" = 1 / (1 + depth(a) + depth(b) - 2 depth(lcs)).
        """
        if kind not in SIMILARITY_KINDS:
            raise HierarchyError(f"kind must be one of {SIMILARITY_KINDS}; got {kind!r}.")
        lcs = self._lcs_matrix()
        if kind == "lcs_height":
            root_height = self._height[0]
            if root_height == 0:
                return np.ones((1, 1))
            sim = 1.0 - self._height[lcs] / root_height
        else:
            depth = self._depth[self._class_index].astype(np.float64)
            both = depth[:, None] + depth[None, :]
            if kind == "wup":
                sim = np.divide(
                    2.0 * self._depth[lcs], both, out=np.ones_like(both), where=both > 0
                )
            else:
                sim = 1.0 / (1.0 + both - 2.0 * self._depth[lcs])
        np.fill_diagonal(sim, 1.0)
        return sim

    def distance(self, kind: str = "lcs_height") -> np.ndarray:
        """``1 - similarity(kind)``: ``[C, C]``, zero diagonal."""
        return 1.0 - self.similarity(kind)

    def __repr__(self) -> str:
        return (
            f"ClassHierarchy({self.num_classes} classes, {len(self.nodes)} nodes, "
            f"height {int(self._height[0])}, root {self.root!r})"
        )
