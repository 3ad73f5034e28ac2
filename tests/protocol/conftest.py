"""Fixtures shared by the protocol suites."""

from __future__ import annotations

from typing import Any

import pytest
from mfa_helpers import Clock, enrol_totp, sign_in

from idbroker.mfa import totp


@pytest.fixture
def clock(monkeypatch: Any) -> Clock:
    """TOTP's notion of now, frozen and steppable."""
    frozen = Clock()
    monkeypatch.setattr(totp, "now", frozen)
    return frozen


@pytest.fixture
def client(register: Any) -> Any:
    """A registered third-party client (modules that need another define their own)."""
    return register()


@pytest.fixture
def tokens(http: Any, flow: Any, client: Any, user: Any) -> dict[str, Any]:
    """The token response of a code flow of `client` with every user scope."""
    q, verifier = flow.code_flow(client, scope="openid profile email phone address offline_access")
    return http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()


@pytest.fixture
def enrolled(http: Any, user: Any, clock: Clock) -> tuple[str, list[str]]:
    """Alice with an authenticator app: (its secret, her recovery codes); the test's browser is
    signed out again."""
    sign_in(http)
    secret, codes, _ = enrol_totp(http, clock)
    http.cookies.clear()
    return secret, codes
