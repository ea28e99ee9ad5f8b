"""One lock for the parallel numba kernels (:mod:`jaxhash.kernels.multi_index_probe`).

numba's "workqueue" threading layer, the one available everywhere, aborts the process when
parallel kernels are launched from several threads at once (a server answers each request
from its own thread): every ``parallel=True`` launch holds this lock.
"""

from __future__ import annotations

import threading

PARALLEL_LOCK = threading.Lock()
