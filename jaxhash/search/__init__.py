"""The parts of exact search over packed codes; :mod:`jaxhash.retrieval` runs the search.

* ``packing``: pack and unpack codes, 32-bit words, Hamming distances.
* ``plan``: tile, chunk and query-block sizes per backend, and the database layouts.
* ``selection``: the exact, stable top-k of one database chunk (flat, or two stages by tiles).
* ``faiss``: packed codes into FAISS binary indexes.

:mod:`jaxhash.retrieval` re-exports the public names (``retrieval.pack_codes``, ...).
"""
