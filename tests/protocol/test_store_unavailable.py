"""The database going away under a request (restarted, connection terminated, failed over) is a
503 with Retry-After - an RFC 6749 error for APIs, a page in the user's language for browsers -
never a 500 (tests/peers/test_scale_out.py terminates real PostgreSQL connections under load)."""

from __future__ import annotations

from typing import Any

from mfa_helpers import csrf
from sqlalchemy.exc import InterfaceError, OperationalError

GONE = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def boom(*args: Any, **kwargs: Any) -> Any:
    raise GONE


def test_a_sign_in_page_says_try_again(http: Any, provider: Any, user: Any, monkeypatch: Any) -> None:
    page = http.get("/login")
    monkeypatch.setattr(provider.users, "check", boom)
    r = http.post("/login", data={"csrf_token": csrf(page.text), "username": "alice@example.com",
                                  "password": "whatever it is"},
                  headers={"accept": "text/html", "accept-language": "fr"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "Le service est momentanément occupé" in r.text and "Traceback" not in r.text


def test_an_api_gets_an_oauth_error(http: Any, provider: Any, client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(provider.client_auth, "authenticate",
                        lambda *a, **k: (_ for _ in ()).throw(InterfaceError("SELECT 1", {}, Exception("closed"))))
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "client_credentials"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "temporarily_unavailable" and r.headers["cache-control"] == "no-store"


def test_jwks_while_its_keys_cannot_be_reloaded(http: Any, provider: Any, monkeypatch: Any) -> None:
    """JWKS is served before the router (web/documents.py), yet a store that is away when its keys
    are due for a reload is still a 503, as on every other endpoint."""
    provider.keys.invalidate()
    monkeypatch.setattr(provider.keys, "_load", boom)
    r = http.get("/.well-known/jwks.json")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "temporarily_unavailable"
    monkeypatch.undo()
    assert http.get("/.well-known/jwks.json").json()["keys"]
