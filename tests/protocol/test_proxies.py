"""Reverse proxies (issue 13, Clear failures): X-Forwarded-For/-Proto/-Host and RFC 7239 Forwarded
count only when the connection comes from `trusted_proxies`; then throttling and audit see the real
client address. Spoofed headers from any other peer are ignored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, form_fields

from idbroker.settings import SettingsError, load_settings
from idbroker.store.models import AuditEvent
from idbroker.web.proxies import networks, resolve

PROXY = ("192.0.2.10", 40000)      # the reverse proxy's address
TRUSTED = {"trusted_proxies": ["192.0.2.0/28", "2001:db8:ffff::/48"]}


def _failed_login(app: Any, peer: tuple[str, int], headers: dict[str, str], email: str = "alice@example.com") -> Any:
    with TestClient(app, base_url=ISSUER, client=peer, follow_redirects=False) as http:
        page = http.get("/login")
        return http.post("/login", headers=headers, data={**form_fields(page.text), "username": email,
                                                          "password": "not " + PASSWORD})


def _audit_ips(provider: Any) -> list[str | None]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent.ip).where(AuditEvent.kind == "login.failed").order_by(AuditEvent.id)))


def test_headers_from_an_untrusted_peer_are_ignored(app, provider, user):
    spoof = {"X-Forwarded-For": "203.0.113.5", "Forwarded": "for=203.0.113.6", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "evil.example"}
    _failed_login(app, PROXY, spoof)  # no trusted_proxies at all: even this peer is not believed
    assert _audit_ips(provider) == ["192.0.2.10"]
    with TestClient(app, base_url=ISSUER, client=("198.51.100.9", 1)) as http:
        r = http.get("/healthz", headers=spoof)
        assert r.status_code == 200


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
def test_a_trusted_proxy_names_the_client(app, provider, user, settings_overrides):
    # The rightmost address that is not a trusted proxy; what the client wrote on the left is not read.
    _failed_login(app, PROXY, {"X-Forwarded-For": "127.0.0.1, 203.0.113.5, 192.0.2.11"})
    # RFC 7239 Forwarded, IPv6 with a port.
    _failed_login(app, PROXY, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=id.example'})
    # The same headers from a peer outside the list: its own address.
    _failed_login(app, ("198.51.100.9", 1), {"X-Forwarded-For": "203.0.113.99"})
    assert _audit_ips(provider) == ["203.0.113.5", "2001:db8::7", "198.51.100.9"]


@pytest.mark.parametrize("settings_overrides", [{**TRUSTED, "ip_failure_threshold": 2, "lockout_threshold": 50}])
def test_throttling_sees_the_forwarded_address(app, provider, user, settings_overrides):
    """Behind the proxy, one client's failures slow that client only - not everyone the proxy serves."""
    for n in range(3):
        _failed_login(app, PROXY, {"X-Forwarded-For": "203.0.113.5"}, email=f"nobody{n}@example.com")
    slowed = _failed_login(app, PROXY, {"X-Forwarded-For": "203.0.113.5"})
    other = _failed_login(app, PROXY, {"X-Forwarded-For": "203.0.113.77"})
    assert slowed.status_code == 429, slowed.status_code
    assert other.status_code == 401, other.status_code


@pytest.mark.parametrize("settings_overrides", [TRUSTED])
def test_metrics_allow_applies_to_the_forwarded_client(app, settings_overrides):
    """A proxy on an allowed address must not open /metrics to everyone behind it."""
    with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 1)) as local:
        assert local.get("/metrics").status_code == 200
    with TestClient(app, base_url=ISSUER, client=PROXY) as proxied:
        assert proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 401


def test_resolve_walks_from_the_right():
    trusted = networks(["10.0.0.0/8"])
    headers = {"x-forwarded-for": "1.1.1.1, 203.0.113.5, 10.0.0.2", "x-forwarded-proto": "https",
               "x-forwarded-host": "id.example"}
    assert resolve("10.0.0.1", headers, trusted) == ("203.0.113.5", "https", "id.example")
    assert resolve("203.0.113.1", headers, trusted) == (None, None, None)  # untrusted peer
    # Every hop trusted: the leftmost is the client.
    assert resolve("10.0.0.1", {"x-forwarded-for": "10.1.1.1, 10.0.0.2"}, trusted)[0] == "10.1.1.1"
    # An unknown hop stops the walk: nothing to its left is believed.
    assert resolve("10.0.0.1", {"x-forwarded-for": "203.0.113.5, unknown"}, trusted)[0] is None
    # Forwarded wins over X-Forwarded-*; a bad proto or host is dropped.
    assert resolve("10.0.0.1", {"forwarded": "for=198.51.100.1;proto=gopher;host=\"a b\"",
                                "x-forwarded-for": "203.0.113.5"}, trusted) == ("198.51.100.1", None, None)
    # IPv4-mapped IPv6 peers match IPv4 networks.
    assert resolve("::ffff:10.0.0.1", {"x-forwarded-for": "203.0.113.5"}, trusted)[0] == "203.0.113.5"


def test_trusted_proxies_from_the_environment_and_checked():
    s = load_settings(env={"IDBROKER_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1"})
    assert s.trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    with pytest.raises(SettingsError) as err:
        load_settings(env={"IDBROKER_TRUSTED_PROXIES": "10.0.0.0/33", "IDBROKER_METRICS_ALLOW": "nope"})
    text = str(err.value)
    assert "trusted_proxies" in text and "metrics_allow" in text
