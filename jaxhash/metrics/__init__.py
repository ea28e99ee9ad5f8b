"""Retrieval metrics of hash codes: mAP@k, mAHP@k, precision/recall@k, Hamming-radius
precision-recall, and the mistake severity of the nearest item.

Every metric ranks a database for each query (:mod:`jaxhash.metrics.ranking`: exact, chunked,
sharded over a mesh's devices, or a counting sort on the CPU) and scores the ranking in jitted
code, a block of queries at a time (:mod:`~jaxhash.metrics.scores`), so the result does not
depend on chunk sizes or the device count. The modules: ``inputs`` (checks), ``ranking``,
``ties`` (expectations over tie orders), ``passes`` (whole-database passes), ``scores``,
``radius`` (Hamming balls) and ``scorers`` (one-call metrics). Definitions
(``docs/method.md``, section 5):

* **Codes**: real-valued or +-1 ``[N, K]`` (the code is ``x > 0``, so a 0 counts as -1) or packed
  ``uint8 [N, ceil(K/8)]`` (:func:`jaxhash.retrieval.pack_codes`). With ``ranking="euclidean"`` or
  ``"cosine"`` real-valued outputs are ranked by that distance instead (before binarisation).
* **Labels**: ``[N]`` class indices (relevant = same class) or ``[N, L]`` multi-hot (relevant =
  shares a label).
* **mAP@k** (peer convention: DeepHash-pytorch ``CalcTopMap``, CSQ, FIRe): over the top k,
  ``AP = sum_{i <= k, rel_i} P@i / #relevant in the top k``; a query without hits counts 0.
* **mAHP@k** (Deng, Berg & Fei-Fei, CVPR 2011; Barz & Denzler, WACV 2019, code after its
  Nov 2020 fix): ``HP@j = sum_{i <= j} s_i / (best achievable sum of j similarities in the
  database)``, ``s_i`` the class similarity of the i-th item to the query's class, and
  ``AHP@k = (1/k) (HP@1 + ... + HP@k - (HP@1 + HP@k) / 2)`` (``np.trapz(HP, dx=1/k)``). With
  ``exclude_self`` the query leaves both its ranking and its ideal. (Barz's code removes it from
  the ideal by deleting one entry and subtracting 1; the two agree whenever the query's own
  class has similarity 1 and it is ranked among its class's first items, as real-valued features
  are.)
* **Ties** of the integer Hamming distance: ``"stable"`` (database order), ``"random"`` (stable
  over a database order drawn from ``jax.random.permutation(jax.random.key(seed), N)``) or
  ``"expected"``: the exact expectation over a uniformly random order inside each group of equal
  distance (McSherry & Najork, ECIR 2008). Metrics linear in the ranked items (P@k, R@k, HP@j)
  replace each item by its group's mean; AP@k, whose denominator (#relevant in the top k) is
  random too, is averaged over the hypergeometric number of relevant items the cut-off takes from
  the group it splits (the derivation is in :func:`jaxhash.metrics.ties.expected_ap`). Peers use
  an unstable sort, which moves CIFAR mAP by 1-2 points when the database is shuffled.
"""

from jaxhash.metrics.inputs import RANKINGS, TIES, RetrievalSet, class_table, prepare
from jaxhash.metrics.radius import radius_curves, radius_histograms
from jaxhash.metrics.ranking import METHODS, Ranking, counting_search, rank
from jaxhash.metrics.scorers import (
    BallOptions,
    Options,
    PassOptions,
    mahp_at_k,
    map_at_k,
    mistake_severity,
    precision_at_k,
    precision_recall_curve,
    radius_precision_recall,
    recall_at_k,
)
from jaxhash.metrics.scores import (
    average_precisions,
    hierarchical_precisions,
    relevant_in_top,
    relevant_totals,
    top1_mistakes,
)

__all__ = [
    "METHODS",
    "RANKINGS",
    "TIES",
    "BallOptions",
    "Options",
    "PassOptions",
    "Ranking",
    "RetrievalSet",
    "average_precisions",
    "class_table",
    "counting_search",
    "hierarchical_precisions",
    "mahp_at_k",
    "map_at_k",
    "mistake_severity",
    "precision_at_k",
    "precision_recall_curve",
    "prepare",
    "radius_curves",
    "radius_histograms",
    "radius_precision_recall",
    "rank",
    "recall_at_k",
    "relevant_in_top",
    "relevant_totals",
    "top1_mistakes",
]
