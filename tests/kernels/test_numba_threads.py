"""jaxhash.kernels.numba_threads: every work item runs once, in the calling thread when one
thread would do and in a pool of threads otherwise; an item's exception reaches the caller."""

import threading

import pytest

from jaxhash.kernels import numba_threads


def _record(items: int) -> tuple[list[int], set[int]]:
    done, threads = [], set()
    lock = threading.Lock()

    def work(item: int) -> None:
        with lock:
            done.append(item)
            threads.add(threading.get_ident())

    numba_threads.run_items(work, items)
    return done, threads


def test_every_item_runs_once_in_the_pool(monkeypatch):
    monkeypatch.setattr(numba_threads, "cpu_threads", lambda: 3)
    done, threads = _record(50)
    assert sorted(done) == list(range(50))
    assert threading.get_ident() not in threads


@pytest.mark.parametrize("cores, items", [(1, 7), (4, 1), (4, 0)])
def test_one_thread_runs_in_the_caller(monkeypatch, cores, items):
    monkeypatch.setattr(numba_threads, "cpu_threads", lambda: cores)
    done, threads = _record(items)
    assert done == list(range(items)) and threads <= {threading.get_ident()}


@pytest.mark.parametrize("cores", [1, 2])
def test_an_item_error_reaches_the_caller(monkeypatch, cores):
    monkeypatch.setattr(numba_threads, "cpu_threads", lambda: cores)

    def work(item: int) -> None:
        if item == 3:
            raise ValueError("item 3")

    with pytest.raises(ValueError, match="item 3"):
        numba_threads.run_items(work, 6)


def test_cpu_threads_counts_the_usable_cores():
    assert 1 <= numba_threads.cpu_threads()
