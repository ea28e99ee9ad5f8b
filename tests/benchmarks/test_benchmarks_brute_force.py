"""benchmarks.search_scale --brute-force: jaxhash's default brute force and its XLA search,
both exact, beside FAISS's flat index, and the table that compares them."""

import pytest

from benchmarks import search_scale


@pytest.mark.slow
def test_brute_force_rows_and_table():
    pytest.importorskip("faiss")
    args = "--sizes 20000 --queries 50 --kinds uniform --k 5 --brute-force --peers"
    rows = search_scale.main(args.split())
    by_impl = {row["impl"]: row for row in rows}
    assert set(by_impl) == {
        "jaxhash_brute_force",
        "jaxhash_brute_force_xla",
        "faiss_IndexBinaryFlat",
        "faiss_IndexBinaryFlat_1thread",
    }
    assert by_impl["jaxhash_brute_force_xla"]["exact"] is True
    for name in ("jaxhash_brute_force", "jaxhash_brute_force_xla", "faiss_IndexBinaryFlat_1thread"):
        assert by_impl[name]["cpu_ns_per_pair"] > 0
    table = search_scale.brute_force_table(rows).splitlines()
    assert len(table) == 3 and table[2].startswith("| 20,000 | uniform | 5 | 50 |")
