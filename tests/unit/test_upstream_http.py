"""The upstream HTTP client's module keeps httpcore from searching sys.path for sniffio on every request,
and its pool's check of idle connections from looking each socket up again (web/upstream_http.py)."""

from __future__ import annotations

import asyncio
import importlib.machinery
import threading

import httpcore._backends.anyio as anyio_backend
import httpcore._synchronization as sync


def _on_own_thread(coro_fn):  # noqa: ANN001, ANN202
    """asyncio.run on a thread of its own: another test may have left a loop running on this one."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(coro_fn())))
    thread.start()
    thread.join()
    assert out, "the coroutine raised (see the thread's traceback above)"
    return out[0]


async def _server(close_after_response: bool):  # noqa: ANN202
    """A loopback HTTP/1.1 server that answers every request with keep-alive, and, when told to,
    then closes the connection from its side (as a server's idle timeout does)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                await writer.drain()
                if close_after_response:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


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

    assert _on_own_thread(ask) == "asyncio"
    assert "sniffio" not in looked_for


def test_idle_connections_are_checked_without_looking_up_their_socket_again(monkeypatch):
    from idbroker.web.upstream_http import upstream_client

    lookups: list[str] = []
    get_extra_info = anyio_backend.AnyIOStream.get_extra_info

    def counting(self, info):  # noqa: ANN001, ANN202
        lookups.append(info)
        return get_extra_info(self, info)

    monkeypatch.setattr(anyio_backend.AnyIOStream, "get_extra_info", counting)

    async def run() -> tuple[int, int]:
        server, url = await _server(close_after_response=False)
        async with server, upstream_client() as client:
            await asyncio.gather(*(client.get(url) for _ in range(8)))  # eight idle connections in the pool
            for _ in range(5):
                assert (await client.get(url)).status_code == 200
            return len(client._transport.inner._pool.connections), lookups.count("is_readable")

    connections, slow_checks = _on_own_thread(run)
    assert connections > 1  # idle ones, checked whenever a request enters or leaves the pool
    assert slow_checks == 0  # httpcore's own stream: each of those checks (116 with 8 connections)


def test_a_connection_the_server_closed_is_dropped_before_it_is_reused():
    from idbroker.web.upstream_http import upstream_client

    async def run() -> list[int]:
        server, url = await _server(close_after_response=True)
        async with server, upstream_client() as client:
            statuses = []
            for _ in range(3):
                statuses.append((await client.get(url)).status_code)
                await asyncio.sleep(0.05)  # the server's close reaches the idle connection
            return statuses

    assert _on_own_thread(run) == [200, 200, 200]
