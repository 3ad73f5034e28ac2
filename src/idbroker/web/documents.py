"""Documents that are the same for every caller - discovery and JWKS - answered as soon as the
request reaches them, without the exception layer, the router and the request/response objects.

Why: relying parties and resource servers fetch these most of all (a token check that misses its
cache fetches JWKS), and the answer is a byte string ready in memory: in a worker the application
code of such a request went from ~21 to ~11 µs. `Documents` sits inside the request observation and
CORS middlewares, so the request id, the metrics (labelled with the route's path, as the router
would) and the CORS headers are unchanged. A `Document` is also the route's own endpoint: a method
the route does not take goes on to the router, which answers 405 with `Allow` as for any route; and
a body that cannot be had (JWKS reloads its keys from the store now and then, and the store can be
away) is asked again on the router's path, whose exception handlers answer - 503, not 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class Document:
    """An ASGI endpoint answering 200 with `body()` (asked at each request: JWKS changes when keys
    rotate); HEAD gets the headers only."""

    def __init__(self, body: Callable[[], bytes], media_type: str, cache_control: str):
        self.body = body
        self.headers = [(b"content-type", media_type.encode("latin-1")),
                        (b"cache-control", cache_control.encode("latin-1"))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, send, self.body())

    async def answer(self, scope: Scope, send: Send, body: bytes) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*self.headers, (b"content-length", str(len(body)).encode("latin-1"))]})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})


class Documents:
    """ASGI middleware: a request for one of `routes` (each a `Route` to a `Document`), with a method
    the route takes, goes straight to its document."""

    def __init__(self, app: ASGIApp, routes: Iterable[Route]):
        self.app = app
        self.routes = {route.path: route for route in routes if isinstance(route.endpoint, Document)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] not in (route.methods or ()):
            await self.app(scope, receive, send)
            return
        document: Document = route.endpoint
        try:
            body = document.body()
        except Exception:  # noqa: BLE001 - the router's path has the handlers that answer it
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as the router sets it: the metrics' label
        await document.answer(scope, send, body)
