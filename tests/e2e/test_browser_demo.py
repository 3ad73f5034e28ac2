"""`idbroker demo` in Chromium: a broker with no issuer configured (so `http://localhost:PORT`,
where passkeys work), the demo relying party it serves (examples/demo_rp: code + PKCE + nonce,
claims, userinfo, refresh, a protected API, RP-initiated logout) and the single-page example
(examples/spa, oidc-client-ts)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser_helpers import PASSWORD, Broker, MailSink, make_broker, running, unique_email
from peers.broker_process import IDBROKER
from playwright.sync_api import expect
from support import free_port, wait_until_ready

pytestmark = pytest.mark.browser


class Demo:
    def __init__(self, broker: Broker, email: str):
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.email = email
        self.log_path = broker.data_dir / "demo.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(IDBROKER), "demo", "--port", str(self.port), "--broker-port", str(broker.port),
                 "--user", email, "--password-stdin"], env=broker.env, stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(PASSWORD.encode() + b"\n")
        self.proc.stdin.close()
        with httpx.Client(timeout=2.0) as http:
            wait_until_ready(self.proc, lambda: http.get(self.url + "/").status_code == 200, 60,
                             "idbroker demo", self.log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def default_broker(browser: Any, mail: MailSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker as `./run` starts it: no issuer configured."""
    b = make_broker(tmp_path_factory.mktemp("demo-broker"), mail)
    del b.env["IDBROKER_ISSUER"]
    b.issuer = f"http://localhost:{b.port}"
    with running(b):
        yield b


@pytest.fixture(scope="module")
def demo(default_broker: Broker) -> Iterator[Demo]:
    d = Demo(default_broker, unique_email("demo"))
    try:
        yield d
    finally:
        d.stop()


def sign_in_at_broker(page: Any, broker: Broker, email: str) -> None:
    expect(page).to_have_url(re.compile(re.escape(broker.issuer) + "/login"))
    # The default issuer is localhost, a secure context: the passkey sign-in is offered.
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def shown_json(page: Any, ident: str) -> Any:
    return json.loads(page.locator(f"#{ident}").inner_text())


def test_demo_relying_party(page: Any, default_broker: Broker, demo: Demo) -> None:
    page.goto(demo.url + "/")
    page.get_by_role("link", name="Sign in").click()
    sign_in_at_broker(page, default_broker, demo.email)

    expect(page.locator("#who")).to_have_text(demo.email)
    claims = shown_json(page, "claims")
    assert claims["iss"] == default_broker.issuer and claims["aud"] == "demo-rp" and claims["nonce"], claims
    userinfo = shown_json(page, "userinfo")
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == demo.email, userinfo

    page.get_by_role("button", name="Refresh tokens").click()
    expect(page.locator("#refreshed")).to_have_text("Tokens refreshed 1 time(s).")

    page.get_by_role("button", name="Call the protected API").click()
    expect(page.locator("#api")).to_contain_text('"hello"')
    api = shown_json(page, "api")
    assert api == {"status": 200, "body": {"hello": claims["sub"], "client_id": "demo-rp",
                                           "scope": api["body"]["scope"]}}, api

    page.get_by_role("link", name="Sign out").click()
    confirm = page.get_by_role("button", name=re.compile("^Sign out"))
    if not page.url.startswith(demo.url):  # the broker may ask before signing out
        confirm.first.click()
    expect(page.locator("#signed-out")).to_be_visible()
    page.goto(default_broker.issuer + "/account")  # the broker's session is gone too
    expect(page).to_have_url(re.compile(re.escape(default_broker.issuer) + "/login"))


def test_demo_api_refuses_what_is_not_an_access_token(page: Any, default_broker: Broker, demo: Demo) -> None:
    with httpx.Client() as http:
        assert http.get(demo.url + "/api/hello").status_code == 401
        answer = http.get(demo.url + "/api/hello", headers={"Authorization": "Bearer not.a.token"})
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


def test_single_page_example(page: Any, default_broker: Broker, demo: Demo) -> None:
    page.goto(demo.url + "/spa/")
    page.get_by_role("button", name="Sign in").click()
    sign_in_at_broker(page, default_broker, demo.email)

    expect(page.get_by_role("status")).to_have_text(f"Signed in as {demo.email}")
    assert shown_json(page, "claims")["email"] == demo.email
    page.get_by_role("button", name="Call the protected API").click()
    expect(page.locator("#api")).to_contain_text('"hello"')
    assert shown_json(page, "api")["body"]["client_id"] == "demo-spa"

    page.get_by_role("button", name="Sign out").click()
    if not page.url.startswith(demo.url):
        page.get_by_role("button", name=re.compile("^Sign out")).first.click()
    expect(page.get_by_role("status")).to_have_text("Signed out")
    expect(page).to_have_url(demo.url + "/spa/")
