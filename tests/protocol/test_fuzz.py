"""Fuzz: every route of the app (read from the Starlette app's routes, so a new one is covered
without editing this file), every method it takes, with generated requests - random and
non-UTF-8 bytes, non-ASCII and overlong CSRF tokens, huge values, duplicated parameters, NUL,
nested JSON, multipart bodies in odd charsets, wrong content types, broken Authorization,
Accept-Language and other headers and cookies - signed in or not, with the page's real CSRF token
or not. No answer may be a 5xx.

Bounded in time by the "fuzz" settings profile (HYPOTHESIS_PROFILE=fuzz-long runs longer);
hypothesis keeps no example database in the tree, and prints how to reproduce a failure."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mfa_helpers import csrf, sign_in
from starlette.routing import Mount, Route
from support import ISSUER, make_settings

from idbroker.app import create_app
from idbroker.provider import Provider

settings.register_profile("fuzz", max_examples=20, deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz-long", settings.get_profile("fuzz"), max_examples=300)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))


def every_route() -> list[tuple[str, str]]:
    """(method, path) of every route; path parameters stay as {name} and are generated."""
    with tempfile.TemporaryDirectory() as data:
        app = create_app(provider=Provider(make_settings(Path(data))))
    found = set()
    for route in app.routes:
        if isinstance(route, Route):
            found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
        elif isinstance(route, Mount):
            found.add(("GET", route.path + "/{path}"))
    return sorted(found)


PARAMS = ["client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
          "code_challenge_method", "prompt", "max_age", "acr_values", "login_hint", "ui_locales", "response_mode",
          "request", "claims", "resource", "grant_type", "code", "code_verifier", "refresh_token", "token",
          "token_type_hint", "client_secret", "client_assertion", "client_assertion_type", "access_token",
          "id_token_hint", "post_logout_redirect_uri", "csrf_token", "interaction", "next", "username", "password",
          "new_password", "current_password", "given_name", "family_name", "email", "new_email", "phone_number",
          "code", "decision", "confirm", "action", "kind", "factor", "name", "sid", "device", "credential",
          "webauthn_token", "remember", "lang", "version", "client"]
ODD = [b"", b"\xc3\xa9", b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\\ud800", b"a" * 5000, b"9" * 30, b"\xc2\xb2",
       b"[" * 3000, b"{\"a\":" * 2000, b"openid", b"openid profile email offline_access", b"code", b"S256",
       b"app", b"https://app.example/cb", b"none", b"login", b"authorization_code", b"refresh_token",
       b"client_credentials", b"yes", b"allow", b"totp", b"webauthn", b"alice@example.com", b"e30.e30.e30",
       b"eyJhbGciOiJub25lIn0.eyJpc3MiOiJhcHAifQ.", b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=b",
                 "multipart/form-data; boundary=b; charset=unicode_escape", "multipart/form-data", "text/plain",
                 "application/x-www-form-urlencoded; charset=utf-16", "", "\xe9/\xe9"]

values = st.one_of(st.sampled_from(ODD), st.binary(max_size=40), st.text(max_size=40).map(str.encode))
names = st.one_of(st.sampled_from(PARAMS), st.text(max_size=12))
pairs = st.lists(st.tuples(names, values), max_size=8)
header_values = st.one_of(st.sampled_from(ODD), st.binary(max_size=40)).map(
    lambda v: bytes(b for b in v if b not in b"\r\n\x00"))


def urlencoded(items: list[tuple[str, bytes]]) -> bytes:
    return "&".join(f"{quote_from_bytes(k.encode('utf-8', 'surrogatepass'))}={quote_from_bytes(v)}"
                    for k, v in items).encode()


def multipart(items: list[tuple[str, bytes]]) -> bytes:
    parts = [b'--b\r\nContent-Disposition: form-data; name="' + k.encode("utf-8", "surrogatepass") + b'"\r\n\r\n'
             + v + b"\r\n" for k, v in items]
    return b"".join(parts) + b"--b--\r\n"


def json_body(items: list[tuple[str, bytes]]) -> bytes:
    return json.dumps({k: v.decode("utf-8", "replace") for k, v in items}).encode()


# How a body is written, and the content type that goes with it (a request may name another).
BODIES = {"application/x-www-form-urlencoded": urlencoded, "multipart/form-data; boundary=b": multipart,
          "application/json": json_body}


KINDS = st.sampled_from(list(BODIES))
INSERT_AT = [st.integers(0, n) for n in range(9)]  # where the CSRF field goes among `pairs`' at most 8
CONTENT_TYPE_FOR = {kind: st.sampled_from([kind] * 3 + CONTENT_TYPES) for kind in BODIES}
OTHER_BODIES = st.one_of(st.binary(max_size=200), st.sampled_from(ODD),
                         st.integers(1, 5000).map(lambda n: b'{"credential": ' + b"[" * n + b"]" * n + b"}"))
AUTH_SCHEMES = st.sampled_from([b"Basic ", b"Bearer ", b""])
PLAIN_HEADERS = st.one_of(st.just(ISSUER.encode()), st.just(b"fr;q=0.5, *;q=x"), header_values)


def requests(path: str, token: str, cookies: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """One request to `path`: query, headers, cookies and a body. Mostly the shape a browser or
    client sends - a body that matches its content type, a CSRF token and the cookies - so that the
    odd values get past the first checks; sometimes not. (Every strategy is built here or above,
    once: one built inside the draw is built and validated again for every example; the form
    fuzzer's 10,000 requests on SQLite took 147 s that way, 134 s this way.)"""
    bad_tokens = st.sampled_from([b"\xc3\xa9", b"a" * 5000, b"", token.encode() + b"\x00"])
    csrf_fields = st.one_of(st.just(token.encode()), bad_tokens, values)  # the page's own: past the check
    csrf_headers = st.one_of(st.just(token.encode()), bad_tokens, header_values)
    cookie_names = st.sampled_from([*cookies, "x"])
    bodies = st.one_of(st.none(), OTHER_BODIES)  # None: the fields, written as the content type says

    @st.composite
    def one(draw: Any) -> dict[str, Any]:
        filled = path
        while "{" in filled:
            start, end = filled.index("{"), filled.index("}")
            filled = filled[:start] + quote_from_bytes(draw(values) or b"x") + filled[end + 1:]
        items = draw(pairs)
        items.insert(draw(INSERT_AT[len(items)]), ("csrf_token", draw(csrf_fields)))
        kind = draw(KINDS)
        body = draw(bodies)
        if body is None:
            body = BODIES[kind](items)
        headers = {"content-type": draw(CONTENT_TYPE_FOR[kind]).encode("latin-1")}
        if draw(st.booleans()):
            headers["x-csrf-token"] = draw(csrf_headers)
        if draw(st.booleans()):
            headers["authorization"] = draw(AUTH_SCHEMES) + draw(header_values)
        for name in ("origin", "accept-language", "user-agent"):
            if draw(st.booleans()):
                headers[name] = draw(PLAIN_HEADERS)
        jar = {name: value for name, value in cookies.items() if draw(st.integers(0, 3))}  # mostly all of them
        if draw(st.booleans()):
            jar[draw(cookie_names)] = quote_from_bytes(draw(values))
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items()).encode("latin-1")
        query = urlencoded(draw(pairs)).decode()
        while len(query) > 16_000:  # a client's limit (httpx refuses URLs over 64 KiB), not the broker's
            query = query.rpartition("&")[0]
        return {"url": filled + ("?" + query if query else ""), "headers": headers, "content": body}

    return one()


def signed_in(http: Any) -> tuple[str, dict[str, str]]:
    """Signs Alice in afresh: the CSRF token of a page and the browser's cookies, which the client
    then forgets (each example sends the ones it chose)."""
    http.cookies.clear()
    sign_in(http)
    token = csrf(http.get("/account").text)
    cookies = dict(http.cookies.items())
    http.cookies.clear()
    return token, cookies


def fuzz_route(http: Any, method: str, path: str) -> None:
    token, cookies = signed_in(http)  # whatever the examples of the route before did

    @FUZZ
    @given(request=requests(path, token, cookies))
    def fuzz(request: dict[str, Any]) -> None:
        http.cookies.clear()
        r = http.request(method, request["url"], headers=request["headers"], content=request["content"])
        assert r.status_code < 500, (method, request, r.text[:500])

    fuzz()


def test_no_request_gets_a_server_error(http, user, client):
    """One test per store (the fixtures' set-up would cost more than the examples), each route in
    turn with its own examples."""
    for method, path in every_route():
        fuzz_route(http, method, path)
