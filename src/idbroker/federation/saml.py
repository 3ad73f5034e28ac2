"""SAML 2.0 upstreams (AD FS, Entra ID, Shibboleth, any SAML IdP): we are the Service Provider.

Why: enterprise directories (AD FS, Entra ID "enterprise applications", Okta, Shibboleth) offer
SAML 2.0 Web Browser SSO long before, or instead of, OpenID Connect. SAML's weak points are all in
the checking of the response (signature wrapping, SHA-1, replay, audience, unsolicited answers), so
the parsing and XML signature work is left to pysaml2 and the xmlsec1 binary, and everything the
profile requires that pysaml2 leaves optional or does not check is checked here, explicitly.

How:

* **Metadata.** The IdP's metadata comes inline (``idp_metadata``: XML), from a file
  (``idp_metadata_file``) or from ``idp_metadata_url``, fetched with the injected HTTP client (a
  timeout on every call), cached and fetched again after ``metadata_refresh`` seconds (default a
  day); when a refresh fails the last good copy is used and the fetch is retried at the next
  sign-in. Only keys from that metadata verify signatures (pysaml2 ``only_use_keys_in_metadata``),
  and only the IdP ``idp_entity_id`` (default: the one IdP the metadata describes) is accepted.
* **Our SP.** Entity id ``{issuer}/idp/{id}/metadata`` (where `metadata()` is served), one
  Assertion Consumer Service ``{issuer}/idp/{id}/acs`` (HTTP-POST binding), signing and decryption
  key ``sp_key`` / ``sp_cert`` (PEM). xmlsec1 reads keys from files, so they are written, mode 0600,
  to a private directory removed with this object.
* **start** sends a signed AuthnRequest over the HTTP-Redirect binding (Bindings §3.4.4.1: the
  query string is signed, SigAlg rsa-sha256) and keeps its ID and a random RelayState in
  `ctx.state`. The ACS is a cross-site POST, where SameSite cookies are not sent: the RelayState is
  what finds the parked request again, and `finish` checks it equals the one we sent.
* **finish** accepts the response only when every rule below holds; pysaml2 runs in a worker
  thread, as xmlsec1 is a subprocess.

Exactly what is checked in `finish` (Profiles = SAML 2.0 Profiles, Core = SAML 2.0 Core):

1. RelayState equals the one sent (CSRF: the answer belongs to this browser's request).
2. Every ``ds:SignatureMethod`` and ``ds:DigestMethod`` in the response, before and after
   decryption, is SHA-256 or stronger; SHA-1 (and MD5) are refused whatever the IdP says
   (XML Signature 1.1 §6.1, SHA-1 "NOT RECOMMENDED"; pysaml2 would accept them).
3. The response or its assertion is signed by a key of the IdP's metadata, and the signature
   covers the element it is on (pysaml2 + xmlsec1, ``want_assertions_or_response_signed``;
   Profiles §4.1.3.5). A tampered element fails here.
4. Status is Success (Core §3.2.2.2); a refusal at the IdP is shown as such.
5. Destination, when present, is our ACS (Core §3.2.2); InResponseTo of the response and of the
   bearer SubjectConfirmationData is our AuthnRequest's ID (Profiles §4.1.4.3): no unsolicited
   (IdP-initiated) responses.
6. Exactly one assertion, issued by the IdP (Profiles §4.1.4.2), with a bearer
   SubjectConfirmation whose Recipient is our ACS and which is not expired (Profiles §4.1.4.2).
7. Conditions NotBefore / NotOnOrAfter hold within SKEW seconds (Core §2.5.1.2), and there is an
   AudienceRestriction and every one of them names our entity id (Core §2.5.1.4).
8. The assertion ID was not seen before (Profiles §4.1.4.5): the injected replay cache keeps it
   until the assertion's NotOnOrAfter.
9. Encrypted assertions are decrypted with our key first, then held to 2-8 (Core §2.3.4).

What comes out: the NameID (persistent, emailAddress or unspecified; transient is refused, as it
names nobody twice) is the subject; attributes are mapped to claims by a preset (``saml`` URN
OIDs, ``adfs``, ``entra`` claim URIs) overridden by ``attributes`` {claim: attribute name}; groups
come from the groups attribute; an AuthnContextClassRef of multi-factor strength (or Entra's
authnmethodsreferences ``multipleauthn``) sets `mfa`. SAML has no email_verified: the IdP's
mail attribute is its directory's and counts as verified; linking by it still needs the provider
marked ``trust_email``.

Single logout (Profiles §4.4, front channel only):

* `finish` leaves the NameID (as received, XML) and the SessionIndex of the assertion in
  ``ctx.state[STATE_LOGIN]``; the sign-in page keeps them with the browser session
  (federation/saml_sessions.py), as a LogoutRequest must name both (Core §3.7.1).
* `logout_request` makes our signed LogoutRequest for them, sent over the HTTP-Redirect binding
  (query signed, rsa-sha256) to the IdP's SingleLogoutService; None when its metadata has no
  Redirect SLO endpoint (then only the local session ends).
* `logout_response` accepts the IdP's LogoutResponse at ``{issuer}/idp/{id}/slo`` (Redirect or
  POST) only when: it is signed by a key of the IdP's metadata (Redirect: the query signature,
  Bindings §3.4.4.1; POST: an XML signature on the response, Bindings §3.5.5.2) with an
  algorithm of SHA-256 strength or more; its Issuer is the IdP; its Destination is our SLO URL
  (Bindings §3.4.5.2, required of signed messages); its InResponseTo is our request's ID; and
  its status is Success (Core §3.7.3.2). RelayState must equal the one we sent.
* `logout_request_received` accepts an IdP-initiated LogoutRequest under the same signature,
  Issuer and Destination rules, not past its NotOnOrAfter (with SKEW); `logout_answer` makes
  our signed LogoutResponse for it (Redirect when the IdP has such an endpoint, else POST).

Not yet: encrypted attributes and NameIDs, the SOAP binding for logout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import hmac
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import load_pem_x509_certificate

from ..security import is_loopback_host
from .base import (
    REFUSED,
    REJECTED,
    UNAVAILABLE,
    ExternalIdentity,
    StartContext,
    UpstreamConfig,
    UpstreamError,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    import httpx
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, saml, samlp, time_util
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.extension import algsupport
    from saml2.metadata import entity_descriptor, sign_entity_descriptor
    from saml2.response import StatusError
    from saml2.s_utils import decode_base64_and_inflate
    from saml2.sigver import security_context, verify_redirect_signature


def load_pysaml2() -> None:
    """pysaml2 (with xmlschema, pyOpenSSL) imported on first use - when a SAML upstream is built -
    not when a worker starts: it costs ~0.4 s of CPU and ~20 MB per worker that most deployments
    never need (tests/unit/test_import_weight.py). The names become this module's globals, so the
    code below uses them as if imported at the top."""
    global BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, saml, samlp, time_util, Saml2Client, SPConfig
    global algsupport, entity_descriptor, sign_entity_descriptor, StatusError, decode_base64_and_inflate
    global security_context, verify_redirect_signature
    if "verify_redirect_signature" in globals():
        return
    with warnings.catch_warnings():  # pysaml2 7.5 names cryptography's CFB mode (unused here) on import
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, saml, samlp, time_util
        from saml2.client import Saml2Client
        from saml2.config import SPConfig
        from saml2.extension import algsupport
        from saml2.metadata import entity_descriptor, sign_entity_descriptor
        from saml2.response import StatusError
        from saml2.s_utils import decode_base64_and_inflate
        from saml2.sigver import security_context, verify_redirect_signature


# pysaml2's values (saml2.xmldsig, saml2.saml), spelled out so that the module loads without it;
# tests/unit/test_import_weight.py checks they are the same.
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
NAMEID_FORMAT_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_FORMAT_EMAILADDRESS = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_FORMAT_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

log = logging.getLogger("idbroker.federation")

SKEW = 60                       # seconds of clock difference tolerated with the IdP
MAX_RESPONSE_BYTES = 512 * 1024
METADATA_REFRESH = 86400        # seconds, unless the provider's `metadata_refresh` says otherwise
METADATA_TIMEOUT = 10.0
STATE_REQUEST_ID = "saml_request_id"
STATE_RELAY = "saml_relay_state"
STATE_LOGIN = "saml_login"      # {"name_id": NameID XML, "session_index": str | None}, set by `finish`

DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
ALLOWED_SIGNATURE_METHODS = frozenset({
    SIG_RSA_SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
})
ALLOWED_DIGEST_METHODS = frozenset({
    DIGEST_SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})

NAME_ID_FORMATS = {
    "persistent": NAMEID_FORMAT_PERSISTENT,
    "email": NAMEID_FORMAT_EMAILADDRESS,
    "unspecified": NAMEID_FORMAT_UNSPECIFIED,
}
SUBJECT_FORMATS = frozenset(NAME_ID_FORMATS.values())

# AuthnContextClassRef values that mean more than one factor was used.
MFA_CONTEXTS = frozenset({
    "http://schemas.microsoft.com/claims/multipleauthn",          # AD FS, Entra ID
    "https://refeds.org/profile/mfa",                             # REFEDS MFA profile
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
})

_WS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
_MS_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
# claim -> attribute names, the first present wins (groups: all of them).
ATTRIBUTE_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "saml": {   # eduPerson / saml2int URN OIDs (Shibboleth, SimpleSAMLphp, Keycloak, pysaml2)
        "email": ("urn:oid:0.9.2342.19200300.100.1.3",),
        "given_name": ("urn:oid:2.5.4.42",),
        "family_name": ("urn:oid:2.5.4.4",),
        "name": ("urn:oid:2.16.840.1.113730.3.1.241",),
        "preferred_username": ("urn:oid:0.9.2342.19200300.100.1.1",),
        "groups": ("urn:oid:1.3.6.1.4.1.5923.1.5.1.1",),
    },
    "adfs": {
        "email": (_WS + "emailaddress",),
        "given_name": (_WS + "givenname",),
        "family_name": (_WS + "surname",),
        "name": (_WS + "name",),
        "preferred_username": (_WS + "upn",),
        "groups": (_MS_GROUPS, "http://schemas.xmlsoap.org/claims/Group"),
    },
    "entra": {
        "email": (_WS + "emailaddress",),
        "given_name": (_WS + "givenname",),
        "family_name": (_WS + "surname",),
        "name": ("http://schemas.microsoft.com/identity/claims/displayname",),
        "preferred_username": (_WS + "name",),
        "groups": (_MS_GROUPS,),
    },
}
ENTRA_AMR = "http://schemas.microsoft.com/claims/authnmethodsreferences"


class ReplayCache(Protocol):
    def seen(self, assertion_id: str, until: float) -> bool:
        """True when `assertion_id` was already presented; otherwise remembers it until `until`
        (epoch seconds) and answers False. Must be atomic across workers."""
        ...


class MemoryReplayCache:
    """One process's replay cache; several workers need one backed by the store."""

    def __init__(self) -> None:
        self._ids: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, assertion_id: str, until: float) -> bool:
        now = time.time()
        with self._lock:
            self._ids = {i: u for i, u in self._ids.items() if u > now}
            if assertion_id in self._ids:
                return True
            self._ids[assertion_id] = until
            return False


class _NoPopulation:
    """pysaml2's client would remember every user it ever saw; we keep nothing."""

    def set(self, *args: Any) -> None:
        pass


def _parse(xml: str | bytes) -> Any:
    """defusedxml's parse (no entities, no external references), loaded with the first SAML answer
    or metadata document, not in every worker (~0.8 MB)."""
    from defusedxml import ElementTree

    return ElementTree.fromstring(xml)


def _check_algorithms(xml: str | bytes) -> None:
    try:
        root = _parse(xml)
    except Exception as e:
        raise UpstreamError(REJECTED, f"SAML response is not well-formed XML: {e}") from None
    for tag, allowed in (("SignatureMethod", ALLOWED_SIGNATURE_METHODS),
                         ("DigestMethod", ALLOWED_DIGEST_METHODS)):
        for element in root.iter(DSIG + tag):
            if element.get("Algorithm") not in allowed:
                raise UpstreamError(REJECTED, f"SAML {tag} {element.get('Algorithm')!r} refused")


def _timegm(value: str) -> int:
    load_pysaml2()
    return calendar.timegm(time_util.str_to_time(value))


class SamlUpstream:
    kind: ClassVar[str] = "saml"

    def __init__(self, config: UpstreamConfig, *, issuer: str, http: httpx.AsyncClient | None = None,
                 replay: ReplayCache | None = None):
        load_pysaml2()
        options = config.options
        self.config = config
        self.entity_id = f"{issuer.rstrip('/')}/idp/{config.id}/metadata"
        self.acs_url = f"{issuer.rstrip('/')}/idp/{config.id}/acs"
        self.slo_url = f"{issuer.rstrip('/')}/idp/{config.id}/slo"
        self._http = http
        self._replay = replay or MemoryReplayCache()
        self._url = options.get("idp_metadata_url")
        if self._url:
            parts = urlsplit(self._url)
            if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
                raise ValueError(f"idp_metadata_url {self._url!r} must use https")
            if http is None:
                raise ValueError("idp_metadata_url needs an HTTP client")
        self._refresh = float(options.get("metadata_refresh") or METADATA_REFRESH)
        self._name_id_format = NAME_ID_FORMATS[options.get("name_id_format") or "unspecified"]
        preset = ATTRIBUTE_PRESETS[options.get("attribute_preset") or "saml"]
        self._attributes = {claim: tuple(names) for claim, names in preset.items()}
        for claim, name in dict(options.get("attributes") or {}).items():
            self._attributes[claim] = (name,) if isinstance(name, str) else tuple(name)

        try:
            load_pem_private_key(options["sp_key"].encode(), None)
            load_pem_x509_certificate(options["sp_cert"].encode())
        except (TypeError, ValueError, AttributeError):
            raise ValueError("sp_key and sp_cert must be a PEM private key and certificate") from None
        self._dir = tempfile.mkdtemp(prefix="idbroker-saml-")
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._key_file = self._write("sp.key", options["sp_key"])
        self._cert_file = self._write("sp.crt", options["sp_cert"])
        self._metadata: str | None = None
        if options.get("idp_metadata"):
            self._metadata = options["idp_metadata"]
        elif options.get("idp_metadata_file"):
            with open(options["idp_metadata_file"], encoding="utf-8") as f:
                self._metadata = f.read()
        elif not self._url:
            raise ValueError("a saml provider needs idp_metadata, idp_metadata_file or idp_metadata_url")
        self._fetched_at = 0.0
        self._client: Saml2Client | None = None
        self._idp_entity_id: str = options.get("idp_entity_id") or ""
        self._lock = asyncio.Lock()

    def _write(self, name: str, pem: str) -> str:
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(pem)
        return path

    def _sp_config(self, metadata: str | None) -> SPConfig:
        conf: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": self._key_file,
            "cert_file": self._cert_file,
            "encryption_keypairs": [{"key_file": self._key_file, "cert_file": self._cert_file}],
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "accepted_time_diff": SKEW,
            "allow_unknown_attributes": True,
            "service": {"sp": {
                "endpoints": {"assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)],
                              "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT),
                                                        (self.slo_url, BINDING_HTTP_POST)]},
                "authn_requests_signed": True,
                "want_assertions_signed": False,
                "want_response_signed": False,
                "want_assertions_or_response_signed": True,
                "allow_unsolicited": False,
                "name_id_format": [self._name_id_format],
            }},
        }
        if metadata is not None:
            conf["metadata"] = {"inline": [metadata]}
        config = SPConfig()
        config.load(conf)
        return config

    async def _saml_client(self) -> Saml2Client:
        """The client for the current metadata, fetching it when it is missing or old."""
        async with self._lock:
            now = time.monotonic()
            if self._url and (self._metadata is None or now - self._fetched_at > self._refresh):
                try:
                    answer = await self._http.get(self._url, timeout=METADATA_TIMEOUT)  # type: ignore[union-attr]
                    answer.raise_for_status()
                    _parse(answer.content)
                except Exception as e:
                    if self._metadata is None:
                        raise UpstreamUnavailable(UNAVAILABLE, f"SAML metadata {self._url}: {e!r}") from None
                    log.warning("SAML metadata of %s could not be refreshed, using the last copy: %r",
                                self.config.id, e)
                else:
                    self._metadata, self._client = answer.text, None
                self._fetched_at = now
            if self._client is None:
                client = Saml2Client(self._sp_config(self._metadata), identity_cache=_NoPopulation())
                idps = [e for e in client.metadata.identity_providers()
                        if not self._idp_entity_id or e == self._idp_entity_id]
                if len(idps) != 1:
                    raise UpstreamUnavailable(UNAVAILABLE, f"SAML metadata of {self.config.id} names "
                                              f"{len(idps)} matching IdPs")
                self._idp_entity_id, self._client = idps[0], client
            return self._client

    def metadata(self) -> str:
        """Our SP metadata, signed with the SP key (rsa-sha256), to give to the IdP. Its algorithm
        support extension (SAML V2.0 Metadata Profile for Algorithm Support §2) lists only what we
        accept, so that IdPs which choose from it never pick SHA-1."""
        config = self._sp_config(None)
        descriptor = entity_descriptor(config)
        descriptor.extensions = md.Extensions()
        for algorithm in sorted(ALLOWED_DIGEST_METHODS):
            descriptor.extensions.add_extension_element(algsupport.DigestMethod(algorithm=algorithm))
        for algorithm in sorted(ALLOWED_SIGNATURE_METHODS):
            descriptor.extensions.add_extension_element(algsupport.SigningMethod(algorithm=algorithm))
        _, xml = sign_entity_descriptor(descriptor, None, security_context(config), SIG_RSA_SHA256, DIGEST_SHA256)
        return xml.decode() if isinstance(xml, bytes) else xml

    async def start(self, ctx: StartContext) -> str:
        client = await self._saml_client()
        relay_state = secrets.token_urlsafe(24)
        request_id, info = client.prepare_for_authenticate(
            entityid=self._idp_entity_id, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT,
            sign=True, sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
            nameid_format=self._name_id_format)
        ctx.state[STATE_REQUEST_ID] = request_id
        ctx.state[STATE_RELAY] = relay_state
        return dict(info["headers"])["Location"]

    async def finish(self, ctx: StartContext, params: Mapping[str, str]) -> ExternalIdentity:
        request_id = ctx.state.get(STATE_REQUEST_ID)
        relay_state = ctx.state.get(STATE_RELAY, "")
        encoded = params.get("SAMLResponse") or ""
        if not request_id:
            raise UpstreamError(REJECTED, "no SAML request is outstanding")
        if not hmac.compare_digest(str(params.get("RelayState") or ""), relay_state):
            raise UpstreamError(REJECTED, "SAML RelayState does not match the request")
        if not encoded or len(encoded) > MAX_RESPONSE_BYTES:
            raise UpstreamError(REJECTED, "no SAMLResponse, or one too large")
        try:
            xml = base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            raise UpstreamError(REJECTED, "SAMLResponse is not base64") from None
        _check_algorithms(xml)
        client = await self._saml_client()
        response = await asyncio.to_thread(self._parse, client, encoded, request_id)
        identity = self._identity(response, request_id)
        statements = response.assertion.authn_statement
        ctx.state[STATE_LOGIN] = {"name_id": str(response.name_id),
                                  "session_index": next((a.session_index for a in statements if a.session_index),
                                                        None)}
        return identity

    @staticmethod
    def _parse(client: Saml2Client, encoded: str, request_id: str) -> Any:
        try:
            return client.parse_authn_request_response(encoded, BINDING_HTTP_POST,
                                                       outstanding={request_id: "/"})
        except StatusError as e:
            raise UpstreamError(REFUSED, f"SAML status: {e}") from None
        except Exception as e:   # pysaml2 raises plain Exception for several checks
            raise UpstreamError(REJECTED, f"SAML response refused: {type(e).__name__}: {e}") from None

    def _identity(self, response: Any, request_id: str) -> ExternalIdentity:
        def reject(detail: str) -> UpstreamError:
            return UpstreamError(REJECTED, f"SAML response refused: {detail}")

        if response is None or response.assertion is None or len(response.assertions) != 1:
            raise reject("no single verified assertion (wrong Destination or InResponseTo?)")
        _check_algorithms(response.xmlstr)
        message, assertion = response.response, response.assertion
        if message.destination and message.destination != self.acs_url:
            raise reject(f"Destination {message.destination!r}")
        if message.in_response_to != request_id:
            raise reject(f"InResponseTo {message.in_response_to!r}")
        issuer = assertion.issuer.text.strip() if assertion.issuer is not None and assertion.issuer.text else ""
        if issuer != self._idp_entity_id:
            raise reject(f"assertion Issuer {issuer!r}")
        restrictions = assertion.conditions.audience_restriction if assertion.conditions else []
        if not restrictions or not all(
                any((a.text or "").strip() == self.entity_id for a in r.audience) for r in restrictions):
            raise reject("AudienceRestriction does not name us")
        confirmations = [c.subject_confirmation_data for c in assertion.subject.subject_confirmation]
        if not any(d is not None and d.in_response_to == request_id and d.recipient == self.acs_url
                   and d.not_on_or_after for d in confirmations):
            raise reject("no bearer SubjectConfirmation for our request and ACS")
        expiries = [_timegm(d.not_on_or_after) for d in confirmations if d and d.not_on_or_after]
        if assertion.conditions.not_on_or_after:
            expiries.append(_timegm(assertion.conditions.not_on_or_after))
        if self._replay.seen(f"{self.config.id}:{assertion.id}", min(expiries) + SKEW):
            raise reject(f"assertion {assertion.id} replayed")

        name_id = response.name_id
        if name_id is None or not (name_id.text or "").strip():
            raise reject("no NameID")
        if (name_id.format or NAMEID_FORMAT_UNSPECIFIED) not in SUBJECT_FORMATS:
            raise reject(f"NameID format {name_id.format!r} names nobody twice")
        subject = name_id.text.strip()

        attributes: dict[str, list[str]] = {}
        for statement in assertion.attribute_statement:
            for attribute in statement.attribute:
                attributes.setdefault(attribute.name, []).extend(
                    (v.text or "").strip() for v in attribute.attribute_value if (v.text or "").strip())
        claims: dict[str, Any] = {}
        for claim, names in self._attributes.items():
            if claim == "groups":
                continue
            value = next((attributes[n][0] for n in names if attributes.get(n)), None)
            if value is not None:
                claims[claim] = value
        groups = tuple(dict.fromkeys(g for n in self._attributes.get("groups", ()) for g in attributes.get(n, ())))
        groups_asserted = any(n in attributes for n in self._attributes.get("groups", ()))
        email = claims.get("email")
        if email is None and name_id.format == NAMEID_FORMAT_EMAILADDRESS:
            email = claims["email"] = subject

        contexts = {(s.authn_context.authn_context_class_ref.text or "").strip()
                    for s in assertion.authn_statement
                    if s.authn_context is not None and s.authn_context.authn_context_class_ref is not None}
        contexts.update(attributes.get(ENTRA_AMR, ()))
        mfa = bool(contexts & MFA_CONTEXTS)
        return ExternalIdentity(provider_id=self.config.id, subject=subject, email=email,
                                email_verified=email is not None, claims=claims, groups=groups,
                                groups_asserted=groups_asserted, amr=("mfa",) if mfa else (), mfa=mfa)

    # -- single logout ------------------------------------------------------------------------------
    def _idp_slo(self, client: Saml2Client, binding: str) -> str | None:
        try:
            services = client.metadata.single_logout_service(self._idp_entity_id, binding, "idpsso")
        except Exception:   # pysaml2 raises for an entity without the descriptor
            return None
        return next((s.get("location") for s in services or () if s.get("location")), None)

    async def logout_request(self, name_id_xml: str, session_index: str | None) -> tuple[str, str, str] | None:
        """(the IdP address to send the browser to, the request ID, the RelayState) for our signed
        LogoutRequest, or None when the IdP has no HTTP-Redirect SingleLogoutService."""
        client = await self._saml_client()
        destination = self._idp_slo(client, BINDING_HTTP_REDIRECT)
        if destination is None:
            return None
        name_id = saml.name_id_from_string(name_id_xml)
        if name_id is None:
            raise UpstreamError(REJECTED, "the kept NameID is not readable")
        request_id, request = client.create_logout_request(
            destination, self._idp_entity_id, name_id=name_id, sign=False,
            session_indexes=[session_index] if session_index else None,
            expire=time_util.in_a_while(minutes=10))
        relay_state = secrets.token_urlsafe(24)
        info = client.apply_binding(BINDING_HTTP_REDIRECT, str(request), destination, relay_state,
                                    sign=True, sigalg=SIG_RSA_SHA256)
        return dict(info["headers"])["Location"], request_id, relay_state

    async def _verified(self, params: Mapping[str, str], binding: str, kind: str) -> Any:
        """The message `kind` (SAMLRequest / SAMLResponse) of `params`, its signature checked
        with the IdP's metadata keys; the parsed samlp object."""
        encoded = params.get(kind) or ""
        if not encoded or len(encoded) > MAX_RESPONSE_BYTES:
            raise UpstreamError(REJECTED, f"no {kind}, or one too large")
        client = await self._saml_client()
        msgtype = "logout_request" if kind == "SAMLRequest" else "logout_response"
        if binding == BINDING_HTTP_REDIRECT:
            sigalg, signature = params.get("SigAlg"), params.get("Signature")
            if not sigalg or not signature:
                raise UpstreamError(REJECTED, f"the {kind} is not signed")
            if sigalg not in ALLOWED_SIGNATURE_METHODS:
                raise UpstreamError(REJECTED, f"SAML SigAlg {sigalg!r} refused")
            signed = {k: str(params[k]) for k in (kind, "RelayState", "SigAlg", "Signature") if k in params}
            certs = client.metadata.certs(self._idp_entity_id, "idpsso", "signing")

            def check(cert: str) -> bool:
                try:
                    return verify_redirect_signature(signed, client.sec.sec_backend, cert=cert)
                except Exception:
                    return False
            if not any(check(c[1]) for c in certs):
                raise UpstreamError(REJECTED, f"the {kind} query signature does not verify")
            try:
                xml = decode_base64_and_inflate(encoded)
            except Exception:
                raise UpstreamError(REJECTED, f"the {kind} is not deflated base64") from None
            _check_algorithms(xml)
            message = getattr(samlp, f"{msgtype}_from_string")(xml)
        else:
            try:
                xml = base64.b64decode(encoded, validate=False)
            except (binascii.Error, ValueError):
                raise UpstreamError(REJECTED, f"the {kind} is not base64") from None
            _check_algorithms(xml)
            try:
                message = await asyncio.to_thread(client.sec.correctly_signed_message, xml.decode(), msgtype, True)
            except Exception as e:
                raise UpstreamError(REJECTED, f"the {kind} signature: {type(e).__name__}: {e}") from None
        if message is None:
            raise UpstreamError(REJECTED, f"the {kind} is not a {msgtype}")
        issuer = (message.issuer.text or "").strip() if message.issuer is not None else ""
        if issuer != self._idp_entity_id:
            raise UpstreamError(REJECTED, f"{kind} Issuer {issuer!r}")
        if message.destination != self.slo_url:
            raise UpstreamError(REJECTED, f"{kind} Destination {message.destination!r}")
        return message

    async def logout_response(self, params: Mapping[str, str], binding: str, request_id: str,
                              relay_state: str) -> None:
        """Returns when the IdP's LogoutResponse answers our request `request_id` with Success;
        raises UpstreamError otherwise (the module docstring lists the checks)."""
        if not hmac.compare_digest(str(params.get("RelayState") or ""), relay_state):
            raise UpstreamError(REJECTED, "SAML RelayState does not match the logout request")
        message = await self._verified(params, binding, "SAMLResponse")
        if message.in_response_to != request_id:
            raise UpstreamError(REJECTED, f"LogoutResponse InResponseTo {message.in_response_to!r}")
        code = message.status.status_code.value if message.status and message.status.status_code else None
        if code != samlp.STATUS_SUCCESS:
            raise UpstreamError(REFUSED, f"LogoutResponse status {code!r}")

    async def logout_request_received(self, params: Mapping[str, str], binding: str) -> tuple[str, str, list[str]]:
        """(request ID, NameID value, session indexes) of an IdP-initiated LogoutRequest that
        passed the checks of the module docstring."""
        message = await self._verified(params, binding, "SAMLRequest")
        if message.not_on_or_after and _timegm(message.not_on_or_after) + SKEW < time.time():
            raise UpstreamError(REJECTED, "LogoutRequest expired")
        if message.name_id is None or not (message.name_id.text or "").strip():
            raise UpstreamError(REJECTED, "LogoutRequest names no NameID")
        indexes = [(i.text or "").strip() for i in message.session_index if (i.text or "").strip()]
        return message.id, message.name_id.text.strip(), indexes

    async def logout_answer(self, request_id: str, relay_state: str | None, *, success: bool = True
                            ) -> tuple[str, str]:
        """Our signed LogoutResponse to the IdP's request: ("redirect", url) or ("post", html form)."""
        client = await self._saml_client()
        status = None if success else samlp.Status(status_code=samlp.StatusCode(value=samlp.STATUS_RESPONDER))
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
            destination = self._idp_slo(client, binding)
            if destination:
                break
        else:
            raise UpstreamError(REJECTED, "the IdP's metadata has no SingleLogoutService")
        post = binding == BINDING_HTTP_POST
        response = client._status_response(
            samlp.LogoutResponse, client._issuer(), status, post, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
            in_response_to=request_id, destination=destination)
        info = client.apply_binding(binding, str(response), destination, relay_state or "", response=True,
                                    sign=not post, sigalg=SIG_RSA_SHA256)
        if post:
            return "post", info["data"]
        return "redirect", dict(info["headers"])["Location"]
