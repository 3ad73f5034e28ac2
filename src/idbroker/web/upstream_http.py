"""The HTTP client of the upstream identity providers: httpx, timed and counted per host
(``idbroker_upstream_requests_total``, ``idbroker_upstream_request_duration_seconds``: metrics.py).

A module of its own, imported when the first upstream provider is built (provider.py): httpx, its
dependencies and a TLS context with the CA bundle are ~8 MB and ~40 ms a worker, which a broker
without upstream providers does not spend.
"""

from __future__ import annotations

import importlib.util
import sys
import time

import httpx

from .metrics import UPSTREAM_LATENCY, UPSTREAM_REQUESTS

# httpcore asks which event loop runs it (asyncio or trio) several times a request, each time by
# `import sniffio`. anyio 4 no longer installs sniffio, and an import that fails is looked for again
# along sys.path on every call: ~55 µs each, ~0.35 ms of CPU per upstream request. Without sniffio
# httpcore takes asyncio, the only loop here; a None entry makes that failing import immediate.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


def upstream_client() -> httpx.AsyncClient:
    """The client every upstream provider of a worker shares: no redirects followed, 10 s timeouts."""
    return httpx.AsyncClient(timeout=10.0, follow_redirects=False, transport=TimedTransport())


class TimedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that times and counts each request to an upstream identity provider;
    a request that got no answer (refused, timed out) counts as an error."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None):
        self.inner = inner or httpx.AsyncHTTPTransport()

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
