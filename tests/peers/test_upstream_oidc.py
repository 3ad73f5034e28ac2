"""The "oidc" upstream kind (federation/openid_connect.py) against a REAL OpenID Connect provider: panva's
npm ``oidc-provider`` (node/upstream_provider.mjs) on 127.0.0.1, its dev login and consent pages
driven with httpx as a browser would, the callback captured instead of followed.

Covered: a sign-in (ID token + userinfo merged, groups mapped from a custom claim, amr passed
through), a second sign-in after the upstream rotated its signing key (new kid -> one JWKS
refetch, and no second refetch within the rate limit), a wrong state, a wrong nonce, an ID token
whose signature was tampered with on the way, the user cancelling at the upstream
(error=access_denied), an upstream that is down and one that answers garbage. Every wait is
bounded."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from broker_process import free_port
from joserfc.jwk import ECKey
from oidc_upstream_process import CLIENT_ID, CLIENT_SECRET, UpstreamProcess
from support import Quiet, query_of, run_coroutine, serving

from idbroker.federation.base import REJECTED, StartContext, UpstreamConfig, UpstreamError, UpstreamUnavailable
from idbroker.federation.oauth import DENIED, EXPIRED
from idbroker.federation.openid_connect import OpenIDConnectUpstream

CALLBACK = "http://127.0.0.1:9/idp/up1/callback"  # registered upstream, never fetched
CLIENT_KEY = ECKey.generate_key("P-256", parameters={"kid": "ours-1"})  # our private_key_jwt key
ABORT_RE = re.compile(r'href="([^"]*/abort)"')

Hook = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def upstream(node: dict[str, str]) -> Iterator[UpstreamProcess]:
    process = UpstreamProcess(node, CALLBACK, CLIENT_KEY)
    process.start("k1")
    try:
        yield process
    finally:
        process.stop()


class Recording(httpx.AsyncBaseTransport):
    """The real network, with a record of the paths asked and an optional rewrite of the token
    endpoint's JSON answer (a man in the middle, for the tampering cases)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []
        self.token_hook: Hook | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/token" and self.token_hook is not None:
            body = json.loads(await response.aread())
            return httpx.Response(response.status_code, json=self.token_hook(body))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def make(issuer: str, http: httpx.AsyncClient, **extra: Any) -> OpenIDConnectUpstream:
    options = {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "scopes": ["openid", "email", "profile", "roles"], "claims": {"groups": "roles"}, **extra}
    return OpenIDConnectUpstream(UpstreamConfig(id="up1", kind="oidc", name="Upstream", options=options),
                                 http=http)


def run(test: Callable[[httpx.AsyncClient, Recording], Awaitable[None]]) -> None:
    async def main() -> None:
        transport = Recording()
        async with httpx.AsyncClient(transport=transport) as http:
            await test(http, transport)
    run_coroutine(main())


def browse(url: str, *, cancel: bool = False) -> dict[str, str]:
    """The browser at the upstream: follows its redirects, signs in as alice, consents (or
    cancels), and returns the query of the redirect to our callback."""
    with httpx.Client(timeout=10.0) as browser:
        response = browser.get(url)
        for _ in range(12):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(CALLBACK):
                    return query_of(location)
                response = browser.get(location)
                continue
            assert response.status_code == 200, response.text
            action = urljoin(str(response.url), response.text.split('action="', 1)[1].split('"', 1)[0])
            if cancel:  # the page's "[ Cancel ]" link
                response = browser.get(urljoin(str(response.url), ABORT_RE.search(response.text).group(1)))  # type: ignore[union-attr]
            elif 'value="login"' in response.text:
                response = browser.post(action, data={"prompt": "login", "login": "alice", "password": "any"})
            else:
                response = browser.post(action, data={"prompt": "consent"})
    raise AssertionError("the upstream never redirected to the callback")


async def sign_in(upstream: OpenIDConnectUpstream, *, cancel: bool = False,
                  tamper: Callable[[StartContext, dict[str, str]], None] | None = None) -> Any:
    ctx = StartContext(callback_url=CALLBACK)
    params = browse(await upstream.start(ctx), cancel=cancel)
    if tamper:
        tamper(ctx, params)
    return await upstream.finish(ctx, params)


def test_sign_in_merges_id_token_and_userinfo(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        identity = await sign_in(make(upstream.issuer, http))
        assert identity.provider_id == "up1" and identity.subject == "alice"
        assert identity.email == "alice@upstream.test" and identity.email_verified
        assert identity.claims["name"] == "Alice Upstream" and identity.claims["family_name"] == "Upstream"
        assert identity.groups == ("staff", "admins")
        assert identity.amr == ("pwd", "mfa") and identity.mfa
        assert "/me" in transport.paths  # userinfo was asked
    run(test)


def test_private_key_jwt_client_authentication(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        oidc = make(upstream.issuer, http, client_id=CLIENT_ID + "-pkjwt", client_secret=None,
                    token_auth="private_key_jwt", private_key=CLIENT_KEY.as_pem(private=True).decode(),
                    key_id="ours-1")
        assert (await sign_in(oidc)).subject == "alice"
    run(test)


def test_key_rotation_refetches_the_jwks_once(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        oidc = make(upstream.issuer, http)
        await sign_in(oidc)
        upstream.stop()
        upstream.start("k2")  # a new signing key with a new kid
        identity = await sign_in(oidc)
        assert identity.subject == "alice"
        assert transport.paths.count("/jwks") == 2
        assert [k.kid for k in oidc._jwks.keys] == ["k2"]  # type: ignore[union-attr]

        def unknown_kid(body: dict[str, Any]) -> dict[str, Any]:
            header, rest = body["id_token"].split(".", 1)
            claims = json.loads(base64.urlsafe_b64decode(header + "=="))
            forged = base64.urlsafe_b64encode(json.dumps({**claims, "kid": "k3"}).encode()).rstrip(b"=")
            return {**body, "id_token": forged.decode() + "." + rest}
        transport.token_hook = unknown_kid
        with pytest.raises(UpstreamError) as caught:
            await sign_in(oidc)
        assert caught.value.message == REJECTED and "unknown kid" in caught.value.detail
        assert transport.paths.count("/jwks") == 2  # rate-limited: no third fetch
    run(test)


def test_wrong_state_is_refused(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        def other_state(ctx: StartContext, params: dict[str, str]) -> None:
            params["state"] = "not-the-one-we-sent"
        with pytest.raises(UpstreamError) as caught:
            await sign_in(make(upstream.issuer, http), tamper=other_state)
        assert caught.value.message == EXPIRED and "/token" not in transport.paths
    run(test)


def test_wrong_nonce_is_refused(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        def other_nonce(ctx: StartContext, params: dict[str, str]) -> None:
            ctx.state["nonce"] = "another-login-attempt"
        with pytest.raises(UpstreamError) as caught:
            await sign_in(make(upstream.issuer, http), tamper=other_nonce)
        assert caught.value.message == REJECTED and "nonce" in caught.value.detail
    run(test)


def test_tampered_id_token_signature_is_refused(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        def flip(body: dict[str, Any]) -> dict[str, Any]:
            head, payload, signature = body["id_token"].split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
            claims["sub"] = "mallory"
            forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            return {**body, "id_token": f"{head}.{forged}.{signature}"}
        transport.token_hook = flip
        with pytest.raises(UpstreamError) as caught:
            await sign_in(make(upstream.issuer, http))
        assert caught.value.message == REJECTED and "signature" in caught.value.detail
        assert not isinstance(caught.value, UpstreamUnavailable)
    run(test)


def test_cancel_at_the_upstream_is_access_denied(upstream: UpstreamProcess) -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        with pytest.raises(UpstreamError) as caught:
            await sign_in(make(upstream.issuer, http), cancel=True)
        assert caught.value.message == DENIED and "access_denied" in caught.value.detail
        assert "/token" not in transport.paths
    run(test)


def test_upstream_down_is_unavailable() -> None:
    async def test(http: httpx.AsyncClient, transport: Recording) -> None:
        with pytest.raises(UpstreamUnavailable) as caught:
            await make(f"http://127.0.0.1:{free_port()}", http).start(StartContext(callback_url=CALLBACK))
        assert "ConnectError" in caught.value.detail
    run(test)


class Garbage(Quiet):
    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self.answer(200, b'{"issuer": "http://127.0.0.1", "authorization_endpoint": ')


def test_upstream_answering_garbage_is_unavailable() -> None:
    with serving(Garbage) as base:
        async def test(http: httpx.AsyncClient, transport: Recording) -> None:
            with pytest.raises(UpstreamUnavailable) as caught:
                await make(base, http).start(StartContext(callback_url=CALLBACK))
            assert "not a JSON object" in caught.value.detail
        run(test)
