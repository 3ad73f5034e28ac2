"""Unlinking an upstream provider from an account with no password: allowed when the account has
a passkey it can sign in with (a way in), refused otherwise - never the last way in. The broker's
issuer is a host name here (localhost), since passkey sign-in needs a domain as RP id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from mfa_helpers import csrf
from starlette.testclient import TestClient
from test_upstream_sign_in import FakeUpstream, come_back, to_upstream

from idbroker.app import create_app
from idbroker.federation import kinds
from idbroker.federation.base import ExternalIdentity
from idbroker.federation.linking import Linking, LinkRefused
from idbroker.store.db import utcnow
from idbroker.store.models import MfaFactor

ISSUER = "http://localhost:8000"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"issuer": ISSUER}


@pytest.fixture(autouse=True)
def fake_kind(monkeypatch: Any) -> None:
    monkeypatch.setitem(kinds.UPSTREAMS, "fake", FakeUpstream)


@pytest.fixture
def http(provider: Any) -> Iterator[TestClient]:
    with TestClient(create_app(provider=provider), base_url=ISSUER, follow_redirects=False) as client:
        yield client


@pytest.fixture
def gus(provider: Any) -> Any:
    """An account made by an upstream sign-in: no password, one link."""
    provider.upstreams.add("up1", "fake", "Example Upstream")
    user = provider.users.create("gus@example.com", None, email_verified=True)
    provider.linking._link_to(user, ExternalIdentity("up1", "gus-up"))
    return user


def add_passkey(provider: Any, user: Any, *, discoverable: bool | None = True, confirmed: bool = True) -> None:
    now = utcnow()
    with provider.db.session() as s:
        s.add(MfaFactor(id=secrets.token_hex(8), user_id=user.id, kind="webauthn", name="Laptop",
                        credential_id=secrets.token_urlsafe(16),
                        data={"public_key": "x", "discoverable": discoverable}, created_at=now,
                        confirmed_at=now if confirmed else None))


def test_passkey_sign_in_works_here(provider: Any) -> None:
    assert provider.passkeys.available and provider.linking.passkey_sign_in


def test_last_link_of_an_account_with_a_passkey_can_be_unlinked_from_the_page(http: Any, provider: Any,
                                                                              gus: Any) -> None:
    add_passkey(provider, gus)
    sent = to_upstream(http, "/idp/up1/start")
    assert come_back(http, sent, sub="gus-up").status_code == 303  # signed in as Gus
    page = http.get("/account/identities")
    assert page.status_code == 200 and 'action="/idp/up1/unlink"' in page.text
    r = http.post("/idp/up1/unlink", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"].endswith("/account/identities"), r.text
    assert provider.linking.links(gus.id) == []


def test_last_link_without_a_passkey_stays(http: Any, provider: Any, gus: Any) -> None:
    sent = to_upstream(http, "/idp/up1/start")
    assert come_back(http, sent, sub="gus-up").status_code == 303
    page = http.get("/account/identities")
    r = http.post("/idp/up1/unlink", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 400 and "only way to sign in" in r.text
    assert len(provider.linking.links(gus.id)) == 1


@pytest.mark.parametrize("passkey", [{"discoverable": False}, {"confirmed": False}],
                         ids=["not-discoverable", "not-confirmed"])
def test_a_passkey_that_cannot_sign_in_is_no_way_in(provider: Any, gus: Any, passkey: dict[str, Any]) -> None:
    add_passkey(provider, gus, **passkey)
    with pytest.raises(LinkRefused):
        provider.linking.unlink(gus, "up1")
    assert len(provider.linking.links(gus.id)) == 1


def test_unknown_discoverability_counts_as_a_way_in(provider: Any, gus: Any) -> None:
    add_passkey(provider, gus, discoverable=None)  # an authenticator that did not say (no credProps)
    assert provider.linking.unlink(gus, "up1") is True


def test_no_passkey_sign_in_on_this_broker_means_no_way_in(provider: Any, gus: Any) -> None:
    """An IP address issuer: browsers refuse it as RP id, so a passkey cannot sign in."""
    add_passkey(provider, gus)
    linking = Linking(provider.db, provider.users, passkey_sign_in=False)
    with pytest.raises(LinkRefused):
        linking.unlink(gus, "up1")
    assert len(provider.linking.links(gus.id)) == 1
