"""The small labelled problem the protocol, report and retrieval-grid tests evaluate: float32
codes around one random centre per class, their labels, and a symmetric class similarity with
ones on the diagonal."""

import numpy as np


def labelled_codes(seed=0, n=150, bits=16, classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    codes = (rng.normal(size=(classes, bits))[labels] + rng.normal(size=(n, bits))).astype(
        np.float32
    )
    sim = rng.uniform(0.0, 0.7, (classes, classes))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    return codes, labels, sim
