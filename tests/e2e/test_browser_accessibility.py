"""axe-core (the engine behind Lighthouse's and Deque's accessibility checks) run in Chromium on
every hosted page the tour reaches (tests/e2e/page_tour.py), in English, French and Japanese, in
the light and the dark colour scheme: no violation of the WCAG 2.0/2.1/2.2 level A and AA rules.

axe-core comes from npm (tests/peers/node/package.json); the test skips when it is not
installed, like the other tests that need tests/peers/node."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    PASSWORD,
    WAIT_SECONDS,
    Broker,
    Client,
    MailSink,
    add_user,
    authorization,
    make_broker,
    running,
)
from page_tour import anonymous_pages, signed_in_pages
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NODE_MODULES = Path(os.environ.get("IDBROKER_TEST_NODE_MODULES",
                                   Path(__file__).resolve().parent.parent / "peers" / "node" / "node_modules"))
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
RUN_AXE = """async tags => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => ({
    target: n.target.join(" "), summary: n.failureSummary}))}));
}"""
LOCALES = {"en": "en-US", "fr": "fr-FR", "ja": "ja-JP"}


class Axe:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.violations: dict[str, Any] = {}

    def __call__(self, page: Any, name: str) -> None:
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(RUN_AXE, WCAG_AA)
        self.seen.append(name)
        if found:
            self.violations[f"{name} ({page.url})"] = found


@pytest.fixture
def axe_context(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE}; run npm install in tests/peers/node)")
    lang, scheme = request.param
    # bypass_csp: the pages forbid inline scripts, and axe is injected as one.
    ctx = browser.new_context(locale=LOCALES[lang], color_scheme=scheme, bypass_csp=True)
    ctx.set_default_timeout(WAIT_SECONDS * 1000)
    try:
        yield ctx
    finally:
        ctx.close()


CASES = [(lang, scheme) for lang in LOCALES for scheme in ("light", "dark")]


@pytest.mark.parametrize("axe_context", CASES, ids=[f"{lang}-{scheme}" for lang, scheme in CASES], indirect=True)
def test_hosted_pages_have_no_wcag_aa_violations(axe_context: Any, broker: Broker, client: Client,
                                                  mail: MailSink) -> None:
    axe = Axe()
    anonymous_pages(axe_context.new_page(), broker, client, mail, axe)
    signed_in_pages(axe_context, broker, client, axe)
    assert len(axe.seen) >= 22, axe.seen
    assert not axe.violations, "\n".join(f"{page}: {v}" for page, v in axe.violations.items())


@pytest.fixture(scope="module")
def providers_broker(browser: Any, mail: MailSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of its own with upstream provider buttons (presets: nothing is contacted until a
    button is pressed), on localhost: a secure context, so passkeys are offered too."""
    b = make_broker(tmp_path_factory.mktemp("e2e-axe-providers"), mail)
    b.issuer = f"http://localhost:{b.port}"
    b.env["IDBROKER_ISSUER"] = b.issuer
    with running(b):
        for preset, name in (("google", "Google"), ("github", "GitHub"), ("microsoft", "Microsoft")):
            b.cli("idp", "add", "--id", preset, "--kind", preset, "--name", name,
                  "--client-id", f"{preset}-client", "--client-secret", "not-used")
        add_user(b, "buttons@example.org")
        yield b


@pytest.mark.parametrize("axe_context", CASES, ids=[f"{lang}-{scheme}" for lang, scheme in CASES], indirect=True)
def test_provider_buttons_and_passkey_pages_have_no_wcag_aa_violations(axe_context: Any,
                                                                       providers_broker: Broker) -> None:
    axe = Axe()
    page = axe_context.new_page()
    page.goto(providers_broker.issuer + "/login")
    expect(page.locator(".idp-button")).to_have_count(3)
    expect(page.locator(".passkey-login")).to_be_attached()
    axe(page, "sign-in-with-providers")
    page.locator("#username").fill("buttons@example.org")
    page.locator("#password").fill(PASSWORD)
    page.locator("form:has(#password) button[type=submit]").click()
    page.goto(providers_broker.issuer + "/account/identities")
    expect(page.locator("h1")).to_be_visible()
    axe(page, "account-identities")
    page.goto(providers_broker.issuer + "/account/security")
    page.locator("form:has(input[name=kind][value=webauthn]) button[type=submit]").click()
    expect(page.locator("h1")).to_be_visible()
    axe(page, "passkey-enrol")
    assert not axe.violations, "\n".join(f"{page}: {v}" for page, v in axe.violations.items())


def test_form_errors_are_announced_and_tied_to_their_fields(page: Any, broker: Broker, client: Client) -> None:
    """An error is a live region (role=alert) and the field it is about points at it
    (aria-describedby), so a screen reader says it on arrival and again on the field."""
    page.goto(authorization(broker, client).url)
    page.locator("#username").fill("nobody@example.org")
    page.locator("#password").fill("wrong password")
    page.locator("form:has(#password) button[type=submit]").click()
    expect(page.locator("#login-error")).to_have_attribute("role", "alert")
    expect(page.locator("#username")).to_have_attribute("aria-describedby", "login-error")

    page.goto(broker.issuer + "/signup")
    page.locator("form[action='/signup'] button[type=submit]").click()
    expect(page.locator("#form-error")).to_have_attribute("role", "alert")
    email = page.locator("#f-email")
    expect(email).to_have_attribute("aria-invalid", "true")
    described = (email.get_attribute("aria-describedby") or "").split()
    assert described and all(page.locator(f"#{i}").count() == 1 for i in described), described
    assert any(page.locator(f"#{i}").inner_text().strip() for i in described)
