"""What the browser tests (and scripts/screenshots) share: Chromium from the system, a running
``idbroker serve`` wired to a real SMTP server, a relying party's redirect URI that records what
reaches it, and the HTTP half of the code flow (PKCE, token redemption, ID token checks).

Everything listens on 127.0.0.1. Client logos use an https:// address that Playwright answers
itself (``serve_logos``): the pages' CSP allows https: images but not other loopback origins.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from peers.broker_process import PASSWORD, Broker
from support import MailSink, Quiet, pkce_pair, serve

CHROMIUM = os.environ.get("IDBROKER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
MAIL_FROM = "Broker <no-reply@idbroker.test>"
LOGO_ORIGIN = "https://logos.idbroker.test"
WAIT_SECONDS = 30.0
CODE_RE = re.compile(r"^\s+(\d{6})\s*$", re.M)

__all__ = ["PASSWORD", "Broker", "MailSink"]


def chromium_missing() -> str | None:
    """Why Chromium cannot be used, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"Chromium is not installed at {CHROMIUM} (./test installs the Debian package chromium; "
                "IDBROKER_TEST_CHROMIUM points elsewhere)")
    return None


def launch(playwright: Any) -> Any:
    """The system Chromium, headless (never a Playwright-downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


# -- the broker -------------------------------------------------------------------------------------
def broker_env(mail: MailSink, **settings: str) -> dict[str, str]:
    """IDBROKER_* variables for a broker that mails through `mail`; `settings` are option names
    (``terms_version="1"``) added on top."""
    env = {
        "IDBROKER_MAIL_BACKEND": "smtp", "IDBROKER_SMTP_HOST": "127.0.0.1", "IDBROKER_SMTP_PORT": str(mail.port),
        "IDBROKER_SMTP_SECURITY": "none", "IDBROKER_MAIL_FROM": MAIL_FROM,
        # Cheap hashing, and clients registered by a test are seen at once.
        "IDBROKER_ARGON2_MEMORY_KIB": "8192", "IDBROKER_ARGON2_TIME_COST": "1", "IDBROKER_CACHE_SECONDS": "0",
    }
    env.update({"IDBROKER_" + name.upper(): value for name, value in settings.items()})
    return env


def make_broker(data_dir: Path, mail: MailSink, database_url: str | None = None, **settings: str) -> Broker:
    """A broker (not started yet) whose CLI and server share `data_dir` and the settings."""
    broker = Broker("postgres" if database_url else "sqlite", data_dir, database_url)
    broker.env.update(broker_env(mail, **settings))
    return broker


def restart(broker: Broker, **settings: str) -> None:
    """Stops the server and starts it again on the same port and data, with changed settings."""
    broker.stop()
    broker.env.update({"IDBROKER_" + name.upper(): value for name, value in settings.items()})
    broker.start()


def add_user(broker: Broker, email: str, password: str = PASSWORD, **names: str) -> dict[str, Any]:
    args = ["users", "add", "--email", email, "--password", password]
    for key, value in names.items():
        args += [f"--{key.replace('_', '-')}", value]
    return broker.cli(*args)


def stored_user(broker: Broker, email: str) -> dict[str, Any]:
    """The user's row as the broker stored it (what the CLI does not show, e.g. custom attributes)."""
    from sqlalchemy import select

    from idbroker.store.db import Database
    from idbroker.store.models import User

    db = Database(broker.env.get("IDBROKER_DATABASE_URL") or f"sqlite:///{broker.data_dir / 'idbroker.db'}")
    try:
        with db.session(write=False) as s:
            row = s.scalar(select(User).where(User.email == email))
            assert row is not None, f"no user {email}"
            return {c.key: getattr(row, c.key) for c in User.__table__.columns}
    finally:
        db.dispose()


def unique_email(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


# -- the relying party ----------------------------------------------------------------------------
class RelyingParty:
    """An application's redirect URI on loopback: GET /cb records its query and shows a page."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        rp = self

        class Handler(Quiet):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path != "/cb":
                    self.send_error(404)
                    return
                with rp._arrived:
                    rp.calls.append(dict(parse_qsl(parts.query)))
                    rp._arrived.notify_all()
                self.answer(200, b"<!doctype html><html lang=en><title>Relying party</title>"
                                 b"<h1>Back at the application</h1>", "text/html; charset=utf-8")

        self.origin, self.stop = serve(Handler)
        self.redirect_uri = self.origin + "/cb"

    def received(self, state: str, timeout: float = WAIT_SECONDS) -> dict[str, str]:
        """The query of the callback that carried `state` (bounded wait on its arrival)."""
        def mine() -> list[dict[str, str]]:
            return [q for q in self.calls if q.get("state") == state]

        with self._arrived:
            self._arrived.wait_for(lambda: bool(mine()), timeout=timeout)
            found = mine()
        assert len(found) == 1, f"expected one callback with state {state!r}, got {found}"
        return found[0]


@dataclass
class Client:
    client_id: str
    secret: str | None
    redirect_uri: str


def add_client(broker: Broker, rp: RelyingParty, client_id: str, *args: str) -> Client:
    row = broker.cli("clients", "add", "--client-id", client_id, "--redirect-uri", rp.redirect_uri,
                     "--post-logout-redirect-uri", rp.origin + "/bye", *args)
    return Client(client_id, row.get("client_secret"), rp.redirect_uri)


# -- the code flow over HTTP -------------------------------------------------------------------------
@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


def authorization(broker: Broker, client: Client, scope: str = "openid profile email", **extra: str) -> Authorization:
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    params = {"client_id": client.client_id, "redirect_uri": client.redirect_uri, "response_type": "code",
              "scope": scope, "state": state, "nonce": nonce, "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    return Authorization(broker.issuer + "/oauth2/authorize?" + urlencode(params), state, nonce, verifier)


def redeem(broker: Broker, client: Client, auth: Authorization, callback: dict[str, str]) -> dict[str, Any]:
    """Redeems the code the browser brought back and checks the tokens; returns the ID token's
    claims and the userinfo answer."""
    assert callback.get("state") == auth.state, callback
    assert callback.get("iss") == broker.issuer, callback  # RFC 9207
    assert callback.get("code"), callback
    assert client.secret
    with httpx.Client(timeout=10.0) as http:
        answer = http.post(broker.issuer + "/oauth2/token", auth=(client.client_id, client.secret),
                           data={"grant_type": "authorization_code", "code": callback["code"],
                                 "redirect_uri": client.redirect_uri, "code_verifier": auth.verifier})
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        jwks = http.get(broker.issuer + "/.well-known/jwks.json").json()
        claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks)).claims
        assert claims["iss"] == broker.issuer and claims["aud"] == client.client_id, claims
        assert claims["nonce"] == auth.nonce, claims
        info = http.get(broker.issuer + "/oauth2/userinfo",
                        headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 200, info.text
        # A code is good once (RFC 6749 §4.1.2).
        again = http.post(broker.issuer + "/oauth2/token", auth=(client.client_id, client.secret),
                          data={"grant_type": "authorization_code", "code": callback["code"],
                                "redirect_uri": client.redirect_uri, "code_verifier": auth.verifier})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    return {"id_token": claims, "userinfo": info.json()}


# -- mail -------------------------------------------------------------------------------------------
def mail_to(mail: MailSink, to: str, count: int = 1) -> tuple[str, str]:
    """(subject, text) of the `count`-th message to `to`."""
    msg = mail.wait_for(to, count, timeout=WAIT_SECONDS)[count - 1]
    return str(msg["Subject"]), MailSink.text(msg)


def code_in(text: str) -> str:
    found = CODE_RE.search(text)
    assert found, f"no 6-digit code in:\n{text}"
    return found.group(1)


def link_in(text: str, issuer: str, path: str) -> str:
    found = re.search(re.escape(issuer + path) + r"\?\S+", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(0)


# -- logos ------------------------------------------------------------------------------------------
def logo_svg(letter: str, color: str) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
            f'<rect width="96" height="96" rx="20" fill="{color}"/>'
            f'<text x="48" y="64" font-family="DejaVu Sans, sans-serif" font-size="48" font-weight="bold" '
            f'fill="#fff" text-anchor="middle">{letter}</text></svg>').encode()


def logo_url(name: str) -> str:
    return f"{LOGO_ORIGIN}/{name}.svg"


def serve_logos(context: Any, logos: dict[str, bytes]) -> None:
    """Answers https://logos.idbroker.test/<name>.svg in this browser context, without a network."""
    def answer(route: Any) -> None:
        name = urlsplit(route.request.url).path.strip("/").removesuffix(".svg")
        body = logos.get(name)
        if body is None:
            route.fulfill(status=404, body=b"")
        else:
            route.fulfill(status=200, body=body, headers={"Content-Type": "image/svg+xml"})

    context.route(LOGO_ORIGIN + "/**", answer)


@contextmanager
def running(broker: Broker) -> Iterator[Broker]:
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
