"""Fuzz, heavier than test_fuzz.py and aimed at what people and browsers reach: every POST route
(forms, and the OAuth 2.0 / OIDC endpoints that take forms) and every GET page, read from the
app's own routes so a new page is covered without editing this file, get >= 10,000 generated
requests in total on SQLite (a sample on PostgreSQL): random field names and values, unicode,
huge values, missing or wrong CSRF tokens, wrong content types, repeated fields (test_fuzz.py's
generator), signed in or not.

Checked on every answer: no 5xx; no hang (an ASGI guard cancels a request after HANG_SECONDS and
the test fails); a 4xx says what is wrong - a body with text (an HTML page with a heading, a JSON
error, or a plain line) or, for a bare 401/405/429, the header that says it (WWW-Authenticate,
Allow, Retry-After)."""

from __future__ import annotations

import os
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient
from test_fuzz import every_route, requests, signed_in

HANG_SECONDS = 30
TOTAL = int(os.environ.get("IDBROKER_FORM_FUZZ_TOTAL", "10000"))  # requests on SQLite
SAMPLE = 1000  # requests on PostgreSQL
SKIPPED = ("/admin/api/",)  # the admin API: test_admin_fuzz.py, from its OpenAPI document
BARE_OK = {401: "www-authenticate", 405: "allow", 429: "retry-after"}


def form_routes() -> list[tuple[str, str]]:
    return [(method, path) for method, path in every_route()
            if method in ("GET", "POST") and not path.startswith(SKIPPED)]


def guarded(app: Any) -> Any:
    """The app, with every HTTP request cancelled (and the test failed) after HANG_SECONDS."""
    async def guard(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        try:
            with anyio.fail_after(HANG_SECONDS):
                await app(scope, receive, send)
        except TimeoutError:
            raise AssertionError(f"{scope['method']} {scope['path']} hung for {HANG_SECONDS}s") from None
    return guard


def says_what_is_wrong(response: Any) -> bool:
    text = response.content.strip()
    if not text:
        header = BARE_OK.get(response.status_code)
        return header is not None and bool(response.headers.get(header))
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/html"):
        return b"<h1" in text or b"<title" in text
    if "json" in kind:
        return b'"error' in text or b'"detail' in text or b'"status' in text  # OAuth 2.0 / SCIM errors
    return True


def fuzz_route(browser: TestClient, method: str, path: str, token: str, cookies: dict[str, str],
               budget: int) -> int:
    """`budget` generated requests (fewer if the route's examples run out); how many were sent."""
    sent = 0

    @settings(max_examples=budget, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(sample=requests(path, token, cookies))
    def fuzz(sample: dict[str, Any]) -> None:
        nonlocal sent
        browser.cookies.clear()
        r = browser.request(method, sample["url"], headers=sample["headers"], content=sample["content"],
                            follow_redirects=False)
        sent += 1
        assert r.status_code < 500, (method, sample, r.text[:500])
        if 400 <= r.status_code < 500:
            assert says_what_is_wrong(r), (method, sample, r.status_code, dict(r.headers), r.text[:500])

    fuzz()
    return sent


def test_no_form_or_page_gets_a_server_error_or_hangs(app, http, user, client, request):
    total = TOTAL if request.node.callspec.params.get("database") == "sqlite" else SAMPLE
    routes = form_routes()
    sent = 0
    with TestClient(guarded(app), base_url=str(http.base_url)) as browser:
        for index, (method, path) in enumerate(routes):
            token, cookies = signed_in(http)  # whatever the examples of the route before did
            budget = max(1, -(-(total - sent) // (len(routes) - index)))
            sent += fuzz_route(browser, method, path, token, cookies, budget)
    assert sent >= total * 0.9, sent
