"""Studies: long training runs that measure what the method reaches (rows of results), as
opposed to ``benchmarks/``, which time the hot paths. Their rows land in
``benchmarks/results/`` and ``benchmarks/RESULTS.md`` with the other measured figures."""
