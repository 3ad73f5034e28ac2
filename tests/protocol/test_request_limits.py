"""Requests in progress per client address (web/limits.py), through HTTP against the application
behind the limit (tests/peers/test_server_faults.py checks the served one): an address holding
its whole share with bodies it never finishes sending is refused everywhere else, at once, while
other addresses are served; its places come back when its requests end, whether they complete or
the client goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from starlette.routing import Mount, Route
from support import ISSUER, run_async

from idbroker.web.limits import MAX_IN_PROGRESS, RETRY_AFTER_SECONDS, InProgressLimit

GREEDY, OTHER = "198.51.100.7", "203.0.113.9"
FORM = {"content-type": "application/x-www-form-urlencoded"}
WAIT = 30.0  # seconds; a bound on waiting for requests to be in progress, never reached


def every_endpoint(app: Any) -> list[tuple[str, str]]:
    """(method, path) for every route of the application and every mount."""
    requests = []
    for route in app.routes:
        path = route.path.replace("{name}", "default").replace("{path:path}", "theme.css")
        if isinstance(route, Route):
            requests += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
        elif isinstance(route, Mount):
            requests.append(("GET", f"{path}/missing.css"))
    return requests


def client(limited: InProgressLimit, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(limited, client=(address, 40000)), base_url=ISSUER)


def test_one_address_holds_at_most_its_share(app):
    limited = InProgressLimit(app)
    endpoints = every_endpoint(app)
    assert len(endpoints) > 40  # the application's routes were found

    async def main() -> None:
        release = anyio.Event()
        statuses: list[int] = []

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"grant_type="
            await release.wait()
            yield b"authorization_code"

        async def hold(http: httpx.AsyncClient, scope: anyio.CancelScope) -> None:
            with scope:
                statuses.append((await http.post("/oauth2/token", content=slow_body(), headers=FORM)).status_code)

        async def until(condition: Any) -> None:
            with anyio.fail_after(WAIT):
                while not condition():
                    await anyio.sleep(0.01)

        async with client(limited, GREEDY) as greedy, client(limited, OTHER) as other:
            async with anyio.create_task_group() as tasks:
                scopes = [anyio.CancelScope() for _ in range(MAX_IN_PROGRESS)]
                for scope in scopes:
                    tasks.start_soon(hold, greedy, scope)
                await until(lambda: limited.in_progress(GREEDY) == MAX_IN_PROGRESS)

                for method, path in endpoints:
                    refused = await greedy.request(method, path, headers=FORM)
                    assert refused.status_code == 429, (method, path)
                    assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
                    assert refused.headers["connection"] == "close" and refused.content == b""
                assert (await other.get("/.well-known/openid-configuration")).status_code == 200
                assert limited.in_progress(GREEDY) == MAX_IN_PROGRESS  # refusals took no place

                scopes[0].cancel()  # that client went away: its place is free again
                await until(lambda: limited.in_progress(GREEDY) == MAX_IN_PROGRESS - 1)
                assert (await greedy.get("/.well-known/openid-configuration")).status_code == 200
                release.set()
            assert len(statuses) == MAX_IN_PROGRESS - 1 and 429 not in statuses
            assert limited.in_progress(GREEDY) == 0
            for method, path in endpoints:
                assert (await greedy.request(method, path, headers=FORM)).status_code != 429, (method, path)

    run_async(main)

