"""SAML single logout (pages/single_logout.py, federation/saml.py) against a real pysaml2 IdP
(saml_idp.py), through HTTP the way a browser goes: sign in at /idp/up1/acs, log out at
/oauth2/logout, the signed LogoutRequest to the IdP, its LogoutResponse back at /idp/up1/slo
(Redirect and POST) and on to the post_logout_redirect_uri; refused answers (unsigned, tampered,
another request, another Destination, a failure status) leave the user signed out here with a
clear page; an IdP-initiated LogoutRequest ends the sessions of its NameID, with back-channel
logout to the clients, and is answered with a signed LogoutResponse."""

from __future__ import annotations

import base64
import shutil
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from saml_idp import IDP_SLO, SamlIdp, keypair
from sqlalchemy import select
from support import CSRF_RE, ISSUER, query_of

from idbroker.federation.base import UpstreamConfig
from idbroker.federation.saml import SamlUpstream
from idbroker.store.models import BrowserSession, SamlSession

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="needs the xmlsec1 binary")

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SLO = f"{ISSUER}/idp/up1/slo"
NOT_CONFIRMED = "did not confirm"
ISSUER_FORMAT = ' Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity"'   # harmless to drop, but signed


@pytest.fixture(scope="module")
def sp_keys() -> tuple[str, str]:
    return keypair("idbroker sp")


def sp_metadata(sp_keys: tuple[str, str]) -> str:
    """Our SP metadata as /idp/up1/metadata serves it (it depends on the keys and the issuer only)."""
    bootstrap = SamlIdp()
    try:
        config = UpstreamConfig(id="up1", kind="saml", name="AD FS", options={
            "idp_metadata": bootstrap.metadata(), "sp_key": sp_keys[0], "sp_cert": sp_keys[1]})
        return SamlUpstream(config, issuer=ISSUER).metadata()
    finally:
        bootstrap.close()


def add_provider(provider: Any, peer: SamlIdp, sp_keys: tuple[str, str]) -> None:
    provider.upstreams.add("up1", "saml", "AD FS", options={"idp_metadata": peer.metadata(), "sp_cert": sp_keys[1]},
                           secrets={"sp_key": sp_keys[0]})


@pytest.fixture
def idp(provider: Any, sp_keys: tuple[str, str]) -> Iterator[SamlIdp]:
    """The IdP knows our SP metadata, and we know its metadata."""
    peer = SamlIdp(sp_metadata(sp_keys))
    add_provider(provider, peer, sp_keys)
    yield peer
    peer.close()


def sign_in(http: Any, idp: SamlIdp) -> None:
    r = http.get("/idp/up1/start")
    assert r.status_code == 303, r.text
    r = http.post("/idp/up1/acs", data=idp.respond(r.headers["location"]))
    assert r.status_code == 303, r.text
    assert http.get("/account").status_code == 200


def live_sessions(provider: Any) -> list[BrowserSession]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(BrowserSession).where(BrowserSession.ended_at.is_(None))))


def log_out(http: Any, client: Any) -> Any:
    """The confirmed RP-initiated logout: the answer (the redirect to the IdP)."""
    params = {"client_id": client.client_id, "state": "s", "post_logout_redirect_uri": "https://app.example/bye"}
    page = http.get("/oauth2/logout", params=params)
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    return http.post("/oauth2/logout", data={"csrf_token": token, "confirm": "yes", **params})


def come_back(http: Any, sp_slo: str, params: dict[str, str], binding: str) -> Any:
    path = urlsplit(sp_slo).path
    return http.get(path, params=params) if binding == REDIRECT else http.post(path, data=params)


def test_sp_metadata_advertises_the_slo_endpoint(http: Any, idp: SamlIdp) -> None:
    xml = http.get("/idp/up1/metadata").text
    assert f'SingleLogoutService Binding="{REDIRECT}" Location="{SLO}"' in xml
    assert f'SingleLogoutService Binding="{POST}" Location="{SLO}"' in xml


def test_the_session_keeps_name_id_and_session_index(http: Any, provider: Any, idp: SamlIdp) -> None:
    sign_in(http, idp)
    with provider.db.session(write=False) as s:
        row = s.scalars(select(SamlSession)).one()
    assert row.provider_id == "up1" and row.subject == "u-123" and row.session_index
    assert "u-123" in row.name_id and "persistent" in row.name_id


@pytest.mark.parametrize("binding", [REDIRECT, POST])
def test_sp_initiated_round_trip(http: Any, provider: Any, register: Any, idp: SamlIdp, binding: str) -> None:
    client = register("app", first_party=True)
    sign_in(http, idp)
    r = log_out(http, client)
    assert r.status_code == 303 and r.headers["location"].startswith(IDP_SLO + "?")
    assert live_sessions(provider) == []                         # ended here before going there
    request, _ = idp.receive_logout(r.headers["location"])     # signed with our key, rsa-sha256
    assert request.name_id.text == "u-123" and request.destination == IDP_SLO
    with provider.db.session(write=False) as s:
        assert [i.text for i in request.session_index] == [s.scalars(select(SamlSession)).one().session_index]
    sp_slo, answer = idp.answer_logout(r.headers["location"], binding=binding)
    assert sp_slo == SLO
    back = come_back(http, sp_slo, answer, binding)
    assert back.status_code == 303 and back.headers["location"] == "https://app.example/bye?state=s"


def test_hosted_sign_out_without_a_client_ends_on_the_signed_out_page(http: Any, idp: SamlIdp) -> None:
    sign_in(http, idp)
    page = http.get("/oauth2/logout")
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    r = http.post("/oauth2/logout", data={"csrf_token": token, "confirm": "yes"})
    sp_slo, answer = idp.answer_logout(r.headers["location"])
    back = come_back(http, sp_slo, answer, REDIRECT)
    assert back.status_code == 200 and "signed out" in back.text.lower() and NOT_CONFIRMED not in back.text


@pytest.mark.parametrize("wrong", [
    {"sign": False},                                                        # unsigned query
    {"sign": False, "binding": POST},                                       # unsigned XML
    {"binding": POST, "tamper": (ISSUER_FORMAT, "")},                        # changed after signing
    {"tamper": (ISSUER_FORMAT, "")},
    {"in_response_to": "id-not-ours"},
    {"destination": "https://other-sp.example/slo"},
    {"status": "urn:oasis:names:tc:SAML:2.0:status:Responder"},
    {"sigalg": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"},               # SHA-1 query signature
    {"relay_state": "forged"},
])
def test_refused_logout_response_leaves_the_user_signed_out_with_a_clear_page(
        http: Any, provider: Any, register: Any, idp: SamlIdp, wrong: dict[str, Any]) -> None:
    client = register("app", first_party=True)
    sign_in(http, idp)
    r = log_out(http, client)
    binding = wrong.get("binding", REDIRECT)
    sp_slo, answer = idp.answer_logout(r.headers["location"], **wrong)
    back = come_back(http, sp_slo, answer, binding)
    assert back.status_code == 400 and NOT_CONFIRMED in back.text and 'href="/login"' in back.text
    assert "location" not in back.headers
    assert live_sessions(provider) == [] and http.get("/account").status_code != 200


def test_logout_response_of_another_browser_is_refused(http: Any, register: Any, idp: SamlIdp) -> None:
    client = register("app", first_party=True)
    sign_in(http, idp)
    r = log_out(http, client)
    sp_slo, answer = idp.answer_logout(r.headers["location"])
    http.cookies.clear()                                                     # no logout state cookie
    back = come_back(http, sp_slo, answer, REDIRECT)
    assert back.status_code == 400 and NOT_CONFIRMED in back.text


def test_idp_without_slo_only_ends_the_local_session(http: Any, provider: Any, register: Any,
                                                     sp_keys: tuple[str, str]) -> None:
    peer = SamlIdp(sp_metadata(sp_keys), slo=False)
    add_provider(provider, peer, sp_keys)
    client = register("app", first_party=True)
    sign_in(http, peer)
    peer.close()
    assert log_out(http, client).headers["location"] == "https://app.example/bye?state=s"
    assert live_sessions(provider) == []


def saml_session_index(provider: Any) -> str:
    with provider.db.session(write=False) as s:
        return s.scalars(select(SamlSession)).one().session_index


@pytest.mark.parametrize("binding", [REDIRECT, POST])
def test_idp_initiated_logout_ends_the_session_and_is_answered(
        http: Any, provider: Any, register: Any, idp: SamlIdp, binding: str, monkeypatch: Any) -> None:
    register("app", first_party=True, backchannel_logout_uri="https://app.example/bcl")
    sign_in(http, idp)
    [session] = live_sessions(provider)
    provider.sessions.add_client(session.sid, "app")
    notified: list[Any] = []

    async def notify(deliveries: list[Any]) -> None:
        notified.extend(deliveries)
    monkeypatch.setattr(provider.signout, "notify", notify)
    params = idp.start_logout(SLO, "u-123", saml_session_index(provider), binding=binding)
    r = come_back(http, SLO, params, binding)
    assert r.status_code == 303 and r.headers["location"].startswith(IDP_SLO + "?"), r.text
    assert live_sessions(provider) == [] and http.get("/account").status_code != 200
    assert [uri for uri, _ in notified] == ["https://app.example/bcl"]
    answer = query_of(r.headers["location"])
    assert answer["RelayState"] == "idp-relay" and answer["SigAlg"].endswith("rsa-sha256")
    xml = zlib.decompress(base64.b64decode(answer["SAMLResponse"]), -15).decode()
    assert "status:Success" in xml and f'Destination="{IDP_SLO}"' in xml


@pytest.mark.parametrize("wrong", [
    {"sign": False},
    {"sign": False, "binding": POST},
    {"binding": POST, "tamper": (">u-123<", ">u-999<")},
    {"tamper": (">u-123<", ">u-999<")},
    {"expires_in": -120},                                                   # past NotOnOrAfter and the skew
])
def test_unverified_idp_logout_request_ends_nothing(http: Any, provider: Any, idp: SamlIdp,
                                                   wrong: dict[str, Any]) -> None:
    sign_in(http, idp)
    binding = wrong.get("binding", REDIRECT)
    params = idp.start_logout(SLO, "u-123", None, **wrong)
    r = come_back(http, SLO, params, binding)
    assert r.status_code == 400 and "could not be verified" in r.text
    assert len(live_sessions(provider)) == 1 and http.get("/account").status_code == 200


def test_idp_logout_for_another_session_index_ends_nothing(http: Any, provider: Any, idp: SamlIdp) -> None:
    sign_in(http, idp)
    r = come_back(http, SLO, idp.start_logout(SLO, "u-123", "another-index"), REDIRECT)
    assert r.status_code == 303 and len(live_sessions(provider)) == 1
