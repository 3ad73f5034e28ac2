"""A software authenticator for the passkey tests: real P-256 keys (cryptography), real CBOR
(cbor2), and the byte layouts of WebAuthn Level 3 §6.1 (authenticator data), §6.5 (attestation
object, format "none") and §5.8.1 (client data) - what a browser hands to the page, as the JSON
that static/webauthn.js posts. Every field can be bent to test what the broker refuses."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
OPTIONS_RE = re.compile(r'data-options="([^"]*)"')


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def page_options(page_html: str) -> dict[str, Any]:
    """The options a /mfa page put in its form's data-options attribute."""
    found = OPTIONS_RE.search(page_html)
    assert found, "no data-options on the page"
    return json.loads(html.unescape(found.group(1)))


@dataclass
class Credential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0


@dataclass
class SoftAuthenticator:
    """A platform authenticator that keeps discoverable credentials. `counts` False keeps every
    signature counter at 0, like most synced passkeys."""

    origin: str
    aaguid: bytes = bytes(16)
    counts: bool = True
    backup_eligible: bool = False
    credentials: list[Credential] = field(default_factory=list)

    # -- navigator.credentials.create() ---------------------------------------------------------
    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
               uv: bool = True, challenge: str | None = None, credential_id: bytes | None = None) -> dict[str, Any]:
        rp = rp_id or options["rp"]["id"]
        excluded = {d["id"] for d in options.get("excludeCredentials") or []}
        assert not any(b64url(c.credential_id) in excluded for c in self.credentials if c.rp_id == rp), \
            "this authenticator already holds an excluded credential (InvalidStateError)"
        cred = Credential(credential_id or secrets.token_bytes(32), ec.generate_private_key(ec.SECP256R1()), rp,
                          unb64url(options["user"]["id"]))
        self.credentials.append(cred)
        numbers = cred.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = self.aaguid + struct.pack(">H", len(cred.credential_id)) + cred.credential_id + cose
        auth_data = self._auth_data(rp, uv, cred.counter, AT) + attested
        client_data = self._client_data("webauthn.create", challenge or options["challenge"], origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64url(cred.credential_id), "rawId": b64url(cred.credential_id), "type": "public-key",
                "authenticatorAttachment": "platform",
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                             "transports": ["internal", "hybrid"]},
                "clientExtensionResults": {"credProps": {"rk": True}}}

    # -- navigator.credentials.get() ------------------------------------------------------------
    def get(self, options: dict[str, Any], *, credential: Credential | None = None, origin: str | None = None,
            rp_id: str | None = None, uv: bool = True, counter: int | None = None, challenge: str | None = None,
            user_handle: bytes | None = None) -> dict[str, Any]:
        rp = rp_id or options.get("rpId")
        if credential is None:
            allowed = {d["id"] for d in options.get("allowCredentials") or []}
            usable = [c for c in self.credentials if c.rp_id == options.get("rpId")
                      and (not allowed or b64url(c.credential_id) in allowed)]
            assert usable, "no credential for this request (NotAllowedError)"
            credential = usable[-1]
        if counter is not None:
            credential.counter = counter
        elif self.counts:
            credential.counter += 1
        auth_data = self._auth_data(rp, uv, credential.counter, 0)
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = credential.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(credential.credential_id), "rawId": b64url(credential.credential_id),
                "type": "public-key", "authenticatorAttachment": "platform",
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature),
                             "userHandle": b64url(credential.user_handle if user_handle is None else user_handle)},
                "clientExtensionResults": {}}

    # -- the bytes ------------------------------------------------------------------------------
    def _auth_data(self, rp_id: str, uv: bool, counter: int, extra_flags: int) -> bytes:
        flags = UP | (UV if uv else 0) | extra_flags | ((BE | BS) if self.backup_eligible else 0)
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()
