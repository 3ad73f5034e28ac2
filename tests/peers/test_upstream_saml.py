"""The SAML 2.0 upstream (federation/saml.py) against a real pysaml2 IdP (saml_idp.py): our signed
AuthnRequest goes in, the IdP's real response comes back, right or wrong on purpose, and only the
right one becomes an identity. Our SP metadata is checked with the xmlsec1 binary."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from saml_idp import IDP_ENTITY_ID, SamlIdp, keypair
from support import run_coroutine

from idbroker.federation.base import StartContext, UpstreamConfig, UpstreamError, UpstreamUnavailable
from idbroker.federation.kinds import UPSTREAMS
from idbroker.federation.saml import ATTRIBUTE_PRESETS, SamlUpstream

ISSUER = "http://127.0.0.1:8443"
SHA1_SIG = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256_SIG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256_DIGEST = "http://www.w3.org/2001/04/xmlenc#sha256"
ENTRA = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
WS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs the xmlsec1 binary")


class Peers:
    """Our SP and the IdP, each configured with the other's metadata."""

    def __init__(self, **options: Any):
        self.sp_key, self.sp_cert = keypair("idbroker sp")
        bootstrap = SamlIdp()
        self.sp = self.upstream(bootstrap.metadata(), **options)
        self.idp = SamlIdp(self.sp.metadata())
        bootstrap.close()
        self.sp = self.upstream(self.idp.metadata(), **options)

    def upstream(self, idp_metadata: str, **options: Any) -> SamlUpstream:
        config = UpstreamConfig(id="up1", kind="saml", name="AD FS", options={
            "idp_metadata": idp_metadata, "sp_key": self.sp_key, "sp_cert": self.sp_cert, **options})
        return SamlUpstream(config, issuer=ISSUER)

    def start(self) -> tuple[StartContext, str]:
        ctx = StartContext(callback_url=self.sp.acs_url)
        return ctx, run_coroutine(self.sp.start(ctx))

    def sign_in(self, **respond: Any) -> Any:
        ctx, location = self.start()
        return run_coroutine(self.sp.finish(ctx, self.idp.respond(location, **respond)))


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    p = Peers()
    yield p
    p.idp.close()


def refused(peers: Peers, **respond: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        peers.sign_in(**respond)
    return caught.value


def test_saml_is_a_kind() -> None:
    assert UPSTREAMS["saml"] is SamlUpstream


def test_authn_request_is_signed_with_sha256_over_redirect(peers: Peers) -> None:
    ctx, location = peers.start()
    request, relay_state, query = peers.idp.receive(location)   # checks the query signature
    assert query["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert request.id == ctx.state["saml_request_id"] and relay_state == ctx.state["saml_relay_state"]
    assert request.issuer.text == f"{ISSUER}/idp/up1/metadata"
    assert request.assertion_consumer_service_url == f"{ISSUER}/idp/up1/acs"


def test_valid_signed_assertion_gives_the_mapped_identity(peers: Peers) -> None:
    identity = peers.sign_in()
    assert identity.provider_id == "up1" and identity.subject == "u-123"
    assert identity.email == "alice@example.com" and identity.email_verified
    assert identity.claims == {"email": "alice@example.com", "given_name": "Alice", "family_name": "Liddell"}
    assert identity.groups == ("staff", "admins")
    assert not identity.mfa and identity.amr == ()


def test_signed_response_with_unsigned_assertion_is_accepted(peers: Peers) -> None:
    assert peers.sign_in(sign_assertion=False, sign_response=True).subject == "u-123"


def test_mfa_authn_context_is_reported(peers: Peers) -> None:
    identity = peers.sign_in(authn_context="http://schemas.microsoft.com/claims/multipleauthn")
    assert identity.mfa and identity.amr == ("mfa",)


def test_encrypted_assertion_is_decrypted_with_the_sp_key(peers: Peers) -> None:
    identity = peers.sign_in(encrypt=True)
    assert identity.subject == "u-123" and identity.email == "alice@example.com"


def test_unsigned_response_is_refused(peers: Peers) -> None:
    assert "signed" in refused(peers, sign_assertion=False, sign_response=False).detail


@pytest.mark.parametrize("where", ["assertion", "response"])
def test_sha1_signature_is_refused(peers: Peers, where: str) -> None:
    error = refused(peers, sign_assertion=where == "assertion", sign_response=where == "response",
                    sign_alg=SHA1_SIG, digest_alg=SHA1_DIGEST)
    assert "xmldsig#rsa-sha1" in error.detail


def test_tampered_attribute_is_refused(peers: Peers) -> None:
    assert "signature" in refused(peers, tamper=(">Liddell<", ">Hacker<")).detail


def test_tampered_signed_response_is_refused(peers: Peers) -> None:
    refused(peers, sign_assertion=False, sign_response=True, tamper=(">Liddell<", ">Hacker<"))


def test_tampered_encrypted_assertion_is_refused(peers: Peers) -> None:
    refused(peers, encrypt=True, tamper=("CipherValue>", "CipherValue>AAAA"))


def test_replayed_assertion_is_refused(peers: Peers) -> None:
    ctx, location = peers.start()
    form = peers.idp.respond(location)
    run_coroutine(peers.sp.finish(ctx, form))
    with pytest.raises(UpstreamError, match="replayed"):
        run_coroutine(peers.sp.finish(ctx, form))


def test_expired_assertion_is_refused(peers: Peers) -> None:
    """Valid for five minutes, issued seven minutes ago: past NotOnOrAfter even with the skew."""
    refused(peers, issued_ago=420)


def test_clock_skew_is_tolerated_up_to_a_minute(peers: Peers) -> None:
    assert peers.sign_in(issued_ago=-30).subject == "u-123"          # the IdP's clock is 30 s ahead
    assert peers.sign_in(issued_ago=300 - 30).subject == "u-123"     # expired 30 s ago by our clock
    refused(peers, issued_ago=-120)                                  # NotBefore two minutes from now


def test_wrong_audience_is_refused(peers: Peers) -> None:
    assert "Audience" in refused(peers, audience="https://other-sp.example.test/metadata").detail


def test_wrong_in_response_to_is_refused(peers: Peers) -> None:
    assert "Unsolicited" in refused(peers, in_response_to="id-not-ours").detail


def test_wrong_relay_state_is_refused(peers: Peers) -> None:
    ctx, location = peers.start()
    form = peers.idp.respond(location) | {"RelayState": "forged"}
    with pytest.raises(UpstreamError, match="RelayState"):
        run_coroutine(peers.sp.finish(ctx, form))


def test_response_from_another_idp_is_refused(peers: Peers) -> None:
    """Same entity id, another key: the signature is checked with the keys of the metadata."""
    impostor = SamlIdp(peers.sp.metadata())
    try:
        ctx, location = peers.start()
        with pytest.raises(UpstreamError):
            run_coroutine(peers.sp.finish(ctx, impostor.respond(location)))
    finally:
        impostor.close()


def test_refusal_at_the_idp_is_a_clear_error(peers: Peers) -> None:
    ctx, location = peers.start()
    request, relay_state, _ = peers.idp.receive(location)
    response = peers.idp.server.create_error_response(request.id, request.assertion_consumer_service_url,
                                                      Exception("no"), sign=True, sign_alg=SHA256_SIG,
                                                      digest_alg=SHA256_DIGEST)
    form = {"SAMLResponse": base64.b64encode(str(response).encode()).decode(), "RelayState": relay_state}
    with pytest.raises(UpstreamError) as caught:
        run_coroutine(peers.sp.finish(ctx, form))
    assert caught.value.message == "The sign-in provider did not sign you in."


def test_entra_claim_uris_map_with_the_preset() -> None:
    p = Peers(attribute_preset="entra")
    try:
        identity = p.sign_in(identity={
            WS + "emailaddress": ["bob@contoso.example"], WS + "givenname": ["Bob"], WS + "surname": ["Smith"],
            WS + "name": ["bob@contoso.example"], ENTRA: ["0d2c8d6e-group"],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Bob Smith"],
            "http://schemas.microsoft.com/claims/authnmethodsreferences":
                ["http://schemas.microsoft.com/claims/multipleauthn"]})
    finally:
        p.idp.close()
    assert identity.email == "bob@contoso.example" and identity.groups == ("0d2c8d6e-group",)
    assert identity.claims["name"] == "Bob Smith" and identity.claims["preferred_username"] == "bob@contoso.example"
    assert identity.mfa
    assert set(ATTRIBUTE_PRESETS["adfs"]) == set(ATTRIBUTE_PRESETS["entra"])


def test_sp_metadata_is_signed_with_sha256_and_verifies_with_xmlsec1(peers: Peers, tmp_path: Path) -> None:
    xml = peers.sp.metadata()
    assert f'SignatureMethod Algorithm="{SHA256_SIG}"' in xml and f'DigestMethod Algorithm="{SHA256_DIGEST}"' in xml
    assert "sha1" not in xml and "md5" not in xml   # nor in the algorithm support it advertises
    assert f'entityID="{ISSUER}/idp/up1/metadata"' in xml and f'Location="{ISSUER}/idp/up1/acs"' in xml
    (tmp_path / "md.xml").write_text(xml)
    (tmp_path / "sp.crt").write_text(peers.sp_cert)
    command = ["xmlsec1", "--verify", "--pubkey-cert-pem", str(tmp_path / "sp.crt"),
               "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", str(tmp_path / "md.xml")]
    assert subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    tampered = re.sub(r'entityID="[^"]+"', 'entityID="https://evil.example/"', xml)
    (tmp_path / "md.xml").write_text(tampered)
    assert subprocess.run(command, capture_output=True, timeout=30).returncode != 0


def test_metadata_by_url_is_fetched_cached_and_refreshed(peers: Peers) -> None:
    fetched: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, text=peers.idp.metadata())

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
            config = UpstreamConfig(id="up1", kind="saml", name="AD FS", options={
                "idp_metadata_url": "https://idp.example.test/metadata", "metadata_refresh": 3600,
                "sp_key": peers.sp_key, "sp_cert": peers.sp_cert})
            sp = SamlUpstream(config, issuer=ISSUER, http=http)
            ctx = StartContext(callback_url=sp.acs_url)
            location = await sp.start(ctx)
            await sp.start(StartContext(callback_url=sp.acs_url))
            assert len(fetched) == 1
            assert (await sp.finish(ctx, peers.idp.respond(location))).subject == "u-123"
            sp._fetched_at -= 3601     # an hour later
            await sp.start(StartContext(callback_url=sp.acs_url))
            assert len(fetched) == 2

    run_coroutine(main())


def test_metadata_url_down_is_unavailable(peers: Peers) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
            config = UpstreamConfig(id="up1", kind="saml", name="AD FS", options={
                "idp_metadata_url": "https://idp.example.test/metadata",
                "sp_key": peers.sp_key, "sp_cert": peers.sp_cert})
            with pytest.raises(UpstreamUnavailable):
                await SamlUpstream(config, issuer=ISSUER, http=http).start(StartContext(callback_url="x"))

    run_coroutine(main())


def test_plain_http_metadata_url_is_only_for_loopback(peers: Peers) -> None:
    options = {"sp_key": peers.sp_key, "sp_cert": peers.sp_cert}
    with pytest.raises(ValueError, match="https"):
        SamlUpstream(UpstreamConfig(id="up1", kind="saml", name="x", options={
            **options, "idp_metadata_url": "http://idp.example.test/md"}), issuer=ISSUER, http=httpx.AsyncClient())
    SamlUpstream(UpstreamConfig(id="up1", kind="saml", name="x", options={
        **options, "idp_metadata_url": "http://127.0.0.1:9/md"}), issuer=ISSUER, http=httpx.AsyncClient())


def test_bad_sp_key_is_refused_when_the_provider_is_configured(peers: Peers) -> None:
    with pytest.raises(ValueError, match="PEM"):
        peers.upstream(peers.idp.metadata(), sp_key="not a key")


def test_idp_entity_id_is_taken_from_metadata(peers: Peers) -> None:
    ctx, location = peers.start()
    assert location.startswith(IDP_ENTITY_ID + "/sso?")
