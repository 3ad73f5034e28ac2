"""A cap on the requests one client address may have in progress in a worker.

Why. Each Granian worker serves at most backlog ÷ workers connections at once (server.py), and a
request holds its place for as long as its client takes: a client that sends its body a byte at a
time, or simply opens thousands of requests, can fill every place and leave none for anyone else.
So a worker lets one address have at most MAX_IN_PROGRESS requests in progress and answers any
further one at once, without reading it, with 429 Too Many Requests and ``Retry-After``
(RFC 6585 §4; RFC 9110 §10.2.3), and ``Connection: close`` so that the connection's place is given
back too. Everybody else is served as before.

What counts. Every HTTP request, from the moment the application receives it until its response
is finished or it fails or its client goes away, under the address Granian reports for the
connection (``scope["client"]``). The count is per worker (one event loop, so no lock): with W
workers an address may have up to W × MAX_IN_PROGRESS requests in progress in all. Request
headers are bounded by the server's header read timeout (server.py), which acts before a request
reaches the application.

Behind a reverse proxy every request carries the proxy's address: make the server take the
client's from the proxy's headers (see accounts/throttle.py), or this limit applies to all
clients together. Larger floods belong in front of idbroker (README, "In front of idbroker").
"""

from __future__ import annotations

from typing import Any

MAX_IN_PROGRESS = 64  # requests in progress per client address and worker
RETRY_AFTER_SECONDS = 1

_REFUSED_HEADERS = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"connection", b"close"),
                    (b"content-length", b"0"), (b"cache-control", b"no-store")]


class InProgressLimit:
    """ASGI middleware: at most `limit` HTTP requests in progress per client address."""

    def __init__(self, app: Any, limit: int = MAX_IN_PROGRESS):
        self.app = app
        self.limit = limit
        self._in_progress: dict[str, int] = {}

    def in_progress(self, address: str) -> int:
        return self._in_progress.get(address, 0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        count = self._in_progress.get(address, 0)
        if count >= self.limit:
            await send({"type": "http.response.start", "status": 429, "headers": _REFUSED_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        self._in_progress[address] = count + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._in_progress[address] - 1
            if left:
                self._in_progress[address] = left
            else:
                del self._in_progress[address]
