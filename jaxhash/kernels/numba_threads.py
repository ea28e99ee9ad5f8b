"""The thread pool of the compiled CPU kernels (:mod:`jaxhash.kernels.hamming_scan`,
:mod:`jaxhash.kernels.multi_index_probe`).

Work is cut into items (blocks of queries, parts of the database) that a pool of Python
threads, one per core, takes one at a time; the kernels are numba functions compiled with
``nogil=True``, so the threads run in parallel. On shared cores this balances far better than
numba's own parallel loops, which split the work evenly up front (a thread that the OS runs
less still gets its share): measured, two of numba's threads ran no faster than one where
Python threads ran 1.3-1.8x faster (benchmarks/RESULTS.md, "Search kernel history"). It also
lets several threads of a server search at once, which numba's portable "workqueue" threading
layer forbids (it aborts the process).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def cpu_threads() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_items(work: Callable[[int], None], items: int) -> None:
    """``work(0)``, ..., ``work(items - 1)``: in the calling thread when one thread would do,
    else taken one at a time by ``min(cpu_threads(), items)`` threads; an item's exception is
    raised here."""
    threads = min(cpu_threads(), items)
    if threads <= 1:
        for item in range(items):
            work(item)
        return
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(items)))
