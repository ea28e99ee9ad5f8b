"""Random inputs of real shapes for the train-step benchmarks, in NumPy alone.

``benchmarks.train_step`` (Flax) and ``benchmarks.train_step_torch`` (PyTorch) run in separate
processes; drawing from one ``np.random.default_rng(0)`` in the same order here gives both the
same class-distance table, images and labels (the PyTorch script needs no JAX for it).
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 100
SEED = 0


def class_distance_table(classes: int, rng: np.random.Generator) -> np.ndarray:
    """Random symmetric ``[C, C]`` distances in [0.2, 1] with a zero diagonal, float32."""
    table = rng.uniform(0.2, 1.0, (classes, classes))
    table = (table + table.T) / 2
    np.fill_diagonal(table, 0.0)
    return table.astype(np.float32)


def image_batch(batch: int, side: int, classes: int, rng: np.random.Generator) -> dict:
    """``image``: float32 ``[B, side, side, 3]`` (NHWC), standard normal; ``label``: int32 < C."""
    return {
        "image": rng.normal(size=(batch, side, side, 3)).astype(np.float32),
        "label": rng.integers(0, classes, batch).astype(np.int32),
    }


def train_step_inputs(batch: int, side: int = 32, classes: int = NUM_CLASSES, seed: int = SEED):
    """``(table, batch)``: the class-distance table, then the batch, from one generator."""
    rng = np.random.default_rng(seed)
    table = class_distance_table(classes, rng)
    return table, image_batch(batch, side, classes, rng)
