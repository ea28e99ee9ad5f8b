"""jaxhash.interruptions in process: a second signal stops at once, the time limit on one
process (real processes: tests/integration/test_signals.py)."""

from __future__ import annotations

import signal

from jaxhash import interruptions


def test_a_second_signal_stops_at_once():
    """Inside :class:`Interruptions` the first SIGTERM is recorded; a second one goes to the
    handler that was there before; on exit that handler is back."""
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: calls.append(number))
    try:
        with interruptions.Interruptions() as stops:
            assert stops.signalled(0) is None
            signal.raise_signal(signal.SIGTERM)
            assert stops.signalled(1) == signal.SIGTERM and calls == []
            signal.raise_signal(signal.SIGTERM)
            assert calls == [signal.SIGTERM]
        signal.raise_signal(signal.SIGTERM)
        assert calls == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_time_limit_on_one_process(monkeypatch):
    stops = interruptions.Interruptions(time_limit_s=10.0, start_time=1000.0)
    monkeypatch.setattr(interruptions.time, "time", lambda: 1005.0)
    assert not stops.out_of_time(at_sync_point=False)
    monkeypatch.setattr(interruptions.time, "time", lambda: 1011.0)
    assert stops.out_of_time(at_sync_point=False)
    assert not interruptions.Interruptions(None).out_of_time(at_sync_point=True)
