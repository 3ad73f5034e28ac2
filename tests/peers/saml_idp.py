"""A real SAML 2.0 IdP for the upstream tests: pysaml2's own `saml2.server.Server`, with keys made
here, answering the AuthnRequests our SP sends and able to answer them wrongly on purpose (unsigned,
SHA-1, expired, for another audience or request, encrypted); and single logout: it answers our
LogoutRequests (Redirect or POST, signed or not, tampered on purpose) and starts logouts itself."""

from __future__ import annotations

import base64
import contextlib
import datetime
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():  # pysaml2 7.5 names cryptography's deprecated CFB mode on import
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp, time_util
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.s_utils import deflate_and_base64_encode
    from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.server import Server
    from saml2.sigver import verify_redirect_signature
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

IDP_ENTITY_ID = "https://idp.example.test/saml"
IDP_SLO = IDP_ENTITY_ID + "/slo"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"


def keypair(common_name: str) -> tuple[str, str]:
    """A fresh RSA key and a self-signed certificate for it, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@contextlib.contextmanager
def _clock_shifted(seconds: float) -> Iterator[None]:
    """pysaml2's clock (saml2.time_util: `time.gmtime()` and `datetime.now`) moved by `seconds`."""

    class Time:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def gmtime(self, secs: float | None = None) -> time.struct_time:
            return time.gmtime(time.time() + seconds if secs is None else secs)

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return datetime.datetime.now(tz) + datetime.timedelta(seconds=seconds)

    with mock.patch.object(time_util, "time", Time()), mock.patch.object(time_util, "datetime", Clock):
        yield


class SamlIdp:
    """The IdP, configured with our SP's metadata (as an operator would paste it)."""

    def __init__(self, sp_metadata: str | None = None, *, slo: bool = True):
        self.dir = Path(tempfile.mkdtemp(prefix="saml-idp-"))
        key, cert = keypair("test idp")
        (self.dir / "idp.key").write_text(key)
        (self.dir / "idp.crt").write_text(cert)
        self.cert_pem = cert
        self.sp_metadata = sp_metadata
        self.slo = slo
        self.server = self._server(sp_metadata)

    def _server(self, sp_metadata: str | None) -> Server:
        conf: dict[str, Any] = {
            "entityid": IDP_ENTITY_ID,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": str(self.dir / "idp.key"),
            "cert_file": str(self.dir / "idp.crt"),
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(IDP_ENTITY_ID + "/sso", BINDING_HTTP_REDIRECT)],
                              **({"single_logout_service": [(IDP_SLO, BINDING_HTTP_REDIRECT),
                                                            (IDP_SLO, BINDING_HTTP_POST)]} if self.slo else {})},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI,
                                       "attribute_restrictions": None}},
            }},
        }
        if sp_metadata:
            conf["metadata"] = {"inline": [sp_metadata]}
        config = IdPConfig()
        config.load(conf)
        return Server(config=config)

    def metadata(self) -> str:
        xml = create_metadata_string(None, self.server.config, valid=24, sign=False)
        return xml.decode() if isinstance(xml, bytes) else xml

    def receive(self, location: str) -> tuple[Any, str, dict[str, str]]:
        """The AuthnRequest in a Redirect-binding URL, its query signature checked with the SP's
        certificate from metadata: (request, relay state, query)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        request = self.server.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
        sp = request.message.issuer.text
        certs = self.server.metadata.certs(sp, "spsso", "signing")
        assert any(verify_redirect_signature(query, self.server.sec.sec_backend, cert=c[1]) for c in certs), \
            "the AuthnRequest's Redirect-binding signature does not verify"
        return request.message, query.get("RelayState", ""), query

    def respond(self, location: str, *, identity: dict[str, list[str]] | None = None, subject: str = "u-123",
                sign_assertion: bool = True, sign_response: bool = False, sign_alg: str = SIG_RSA_SHA256,
                digest_alg: str = DIGEST_SHA256, encrypt: bool = False, issued_ago: float = 0,
                audience: str | None = None, in_response_to: str | None = None,
                authn_context: str = PASSWORD_CONTEXT, tamper: tuple[str, str] | None = None) -> dict[str, str]:
        """The HTTP-POST form our ACS would receive for the AuthnRequest in `location`, made
        `issued_ago` seconds ago by the IdP's clock (valid for five minutes from then)."""
        request, relay_state, _ = self.receive(location)
        with _clock_shifted(-issued_ago):
            response = self.server.create_authn_response(
                identity or {"urn:oid:0.9.2342.19200300.100.1.3": ["alice@example.com"],
                             "urn:oid:2.5.4.42": ["Alice"], "urn:oid:2.5.4.4": ["Liddell"],
                             "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": ["staff", "admins"]},
                in_response_to or request.id, request.assertion_consumer_service_url,
                audience or request.issuer.text,
                name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
                authn={"class_ref": authn_context, "authn_auth": IDP_ENTITY_ID},
                sign_assertion=sign_assertion, sign_response=sign_response,
                sign_alg=sign_alg, digest_alg=digest_alg, encrypt_assertion=encrypt,
                encrypt_assertion_self_contained=True,
                encrypt_cert_assertion=self._sp_encryption_cert(request.issuer.text) if encrypt else None)
        xml = str(response)
        if tamper:
            assert tamper[0] in xml
            xml = xml.replace(tamper[0], tamper[1])
        return {"SAMLResponse": base64.b64encode(xml.encode()).decode(), "RelayState": relay_state}

    def _sp_encryption_cert(self, sp: str) -> str:
        der = self.server.metadata.certs(sp, "spsso", "encryption")[0][1]
        return "-----BEGIN CERTIFICATE-----\n" + der + "\n-----END CERTIFICATE-----\n"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


    # -- single logout --------------------------------------------------------------------------
    def receive_logout(self, location: str) -> tuple[Any, str]:
        """The SP's LogoutRequest in a Redirect-binding URL, its query signature checked with the
        SP's certificate from metadata: (request, relay state)."""
        assert location.startswith(IDP_SLO + "?"), location
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["SigAlg"] == SIG_RSA_SHA256
        request = self.server.parse_logout_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
        sp = request.message.issuer.text
        certs = self.server.metadata.certs(sp, "spsso", "signing")
        assert any(verify_redirect_signature(query, self.server.sec.sec_backend, cert=c[1]) for c in certs), \
            "the LogoutRequest's Redirect-binding signature does not verify"
        return request.message, query.get("RelayState", "")

    def answer_logout(self, location: str, *, binding: str = BINDING_HTTP_REDIRECT, sign: bool = True,
                      status: str | None = None, in_response_to: str | None = None, destination: str | None = None,
                      tamper: tuple[str, str] | None = None, sigalg: str = SIG_RSA_SHA256,
                      relay_state: str | None = None) -> tuple[str, dict[str, str]]:
        """The LogoutResponse to the request in `location`: (the SP address, the query or form)."""
        request, sent_relay_state = self.receive_logout(location)
        sp_slo = self.server.metadata.single_logout_service(request.issuer.text, binding, "spsso")[0]["location"]
        post = binding == BINDING_HTTP_POST
        response = self.server._status_response(
            samlp.LogoutResponse, self.server._issuer(),
            samlp.Status(status_code=samlp.StatusCode(value=status)) if status else None,
            sign and post, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
            in_response_to=in_response_to or request.id, destination=destination or sp_slo)
        relay_state = sent_relay_state if relay_state is None else relay_state
        return sp_slo, self._encode(str(response), "SAMLResponse", relay_state, binding, sign, tamper, sigalg)

    def start_logout(self, sp_slo: str, subject: str, session_index: str | None, *,
                     binding: str = BINDING_HTTP_REDIRECT, sign: bool = True,
                     tamper: tuple[str, str] | None = None, expires_in: float = 300) -> dict[str, str]:
        """An IdP-initiated LogoutRequest for the SP's `sp_slo`: the query or form to send there."""
        post = binding == BINDING_HTTP_POST
        _, request = self.server.create_logout_request(
            sp_slo, self.sp_entity_id(), name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
            session_indexes=[session_index] if session_index else None, sign=sign and post,
            sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, expire=time_util.in_a_while(seconds=int(expires_in)))
        return self._encode(str(request), "SAMLRequest", "idp-relay", binding, sign, tamper)

    def sp_entity_id(self) -> str:
        return next(iter(self.server.metadata.service_providers()))

    def _encode(self, xml: str, kind: str, relay_state: str, binding: str, sign: bool,
                tamper: tuple[str, str] | None, sigalg: str = SIG_RSA_SHA256) -> dict[str, str]:
        """The message over `binding`, signed as it says; `tamper` changes the XML after signing."""
        tampered = xml
        if tamper:
            assert tamper[0] in xml, xml
            tampered = xml.replace(tamper[0], tamper[1])
        if binding == BINDING_HTTP_POST:
            return {kind: base64.b64encode(tampered.encode()).decode(), "RelayState": relay_state}
        info = self.server.apply_binding(BINDING_HTTP_REDIRECT, xml, IDP_SLO, relay_state,
                                         response=kind == "SAMLResponse", sign=sign, sigalg=sigalg)
        location = dict(info["headers"])["Location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if tamper:
            query[kind] = deflate_and_base64_encode(tampered).decode()
        return query
