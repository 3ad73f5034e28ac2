"""The upstream HTTP client's module keeps httpcore from searching sys.path for sniffio on every request."""

from __future__ import annotations

import asyncio
import importlib.machinery
import threading

import httpcore._synchronization as sync


def test_httpcore_learns_the_event_loop_without_searching_for_sniffio(monkeypatch):
    import idbroker.web.upstream_http  # noqa: F401 - the module under test, imported for its effect

    looked_for: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec

    def recording(name, path=None, target=None):  # noqa: ANN001, ANN202
        looked_for.append(name)
        return find_spec(name, path, target)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", recording)

    async def ask() -> str:
        return sync.current_async_library()

    answers: list[str] = []  # on a thread of its own: another test may have left a loop running on this one
    thread = threading.Thread(target=lambda: answers.append(asyncio.run(ask())))
    thread.start()
    thread.join()
    assert answers == ["asyncio"]
    assert "sniffio" not in looked_for
