"""httpcore finds sniffio (a dependency) instead of searching sys.path for it on every request, and the
upstream HTTP client's pool checks its idle connections without looking each socket up again
(web/upstream_http.py)."""

from __future__ import annotations

import asyncio
import importlib.machinery
import sys

import httpcore._backends.anyio as anyio_backend
import httpcore._synchronization as sync
from support import Quiet, run_async, serving


class KeepAlive(Quiet):
    """Answers every request on a kept-alive HTTP/1.1 connection; `close_after` closes it from the
    server's side once answered (as a server's idle timeout does)."""

    protocol_version = "HTTP/1.1"
    close_after = False

    def do_GET(self) -> None:  # noqa: N802
        self.answer(200, b"ok", content_type="text/plain")
        self.close_connection = self.close_after


class ClosesAfter(KeepAlive):
    close_after = True


def test_httpcore_learns_the_event_loop_without_searching_for_sniffio(monkeypatch):
    """httpcore runs `import sniffio` on every async request (a lock, a timeout, a pool wait). sniffio is
    a dependency, so after the first import the name is in sys.modules: without it each of those imports
    searched sys.path again and failed (~38 µs a time), in every httpx client of a worker (upstream
    providers and back-channel logout alike)."""
    async def ask() -> str:
        return sync.current_async_library()

    assert run_async(ask) == "asyncio"  # on a thread of its own: another test may leave a loop running here

    looked_for: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec

    def recording(name, path=None, target=None):  # noqa: ANN001, ANN202
        looked_for.append(name)
        return find_spec(name, path, target)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", recording)

    assert run_async(ask) == "asyncio"
    assert "sniffio" not in looked_for
    assert sys.modules["sniffio"] is not None  # the real module, not a stand-in for a failed import


def test_idle_connections_are_checked_without_looking_up_their_socket_again(monkeypatch):
    from idbroker.web.upstream_http import upstream_client

    lookups: list[str] = []
    get_extra_info = anyio_backend.AnyIOStream.get_extra_info

    def counting(self, info):  # noqa: ANN001, ANN202
        lookups.append(info)
        return get_extra_info(self, info)

    monkeypatch.setattr(anyio_backend.AnyIOStream, "get_extra_info", counting)

    with serving(KeepAlive) as url:
        async def run() -> tuple[int, int]:
            async with upstream_client() as client:
                await asyncio.gather(*(client.get(url) for _ in range(8)))  # up to eight idle connections
                for _ in range(5):
                    assert (await client.get(url)).status_code == 200
                return len(client._transport.inner._pool.connections), lookups.count("is_readable")

        connections, slow_checks = run_async(run)
    assert connections > 1  # idle ones, checked whenever a request enters or leaves the pool
    assert slow_checks == 0  # httpcore's own stream: each of those checks (116 with 8 connections)


def test_a_connection_the_server_closed_is_dropped_before_it_is_reused():
    from idbroker.web.upstream_http import upstream_client

    with serving(ClosesAfter) as url:
        async def run() -> list[int]:
            async with upstream_client() as client:
                statuses = []
                for _ in range(3):
                    statuses.append((await client.get(url)).status_code)
                    await asyncio.sleep(0.05)  # the server's close reaches the idle connection
                return statuses

        assert run_async(run) == [200, 200, 200]
