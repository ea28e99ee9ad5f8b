"""jaxhash: learning compact binary hash codes whose Hamming distances follow semantic similarity.

A JAX/Flax re-implementation and extension of Arponen & Bishop, "Learning to hash with semantic
similarity metrics and empirical KL divergence" (arXiv 2005.04917).
"""

__version__ = "0.1.0"
