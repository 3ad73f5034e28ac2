"""Input that no client should send, and the broker must refuse with a 4xx and no change: CSRF
tokens that are not what the page issued, request bodies that cannot be read (too large, too
slow, broken off, malformed chunked encoding), deeply nested JSON, values longer than the
database keeps. Every class is tested on every route it concerns, enumerated from the app so that
a new route is covered without editing this file (tests/protocol/test_fuzz.py does the same with
generated input)."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from joserfc.jwk import ECKey
from mfa_helpers import csrf, hidden, sign_in, start_enrolment
from sqlalchemy import select
from starlette.routing import Route
from support import ISSUER, PASSWORD, make_settings, pkce_pair, query_of, run_async

from idbroker import audit
from idbroker.app import create_app
from idbroker.oauth2.authorize_checks import MAX_LENGTHS, MAX_PARAM
from idbroker.provider import Provider
from idbroker.store.models import AuditEvent, AuthorizationCode, Base, Interaction
from idbroker.web import body

# The back-channel endpoints (client authentication, no CSRF) and the passkey endpoints (JSON,
# the CSRF token in a header); every other POST route is a form of a hosted page.
BACK_CHANNEL = {"/oauth2/authorize", "/oauth2/token", "/oauth2/userinfo", "/oauth2/userInfo", "/oauth2/revoke",
                "/oauth2/introspect"}
JSON_POSTS = {"/login/passkey/options", "/login/passkey"}
# Refused before the body is read: APIs that check the Bearer token first (a browser's cookies are no
# token), and dynamic registration, off by default.
REFUSED_UNREAD = ("/admin/api/v1/", "/scim/v2/", "/credentials/", "/oauth2/register")
BAD_TOKENS = {"non-ASCII": "é", "overlong": "a" * 10_000, "missing": None}
# Fields the forms take, with values that would change something if the CSRF check let them through.
FIELDS = {"username": "alice@example.com", "password": PASSWORD, "current_password": PASSWORD,
          "new_password": "another long passphrase", "password_confirmation": "another long passphrase",
          "given_name": "Mallory", "new_email": "mallory@example.com", "email": "mallory@example.com",
          "decision": "allow", "confirm": "yes", "accept": "yes", "action": "confirm", "name": "Renamed",
          "phone_number": "+15555550199", "code": "123456", "kind": "totp", "sid": "all", "client_id": "app"}
DEEP = b"[" * 5000 + b"]" * 5000  # json.loads: RecursionError past ~1000


def post_paths(app: Any) -> list[str]:
    return sorted({r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())})


def form_paths(app: Any) -> list[str]:
    return [p for p in post_paths(app) if p not in BACK_CHANNEL | JSON_POSTS]


def refused(path: str, status: int) -> bool:
    """A 4xx; the logout form that cannot be used is not an error: it asks again (200)."""
    return 400 <= status < 500 or path == "/oauth2/logout" and status == 200


def snapshot(provider: Provider) -> dict[str, list[str]]:
    """Every row of every table: what "nothing changed" compares - except the audit trail's record
    of each admin API call, which is written for refused calls too (that is its point)."""
    def rows(conn: Any, table: Any) -> list[str]:
        query = table.select()
        if table.name == AuditEvent.__tablename__:
            query = query.where(table.c.kind != audit.ADMIN_CALL)
        return sorted(repr(tuple(row)) for row in conn.execute(query))

    with provider.db.engine.connect() as conn:
        return {table.name: rows(conn, table) for table in Base.metadata.sorted_tables}


@pytest.fixture
def signed_in(http: Any, user: Any, client: Any) -> Any:
    """Alice's browser, signed in, with the CSRF cookie of a page she opened."""
    sign_in(http)
    return http


@pytest.fixture
def token(signed_in: Any) -> str:
    """The CSRF token of the page she opened."""
    return csrf(signed_in.get("/account").text)


# -- 1. CSRF tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_every_form_refuses_a_bad_csrf_token_and_changes_nothing(signed_in, app, provider, kind):
    token = BAD_TOKENS[kind]
    accepted = {}
    for path in form_paths(app):
        before = snapshot(provider)
        r = signed_in.post(path, data={**FIELDS, **({"csrf_token": token} if token else {})})
        if not refused(path, r.status_code) or snapshot(provider) != before:
            accepted[path] = r.status_code
    assert not accepted, f"accepted or failed with a {kind} CSRF token: {accepted}"
    assert signed_in.get("/account").status_code == 200


@pytest.mark.parametrize("kind", BAD_TOKENS)
@pytest.mark.parametrize("path", sorted(JSON_POSTS))
def test_passkey_endpoints_refuse_a_bad_csrf_header(signed_in, provider, path, kind):
    token = BAD_TOKENS[kind]
    before = snapshot(provider)
    headers = {"X-CSRF-Token": token.encode()} if token else {}
    r = signed_in.post(path, json={"credential": {}}, headers=headers)
    assert r.status_code == 403 and "error" in r.json()
    assert snapshot(provider) == before


# -- 7. bodies that cannot be read -------------------------------------------------------------------
def asgi_post(app: Any, path: str, headers: dict[str, str], receive: Any) -> int:
    """POSTs straight to the ASGI app with `receive` supplying the body; the response status."""
    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    async def run() -> None:
        with anyio.fail_after(30):  # a guard for a broken test, not a measurement
            await app(scope, receive, send)

    run_async(run)
    return status[0]


def browser_headers(http: Any, path: str, **extra: str) -> dict[str, str]:
    cookies = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    kind = "application/json" if path in JSON_POSTS else "application/x-www-form-urlencoded"
    return {"host": "127.0.0.1:8000", "cookie": cookies, "origin": ISSUER, "content-type": kind, **extra}


def endless(read: list[int], size: int = 16 * 1024) -> Any:
    """An ASGI receive that streams a body for ever, counting the chunks read in `read`."""
    async def receive() -> dict[str, Any]:
        read.append(size)
        return {"type": "http.request", "body": b"a" * size, "more_body": True}

    return receive


def broken_off(then: str) -> Any:
    """An ASGI receive that sends the start of a body, then nothing more ("wait") or a disconnect."""
    sent = []

    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"csrf_token=", "more_body": True}
        if then == "wait":
            await anyio.sleep_forever()
        return {"type": "http.disconnect"}

    return receive


def test_a_body_over_the_limit_is_refused_on_its_content_length_before_it_is_read(signed_in, app):
    for path in post_paths(app):
        read: list[int] = []
        headers = browser_headers(signed_in, path, **{"content-length": str(96 << 20)})
        status = asgi_post(app, path, headers, endless(read))
        assert 400 <= status < 500 and not read, (path, status, len(read))


def test_a_streamed_body_is_read_no_further_than_the_limit(signed_in, app):
    for path in post_paths(app):
        read: list[int] = []
        status = asgi_post(app, path, browser_headers(signed_in, path), endless(read))
        assert 400 <= status < 500 and sum(read) <= body.MAX_BODY + 16 * 1024, (path, status, sum(read))


def test_a_body_that_does_not_arrive_in_time_is_refused(signed_in, app, monkeypatch):
    monkeypatch.setattr(app.state, "body_read_timeout", 0.05)
    for path in post_paths(app):
        status = asgi_post(app, path, browser_headers(signed_in, path), broken_off("wait"))
        assert 400 <= status < 500, (path, status)


def test_a_client_gone_mid_body_is_one_line_in_the_log(signed_in, app, caplog):
    for path in sorted(set(post_paths(app)) - {"/login/passkey/options"}):  # the one that reads no body
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="idbroker"):
            status = asgi_post(app, path, browser_headers(signed_in, path), broken_off("disconnect"))
        assert 400 <= status < 500, (path, status)  # to nobody
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("idbroker")]
        if path.startswith(REFUSED_UNREAD):  # nothing was read to break off (the admin API audits the call)
            assert status in (401, 404) and all(line.startswith("security event admin.call") for line in lines), path
        else:
            assert lines == [f"POST {path}: the client disconnected before the end of the body"], path
        assert not any(r.exc_info for r in caplog.records), path


@pytest.mark.parametrize("content_type,payload", [
    ("application/x-www-form-urlencoded", b"csrf_token={csrf}&name=" + b"a" * body.MAX_BODY),
    ("application/json", b'{"credential": ' + DEEP + b"}"),
    ("application/json", b'{"credential": "\\ud800", "interaction": "\\udfff", "next": "/\\udbff"}'),
    ("multipart/form-data; boundary=b; charset=unicode_escape",  # a charset Starlette honours
     b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
     b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\n\\ud800@example.com\r\n--b--\r\n'),
    ("application/x-www-form-urlencoded",
     b"csrf_token={csrf}&" + b"&".join(name.encode() + b"=%00" for name in FIELDS)),
], ids=["over-limit", "nested-json", "lone-surrogates", "unicode-escape-part", "nul"])
def test_every_endpoint_refuses_a_body_it_cannot_use(signed_in, token, app, provider, content_type, payload):
    """With the page's valid CSRF token, so that the forms get as far as they would."""
    payload = payload.replace(b"{csrf}", token.encode())
    before = snapshot(provider)
    statuses = {path: signed_in.post(path, content=payload, headers={"Content-Type": content_type}).status_code
                for path in post_paths(app)}
    assert {path: s for path, s in statuses.items() if not refused(path, s)} == {}
    assert snapshot(provider) == before


# Broken chunked encoding cannot go through the in-process client: a real `idbroker serve`.
BROKEN_CHUNKS = {"bad-size": b"zz\r\nabc\r\n0\r\n\r\n", "size-mismatch": b"5\r\nabcdefghij\r\n0\r\n\r\n",
                 "no-end": b"5\r\nabcde\r\nnot a chunk"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """A real broker (SQLite) and the Cookie header of a browser signed in to it."""
    from peers.broker_process import Broker

    broker = Broker("sqlite", tmp_path_factory.mktemp("served"), None)
    broker.start()
    try:
        broker.cli("users", "add", "--email", "alice@example.com", "--password", PASSWORD)
        with httpx.Client(base_url=broker.issuer) as web:
            page = web.get("/login")
            r = web.post("/login", data={"csrf_token": csrf(page.text), "username": "alice@example.com",
                                         "password": PASSWORD})
            assert r.status_code == 303, r.text
            yield broker, "; ".join(f"{k}={v}" for k, v in web.cookies.items())
    finally:
        broker.stop()


def raw_request(port: int, data: bytes) -> bytes:
    """What the server answers before closing (b"" when it just closes: a quiet close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_broken_chunked_body_is_refused_by_every_endpoint(served, tmp_path):
    broker, cookie = served
    answers = {}
    for path in post_paths(create_app(provider=Provider(make_settings(tmp_path)))):
        kind = "application/json" if path in JSON_POSTS else "application/x-www-form-urlencoded"
        for broken, chunks in BROKEN_CHUNKS.items():
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{broker.port}\r\nOrigin: {broker.issuer}\r\n"
                    f"Cookie: {cookie}\r\nContent-Type: {kind}\r\nTransfer-Encoding: chunked\r\n"
                    "Connection: close\r\n\r\n").encode()
            answer = raw_request(broker.port, head + chunks)
            if answer and not refused(path, int(answer.split(b" ", 2)[1])):  # b"": closed quietly
                answers[(path, broken)] = answer[:200]
    assert not answers, answers
    log = broker.log(tail=100_000)
    assert "Traceback" not in log and "ClientDisconnect" not in log


def test_a_content_length_over_the_limit_is_answered_without_the_body(served):
    broker, _ = served
    head = (f"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{broker.port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {96 << 20}\r\n\r\n").encode()
    answer = b""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as s:
        s.sendall(head)  # and not one byte of the 96 MiB
        while b"}" not in answer and (chunk := s.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"invalid_request"' in answer


# -- 8. nested JSON ------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
def test_a_client_assertion_with_nested_json_is_invalid_client(http, register, path):
    key = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256"}, private=True)
    register("jwt-client", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
    for payload in (b'{"iss": "jwt-client", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"[" * 12_000):
        assertion = ".".join([b64url(b'{"alg":"ES256"}'), b64url(payload), b64url(b"sig")])
        r = http.post(path, data={"grant_type": "client_credentials", "token": "t", "client_assertion": assertion,
                                  "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text  # RFC 6749 §5.2


def test_a_passkey_credential_nested_too_deep_is_refused(signed_in):
    """The /mfa forms post the authenticator's answer as JSON text (the JSON body of /login/passkey
    is bounded the same way: test_every_endpoint_refuses_a_body_it_cannot_use)."""
    started = start_enrolment(signed_in, "webauthn")
    r = signed_in.post("/mfa/enrol", data={
        "csrf_token": csrf(started.text), "action": "confirm", "factor": hidden(started.text, "factor"),
        "interaction": "", "next": hidden(started.text, "next"),
        "webauthn_token": hidden(started.text, "webauthn_token"), "credential": DEEP.decode()})
    assert r.status_code == 400 and "could not be verified" in r.text


# -- 9. values longer than the database keeps ----------------------------------------------------------
def authorize_params(client: Any, **change: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {"client_id": client.client_id, "redirect_uri": client.redirect_uri, "response_type": "code",
            "scope": "openid", "state": "s", "nonce": "n", "code_challenge": challenge,
            "code_challenge_method": "S256", **change}


@pytest.mark.parametrize("name", [*MAX_LENGTHS, "state", "login_hint"])
def test_every_parameter_over_its_maximum_is_refused_at_the_edge(http, client, provider, name):
    limit = MAX_LENGTHS.get(name, MAX_PARAM)
    r = http.get("/oauth2/authorize", params=authorize_params(client, **{name: "a" * (limit + 1)}))
    if name in ("client_id", "redirect_uri", "state") or limit == MAX_PARAM:
        assert r.status_code == 400 and "location" not in r.headers  # nothing trusted to redirect to
    else:  # RFC 6749 §4.1.2.1, at the trusted redirect URI
        assert r.status_code == 303 and r.headers["location"].startswith(client.redirect_uri), r.text
        assert query_of(r.headers["location"])["error"] == "invalid_request"
    with provider.db.session(write=False) as s:
        assert s.scalars(select(Interaction)).first() is None


def test_every_stored_parameter_at_its_maximum_completes_the_flow(http, flow, register, user, provider):
    """The maxima fit the columns on both stores (PostgreSQL refuses what does not fit)."""
    uri = "https://app.example/cb?" + "p" * (MAX_LENGTHS["redirect_uri"] - len("https://app.example/cb?"))
    client = register("c" * MAX_LENGTHS["client_id"], redirect_uris=[uri], first_party=True)
    q, verifier = flow.code_flow(client, nonce="n" * MAX_LENGTHS["nonce"])
    with provider.db.session(write=False) as s:
        code = s.scalars(select(AuthorizationCode)).one()
    assert (code.client_id, code.redirect_uri, code.nonce) == (client.client_id, uri, "n" * MAX_LENGTHS["nonce"])
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "authorization_code", "code": q["code"],
                                                            "redirect_uri": uri, "code_verifier": verifier})
    assert r.status_code == 200, r.text


def test_max_age_in_non_ascii_digits_is_invalid_request(http, client):
    r = http.get("/oauth2/authorize", params=authorize_params(client, max_age="²"))  # str.isdigit() says yes
    assert r.status_code == 303 and query_of(r.headers["location"])["error"] == "invalid_request"
