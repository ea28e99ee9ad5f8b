"""jaxhash.serve's garbage-collector freeze: a serving process freezes what it loaded (the index
at once, the run once its background load returns); an embedding application is left alone."""

from __future__ import annotations

import gc
import inspect

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from jaxhash import serve


def test_the_run_is_frozen_once_it_has_loaded(monkeypatch):
    events = []
    monkeypatch.setattr(gc, "freeze", lambda: events.append("freeze"))

    def load():
        events.append("load")
        return "encoder"

    assert serve._then_freeze_gc(load)() == "encoder"
    assert events == ["load", "freeze"]


def test_only_the_serve_command_freezes(monkeypatch):
    calls = []
    monkeypatch.setattr(serve, "load_service", lambda *a, **kw: calls.append(kw) or object())
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    serve.serve("index.npz", port=0)
    assert calls[0]["freeze_gc"] is True and calls[0]["background"] is True
    monkeypatch.undo()
    assert inspect.signature(serve.load_service).parameters["freeze_gc"].default is False
