"""Signing in through upstream providers in a real Chromium, end to end: a real ``idbroker serve``,
panva's npm ``oidc-provider`` as the upstream OpenID provider (its own dev login and consent
pages, tests/peers/node/upstream_provider.mjs) and pysaml2's IdP (tests/peers/saml_idp.py) behind
a small login page on loopback, ending at the application's redirect URI with a code whose ID
token carries our ``sub``, the ``idp`` claim and amr ``fed``.

Covered: the provider's button on our sign-in page and ``idp_hint``; a second sign-in after the
upstream rotated its signing key; a forged state on the callback; the upstream stopped in the
middle of a sign-in (a page in the user's language with the way back to the sign-in page, never
a 500); the SAML IdP's button; the account's linked providers page (reached from the account
navigation, the last way in kept, another provider linked and unlinked). One broker and one
upstream for the module; each test has a fresh browser profile. The test that stops the upstream
runs last: the broker refetches an upstream's keys at most once a minute.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from browser_helpers import (
    WAIT_SECONDS,
    Authorization,
    Broker,
    Client,
    MailSink,
    RelyingParty,
    add_client,
    authorization,
    make_broker,
    redeem,
    running,
    stored_user,
)
from peers.broker_process import node_peers
from peers.oidc_upstream_process import CLIENT_ID, CLIENT_SECRET, UpstreamProcess
from support import Quiet, query_of, serve

pytestmark = pytest.mark.browser

UPSTREAM_EMAIL = "alice@upstream.test"   # what upstream_provider.mjs says about everyone
SAML_EMAIL = "alice@example.com"          # what saml_idp.py says by default


# -- the peers ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node() -> dict[str, str]:
    found = node_peers()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def broker(browser: Any, mail: MailSink, node: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of its own (the suite's shared one has no upstream buttons), with provider
    ``up1`` (kind oidc) registered."""
    b = make_broker(tmp_path_factory.mktemp("e2e-federation"), mail)
    with running(b):
        yield b


@pytest.fixture(scope="module")
def upstream(broker: Broker, node: dict[str, str]) -> Iterator[UpstreamProcess]:
    process = UpstreamProcess(node, f"{broker.issuer}/idp/up1/callback")
    process.start("k1")
    try:
        broker.cli("idp", "add", "--id", "up1", "--kind", "oidc", "--name", "Example OP",
                   "--option", f"issuer={process.issuer}", "--option", f"client_id={CLIENT_ID}",
                   "--option", "scopes=openid email profile", "--secret", f"client_secret={CLIENT_SECRET}")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def app(broker: Broker, rp: RelyingParty) -> Client:
    return add_client(broker, rp, "federated-app", "--name", "Federated App", "--first-party")


@pytest.fixture
def page(context: Any) -> Any:
    # The upstream's dev pages import a web font; there is no network here.
    context.route("https://fonts.googleapis.com/**", lambda route: route.abort())
    return context.new_page()


def at_the_upstream(page: Any, upstream: UpstreamProcess) -> None:
    """The user at oidc-provider's own dev pages: any login and password, then consent."""
    page.wait_for_url(re.compile("^" + re.escape(upstream.issuer) + "/interaction/"))
    page.locator("input[name=login]").fill("alice")
    page.locator("input[name=password]").fill("anything")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def signed_in_without_an_application(page: Any, broker: Broker, upstream: UpstreamProcess) -> None:
    """Through the upstream straight from /idp/up1/start: back here, signed in, on our own page."""
    page.goto(broker.issuer + "/idp/up1/start")
    at_the_upstream(page, upstream)
    page.wait_for_url(re.compile("^" + re.escape(broker.issuer) + r"/(?!idp/)"))


def back_at_the_application(page: Any, broker: Broker, app: Client, rp: RelyingParty,
                            auth: Authorization) -> dict[str, Any]:
    page.wait_for_url(app.redirect_uri + "?*")
    return redeem(broker, app, auth, rp.received(auth.state))


def assert_federated(broker: Broker, tokens: dict[str, Any], email: str, idp: str) -> None:
    claims = tokens["id_token"]
    assert claims["sub"] == stored_user(broker, email)["sub"], claims  # ours, not the upstream's
    assert claims["idp"] == idp and "fed" in claims["amr"], claims
    assert tokens["userinfo"]["sub"] == claims["sub"] and tokens["userinfo"]["email"] == email


# -- OpenID Connect upstream ----------------------------------------------------------------------------
def test_sign_in_with_the_providers_button(page: Any, broker: Broker, upstream: UpstreamProcess, app: Client,
                                           rp: RelyingParty) -> None:
    auth = authorization(broker, app)
    page.goto(auth.url)
    button = page.get_by_role("link", name="Continue with Example OP")
    assert button.get_attribute("href").startswith("/idp/up1/start?interaction=")
    assert button.locator("img").get_attribute("src") == "/static/idp/generic.svg"  # no preset, no logo
    button.click()
    at_the_upstream(page, upstream)
    assert_federated(broker, back_at_the_application(page, broker, app, rp, auth), UPSTREAM_EMAIL, "up1")


def test_idp_hint_goes_straight_to_the_upstream(page: Any, broker: Broker, upstream: UpstreamProcess, app: Client,
                                                rp: RelyingParty) -> None:
    auth = authorization(broker, app, idp_hint="up1")
    page.goto(auth.url)  # no sign-in page of ours on the way
    at_the_upstream(page, upstream)
    assert_federated(broker, back_at_the_application(page, broker, app, rp, auth), UPSTREAM_EMAIL, "up1")


def test_linked_providers_page_from_the_account_navigation(page: Any, broker: Broker, upstream: UpstreamProcess,
                                                           app: Client, rp: RelyingParty) -> None:
    signed_in_without_an_application(page, broker, upstream)
    page.goto(broker.issuer + "/account")
    page.get_by_role("navigation").get_by_role("link", name="Sign-in providers").click()
    page.wait_for_url(broker.issuer + "/account/identities")
    linked = page.locator("#linked-identities li")
    assert linked.count() == 1 and "Example OP" in linked.inner_text()
    # The account has no password and no passkey: its only way in stays.
    linked.get_by_role("button", name="Unlink Example OP").click()
    assert "only way to sign in" in page.get_by_role("alert").inner_text()
    assert page.locator("#linked-identities li").count() == 1


def test_second_sign_in_after_the_upstream_rotated_its_key(page: Any, context: Any, broker: Broker,
                                                          upstream: UpstreamProcess, app: Client,
                                                          rp: RelyingParty) -> None:
    first = authorization(broker, app, idp_hint="up1")
    page.goto(first.url)
    at_the_upstream(page, upstream)
    sub = back_at_the_application(page, broker, app, rp, first)["id_token"]["sub"]
    upstream.stop()
    upstream.start("k2")  # a new signing key under a new kid: the broker fetches the JWKS again
    context.clear_cookies()
    again = authorization(broker, app, idp_hint="up1")
    page.goto(again.url)
    at_the_upstream(page, upstream)
    tokens = back_at_the_application(page, broker, app, rp, again)
    assert tokens["id_token"]["sub"] == sub
    assert_federated(broker, tokens, UPSTREAM_EMAIL, "up1")


def to_the_upstream(page: Any, broker: Broker, button: str) -> dict[str, str]:
    """Clicks the provider's button on our sign-in page; returns what we sent the browser to the
    upstream with (state, nonce, PKCE challenge...), the browser then being at its login page."""
    with page.expect_response(re.compile(re.escape(broker.issuer) + r"/idp/up1/start\?")) as started:
        page.get_by_role("link", name=button).click()
    assert started.value.status == 303
    return query_of(started.value.headers["location"])


def test_forged_state_on_the_callback_is_a_clear_page(page: Any, broker: Broker, upstream: UpstreamProcess,
                                                      app: Client) -> None:
    page.goto(authorization(broker, app).url)
    sent = to_the_upstream(page, broker, "Continue with Example OP")
    page.wait_for_url(re.compile("^" + re.escape(upstream.issuer) + "/interaction/"))
    forged = {"code": "any", "state": "forged-" + sent["state"][:8], "iss": upstream.issuer}
    response = page.goto(f"{broker.issuer}/idp/up1/callback?{urlencode(forged)}")
    assert response.status == 400
    page.get_by_role("heading", name="We could not sign you in").wait_for()
    assert "could not be accepted" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="Back to sign in").click()
    page.wait_for_url(re.compile(re.escape(broker.issuer) + r"/login\?interaction="))
    page.get_by_role("link", name="Continue with Example OP").wait_for()


# -- SAML 2.0 IdP -----------------------------------------------------------------------------------------
class SamlLoginPage:
    """The pysaml2 IdP behind a login page on loopback: GET /sso with our signed AuthnRequest
    (Redirect binding) shows a form that posts the IdP's signed response to our ACS."""

    def __init__(self, acs: str):
        from peers.saml_idp import IDP_ENTITY_ID, SamlIdp

        self.idp: Any = None
        self.subject = "u-123"  # the NameID of the IdP's user
        self.entity_sso = IDP_ENTITY_ID + "/sso"
        self.make_idp = SamlIdp
        login = self

        class Handler(Quiet):
            def do_GET(self) -> None:  # noqa: N802 - the handler's API
                parts = urlsplit(self.path)
                if parts.path != "/sso" or login.idp is None:
                    self.send_error(404)
                    return
                form = login.idp.respond(f"{login.entity_sso}?{parts.query}", subject=login.subject)
                fields = "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in form.items())
                body = (f'<!doctype html><html lang="en"><title>Corporate IdP</title><h1>Corporate IdP</h1>'
                        f'<form method="post" action="{escape(acs)}">{fields}'
                        f'<button type="submit">Continue to the application</button></form>').encode()
                self.answer(200, body, "text/html; charset=utf-8")

        base, self._stop_serving = serve(Handler)
        self.sso = base + "/sso"

    def metadata(self, idp: Any) -> str:
        return idp.metadata()

    def resolve(self, context: Any) -> None:
        """The IdP's host name, in this browser, is this loopback page (as DNS would make it):
        its SSO address answers with a redirect here."""
        def there(route: Any) -> None:
            query = urlsplit(route.request.url).query
            route.fulfill(status=302, headers={"Location": f"{self.sso}?{query}"})

        context.route(self.entity_sso + "?**", there)

    def stop(self) -> None:
        self._stop_serving()
        if self.idp is not None:
            self.idp.close()


@pytest.fixture(scope="module")
def saml(broker: Broker) -> Iterator[SamlLoginPage]:
    if shutil.which("xmlsec1") is None:
        pytest.skip("needs the xmlsec1 binary")
    from peers.saml_idp import keypair

    login = SamlLoginPage(f"{broker.issuer}/idp/corp/acs")
    try:
        # The operator's two steps: our SP gets the IdP's metadata, the IdP ours (then its final one).
        sp_key, sp_cert = keypair("idbroker sp")
        bootstrap = login.make_idp()
        broker.cli("idp", "add", "--id", "corp", "--kind", "saml", "--name", "Corporate SSO",
                   "--option", f"idp_metadata={login.metadata(bootstrap)}", "--option", f"sp_cert={sp_cert}",
                   "--secret", f"sp_key={sp_key}")
        bootstrap.close()
        sp_metadata = httpx.get(f"{broker.issuer}/idp/corp/metadata", timeout=10.0)
        assert sp_metadata.status_code == 200, sp_metadata.text
        login.idp = login.make_idp(sp_metadata.text)
        broker.cli("idp", "update", "corp", "--option", f"idp_metadata={login.metadata(login.idp)}")
        yield login
    finally:
        login.stop()


def test_sign_in_with_the_saml_idps_button(page: Any, broker: Broker, saml: SamlLoginPage, app: Client,
                                           rp: RelyingParty) -> None:
    saml.resolve(page.context)
    auth = authorization(broker, app)
    page.goto(auth.url)
    page.get_by_role("link", name="Continue with Corporate SSO").click()
    page.wait_for_url(saml.sso + "?*")
    page.get_by_role("button", name="Continue to the application").click()
    assert_federated(broker, back_at_the_application(page, broker, app, rp, auth), SAML_EMAIL, "corp")


def test_link_another_provider_then_unlink_it(page: Any, broker: Broker, upstream: UpstreamProcess,
                                              saml: SamlLoginPage) -> None:
    """Signed in through the OpenID provider, the user links the SAML IdP's account from the
    linked providers page, then unlinks it (the other link is still a way in)."""
    saml.resolve(page.context)
    signed_in_without_an_application(page, broker, upstream)
    page.goto(broker.issuer + "/account/identities")
    saml.subject = "u-linked"
    try:
        page.get_by_role("button", name="Link Corporate SSO").click()
        page.get_by_role("button", name="Continue to the application").click()
    finally:
        saml.subject = "u-123"
    page.wait_for_url(broker.issuer + "/account/identities?linked=corp")
    assert "Corporate SSO is now linked to your account." in page.get_by_role("status").inner_text()
    linked = page.locator("#linked-identities li")
    assert linked.count() == 2
    assert linked.nth(1).locator("img").get_attribute("src") == "/static/idp/generic.svg"
    page.get_by_role("button", name="Unlink Corporate SSO").click()
    page.wait_for_url(broker.issuer + "/account/identities")
    assert page.locator("#linked-identities li").count() == 1
    page.get_by_role("button", name="Link Corporate SSO").wait_for()  # offered again


# -- last: the upstream stops ------------------------------------------------------------------------------
def test_upstream_down_is_a_page_in_the_users_language(browser: Any, broker: Broker, upstream: UpstreamProcess,
                                                       app: Client) -> None:
    """The browser comes back with our state, but the upstream stopped meanwhile, so its code
    cannot be redeemed: our page, in French for a French browser, with the way back to the
    sign-in page."""
    context = browser.new_context(locale="fr-FR")
    context.set_default_timeout(WAIT_SECONDS * 1000)
    try:
        context.route("https://fonts.googleapis.com/**", lambda route: route.abort())
        page = context.new_page()
        page.goto(authorization(broker, app).url)
        sent = to_the_upstream(page, broker, "Continuer avec Example OP")
        page.wait_for_url(re.compile("^" + re.escape(upstream.issuer) + "/interaction/"))
        upstream.stop()
        response = page.goto(f"{broker.issuer}/idp/up1/callback?"
                             + urlencode({"code": "a-code", "state": sent["state"], "iss": upstream.issuer}))
        assert response.status == 400, response.status
        assert page.locator("html").get_attribute("lang") == "fr"
        page.get_by_role("heading", name="Nous n’avons pas pu vous connecter").wait_for()
        assert "injoignable" in page.get_by_role("alert").inner_text()
        page.get_by_role("link", name="Retour à la connexion").click()
        page.wait_for_url(re.compile(re.escape(broker.issuer) + r"/login\?interaction="))
        page.get_by_role("heading", name="Se connecter").wait_for()
    finally:
        context.close()
        # Up again, under a new key the broker may not fetch yet (one JWKS refetch a minute):
        # this test comes last.
        upstream.start("k3")
