"""The HTTP client of the upstream identity providers: httpx, timed and counted per host
(``idbroker_upstream_requests_total``, ``idbroker_upstream_request_duration_seconds``: metrics.py).

A module of its own, imported when the first upstream provider is built (provider.py): httpx, its
dependencies and a TLS context with the CA bundle are ~8 MB and ~40 ms a worker, which a broker
without upstream providers does not spend.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

from .metrics import UPSTREAM_LATENCY, UPSTREAM_REQUESTS


def upstream_client() -> httpx.AsyncClient:
    """The client every upstream provider of a worker shares: no redirects followed, 10 s timeouts."""
    return httpx.AsyncClient(timeout=10.0, follow_redirects=False, transport=TimedTransport())


def pooled_transport() -> httpx.AsyncHTTPTransport:
    """httpx's transport, its connections made by `ReadCheckBackend`.

    Every time a request enters or leaves httpcore's pool (1.0.9), the pool asks each of its idle
    connections whether the server has closed it (`has_expired`), and the anyio stream answers
    by building a dict of all its socket attributes to fetch the socket, then polling it
    (encode/httpcore#928, still open). Under load the pool keeps up to 20 idle connections to an
    upstream, and that scan cost more than the request itself: an upstream GET with 16 requests in
    flight took 2.3-4.3 ms of CPU against 1.8-2.3 ms with the socket kept by the stream. httpx
    builds the pool without a say in its backend, so the backend is wrapped once the pool exists
    (tests/unit/test_upstream_http.py checks that it is, and that a connection the server closed
    is still dropped)."""
    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool
    pool._network_backend = ReadCheckBackend(pool._network_backend)
    return transport


class ReadCheckBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own network backend, whose streams answer `is_readable` from the socket they
    keep instead of looking it up on every check (`pooled_transport`)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend):
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return ReadCheckStream(await self.inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                            socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return ReadCheckStream(await self.inner.connect_unix_socket(path, timeout=timeout,
                                                                    socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class ReadCheckStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream):
        self.inner = inner
        self.socket = inner.get_extra_info("socket")  # the same socket under TLS (start_tls)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return ReadCheckStream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # the check httpcore's own stream makes, on the kept socket
            return is_socket_readable(self.socket)
        return self.inner.get_extra_info(info)


class TimedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that times and counts each request to an upstream identity provider;
    a request that got no answer (refused, timed out) counts as an error."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None):
        self.inner = inner or pooled_transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host or "-"
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except Exception:
            UPSTREAM_REQUESTS.labels(host=host, outcome="error").inc()
            raise
        finally:
            UPSTREAM_LATENCY.labels(host=host).observe(time.perf_counter() - started)
        UPSTREAM_REQUESTS.labels(host=host, outcome="error" if response.status_code >= 500 else "ok").inc()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
