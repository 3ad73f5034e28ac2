"""Helpers shared by the second-factor tests: sign in, set a factor up through the pages, read
the hosted forms, and a frozen TOTP clock."""

from __future__ import annotations

import html
import re
from typing import Any

import pyotp
from joserfc import jwt
from sqlalchemy import select
from support import CSRF_RE, ISSUER, PASSWORD, form_fields, pkce_pair, query_of

from idbroker.store.models import AuditEvent, MfaFactor

SECRET_RE = re.compile(r'<code class="secret" id="secret"[^>]*>([A-Z2-7 ]+)</code>')
FACTOR_RE = re.compile(r'name="factor" value="([^"]+)"')
CODES_RE = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")
T0 = 1_700_000_000.0  # a fixed moment, 10 s into a 30 s step


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def step(self, steps: int = 1) -> None:
        self.now += 30 * steps


def csrf(page_html: str) -> str:
    return CSRF_RE.search(page_html).group(1)  # type: ignore[union-attr]


def sign_in(http: Any, email: str = "alice@example.com", password: str = PASSWORD, next_path: str = "") -> Any:
    page = http.get("/login")
    data = {"csrf_token": csrf(page.text), "username": email, "password": password}
    if next_path:
        data["next"] = next_path
    r = http.post("/login", data=data)
    assert r.status_code == 303, r.text
    return r


def hidden(page_html: str, name: str) -> str:
    """A field of the page's own forms (in <main>: the language menu's `next` is outside it)."""
    main = page_html[page_html.find("<main"):] if "<main" in page_html else page_html
    found = re.search(rf'name="{name}" value="([^"]*)"', main)
    assert found, f"no {name} field"
    return html.unescape(found.group(1))


def start_enrolment(http: Any, kind: str, *, interaction: str = "", next_path: str = "/account/security",
                    page: Any = None, **fields: str) -> Any:
    """Posts the start form of a kind (from `page`, or the security page)."""
    if page is None:
        page = http.get("/account/security")
        assert page.status_code == 200, page.text
    data = {"csrf_token": csrf(page.text), "action": "start", "kind": kind, "interaction": interaction,
            "next": "" if interaction else next_path, **fields}
    return http.post("/mfa/enrol", data=data)


def confirm_enrolment(http: Any, page: Any, code: str, name: str = "") -> Any:
    fields = {"csrf_token": csrf(page.text), "action": "confirm", "factor": FACTOR_RE.search(page.text).group(1),
              "interaction": hidden(page.text, "interaction"), "next": hidden(page.text, "next"), "code": code,
              "name": name}
    return http.post("/mfa/enrol", data=fields)


def totp_secret(page: Any) -> str:
    found = SECRET_RE.search(page.text)
    assert found, page.text
    return found.group(1).replace(" ", "")


def code_at(secret: str, moment: float) -> str:
    return pyotp.TOTP(secret).at(int(moment))


def enrol_totp(http: Any, clock: Clock, **kw: Any) -> tuple[str, list[str], Any]:
    """Sets up an authenticator app; returns (secret, recovery codes shown, the final page)."""
    page = start_enrolment(http, "totp", **kw)
    assert page.status_code == 200, page.text
    secret = totp_secret(page)
    done = confirm_enrolment(http, page, code_at(secret, clock()))
    assert done.status_code == 200 and "Two-step verification is on" in done.text, done.text
    return secret, CODES_RE.findall(done.text), done


def verify_form(page: Any, code: str, *, remember: bool = False, action: str = "verify") -> dict[str, str]:
    data = {"csrf_token": csrf(page.text), "interaction": hidden(page.text, "interaction"),
            "next": hidden(page.text, "next"), "action": action, "factor": hidden(page.text, "factor"),
            "code": code}
    if remember:
        data["remember"] = "yes"
    return data


def submit_code(http: Any, page: Any, code: str, **kw: Any) -> Any:
    return http.post("/mfa", data=verify_form(page, code, **kw))


def follow(http: Any, response: Any) -> Any:
    while response.status_code in (302, 303) and response.headers["location"].startswith(ISSUER):
        response = http.get(response.headers["location"])
    return response


def authorize(http: Any, client: Any, **extra: str) -> tuple[Any, str]:
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                  scope="openid profile email", state="st", nonce="n-1", code_challenge=challenge,
                  code_challenge_method="S256", **extra)
    return follow(http, http.get("/oauth2/authorize", params=params)), verifier


def login_page(http: Any, page: Any, email: str = "alice@example.com") -> Any:
    assert 'autocomplete="current-password"' in page.text, page.text
    return follow(http, http.post("/login", data={**form_fields(page.text), "username": email,
                                                  "password": PASSWORD}))


def consent_if_asked(http: Any, page: Any) -> Any:
    if page.status_code == 200 and 'action="/consent"' in page.text:
        page = follow(http, http.post("/consent", data={**form_fields(page.text), "decision": "allow"}))
    return page


def redeem(http: Any, provider: Any, client: Any, landing: Any, verifier: str) -> dict[str, Any]:
    """The ID token's claims for the code at the client's redirect URI."""
    assert landing.status_code == 303 and landing.headers["location"].startswith(client.redirect_uri), landing.text
    code = query_of(landing.headers["location"])["code"]
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return jwt.decode(r.json()["id_token"], provider.keys.public_keyset()).claims


def factors_of(provider: Any, user_id: int) -> list[MfaFactor]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(MfaFactor).where(MfaFactor.user_id == user_id)))


def events(provider: Any, user_id: int) -> list[str]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent.kind).where(AuditEvent.user_id == user_id).order_by(AuditEvent.id)))
