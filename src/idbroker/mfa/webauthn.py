"""Passkeys and security keys (WebAuthn, through py_webauthn): registration, use as a second
factor after a password, and passwordless sign-in with a discoverable credential.

Credentials are `MfaFactor` rows of kind "webauthn": `credential_id` is the credential's id
(base64url, unique), `last_counter` its signature counter, and `data` holds the public key
(COSE, base64url), transports, AAGUID, the backup flags and whether the credential is
discoverable (credProps), as the authenticator reported them.

As a second factor this is the "webauthn" kind of mfa/factors.py (WebAuthnFactor below): the
/mfa pages render the options into the page and the browser (static/webauthn.js) posts the
authenticator's answer back in the page's form. Passwordless sign-in has its own JSON endpoints
on the login page (pages/passkey_sign_in.py), which shares the one `Passkeys` the composition root builds.

Challenges never come from the client. Each ceremony's options go with a short-lived signed
token (HS256 with a key derived from the broker's secret) holding the challenge, the purpose
("register", "login", "mfa"), and the user (and, for registration, the pending factor) it was
issued to. Passwordless sign-in keeps it in an HttpOnly cookie of the browser; the /mfa forms
carry it in a hidden field. A token is good once: verifying consumes its id through the
revoked-token list, whatever the outcome.

Authentication method references (RFC 8176): a passkey used with user verification for
passwordless sign-in gives amr ["hwk", "mfa"] and acr urn:idbroker:acr:mfa (possession of the
key plus the authenticator's PIN or biometric check are two factors); used after a password it
adds "hwk" (and "mfa") to the session.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..security import derive_key, loads_bounded, random_token
from ..store.db import Database, utcnow
from ..store.models import MfaFactor, RevokedToken, User
from ..text import N_
from .base import Attempt, FactorError

if TYPE_CHECKING:
    from ..settings import Settings
    from . import webauthn_api
    from .service import MfaService


def load_webauthn() -> ModuleType:
    """py_webauthn's names (mfa/webauthn_api.py), imported on first use - a passkey ceremony - not
    when a worker starts: py_webauthn with pyOpenSSL, pyasn1 and cbor2 is ~0.08 s of CPU and ~5 MB
    per worker that password and token traffic never needs (tests/unit/test_import_weight.py)."""
    from . import webauthn_api

    return webauthn_api


log = logging.getLogger("idbroker.webauthn")

KIND = "webauthn"
AMR = "hwk"  # RFC 8176: proof of possession of a hardware-secured key
PASSWORDLESS_AMR = ["hwk", "mfa"]
REGISTER, LOGIN, MFA = "register", "login", "mfa"
CHALLENGE_TTL = 300  # seconds a ceremony may take
TIMEOUT_MS = 120_000
MAX_CREDENTIAL_JSON = 64 * 1024

# Message ids shown to the user (translated where shown).
FAILED = N_("That passkey could not be verified. Please try again.")
EXPIRED = N_("The passkey request expired. Please try again.")
UNKNOWN = N_("This passkey is not registered here.")
ALREADY = N_("This passkey or security key is already registered.")


class PasskeyError(Exception):
    """A ceremony failed; `message` is a message id for the user."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(detail or message)
        self.message = message


@dataclass(frozen=True)
class Ceremony:
    """What a challenge token says."""

    jti: str
    purpose: str
    challenge: bytes
    user_id: int | None
    factor_id: str | None
    expires_at: int


@dataclass(frozen=True)
class Authenticated:
    factor: MfaFactor
    user: User
    user_verified: bool


def rp_id_for(settings: Settings) -> str:
    return settings.webauthn_rp_id or (urlsplit(settings.issuer).hostname or "")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def usable_rp_id(rp_id: str) -> bool:
    """Browsers refuse IP addresses as RP ids (WebAuthn §5.1.3 needs a domain)."""
    try:
        ipaddress.ip_address(rp_id.strip("[]"))
    except ValueError:
        return bool(rp_id)
    return False


def user_handle(user: User) -> bytes:
    """The WebAuthn user.id: the random subject, never the address (§14.6.1)."""
    return user.sub.encode()


class Passkeys:
    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.rp_id = rp_id_for(settings)
        self.rp_name = settings.webauthn_rp_name or "idbroker"
        self.origin = origin_of(settings.issuer)
        self.available = usable_rp_id(self.rp_id)
        self._key = OctKey.import_key(derive_key(settings.secret_bytes(), "idbroker webauthn challenges"))

    # -- challenge tokens -----------------------------------------------------------------------
    def _token(self, purpose: str, challenge: bytes, user: User | None, factor_id: str | None = None) -> str:
        wa = load_webauthn()
        claims: dict[str, Any] = {"jti": "webauthn." + random_token(16), "pur": purpose,
                                  "ch": wa.bytes_to_base64url(challenge), "exp": int(time.time()) + CHALLENGE_TTL}
        if user is not None:
            claims["uid"] = user.id
        if factor_id is not None:
            claims["fid"] = factor_id
        return jwt.encode({"alg": "HS256", "typ": "idbroker-webauthn"}, claims, self._key)

    def ceremony(self, token: str | None, purpose: str) -> Ceremony:
        """The live ceremony of `purpose` that `token` describes; PasskeyError(EXPIRED) otherwise."""
        wa = load_webauthn()
        if not token or len(token) > 2048:
            raise PasskeyError(EXPIRED, "no challenge token")
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"]).claims
            exp = int(claims["exp"])
            found = Ceremony(jti=str(claims["jti"]), purpose=str(claims["pur"]),
                             challenge=wa.base64url_to_bytes(str(claims["ch"])),
                             user_id=int(claims["uid"]) if "uid" in claims else None,
                             factor_id=str(claims["fid"]) if "fid" in claims else None, expires_at=exp)
        except (JoseError, KeyError, TypeError, ValueError) as exc:
            raise PasskeyError(EXPIRED, f"bad challenge token: {exc}") from None
        if found.purpose != purpose or exp <= time.time():
            raise PasskeyError(EXPIRED, "challenge token expired or for another purpose")
        return found

    def consume(self, ceremony: Ceremony) -> None:
        """Marks the challenge used; PasskeyError(EXPIRED) when it already was."""
        expires = datetime.fromtimestamp(ceremony.expires_at, UTC)
        try:
            with self.db.session() as s:
                if s.get(RevokedToken, ceremony.jti) is not None:
                    raise PasskeyError(EXPIRED, "challenge already used")
                s.add(RevokedToken(jti=ceremony.jti, expires_at=expires))
        except IntegrityError:
            raise PasskeyError(EXPIRED, "challenge already used") from None

    # -- registration -----------------------------------------------------------------------------
    def registration_options(self, user: User, factor_id: str) -> tuple[dict[str, Any], str]:
        """(PublicKeyCredentialCreationOptions as JSON, challenge token) to set up the pending
        factor `factor_id`."""
        wa = load_webauthn()
        existing = self.credentials(user.id)
        options = wa.generate_registration_options(
            rp_id=self.rp_id, rp_name=self.rp_name, user_id=user_handle(user), user_name=user.email,
            user_display_name=" ".join(n for n in (user.given_name, user.family_name) if n) or user.email,
            timeout=TIMEOUT_MS,
            authenticator_selection=wa.AuthenticatorSelectionCriteria(
                resident_key=wa.ResidentKeyRequirement.PREFERRED,
                user_verification=wa.UserVerificationRequirement.PREFERRED),
            exclude_credentials=[_descriptor(f) for f in existing])
        data = _json(options)
        data["extensions"] = {"credProps": True}  # tells whether the credential is discoverable
        return data, self._token(REGISTER, options.challenge, user, factor_id)

    def register(self, ceremony: Ceremony, user: User, factor_id: str, credential: Any) -> MfaFactor:
        """Verifies an attestation (navigator.credentials.create() as JSON) and stores the
        credential in the pending factor, which it confirms."""
        wa = load_webauthn()
        if ceremony.user_id != user.id or ceremony.factor_id != factor_id:
            raise PasskeyError(EXPIRED, "challenge issued for another user or factor")
        self.consume(ceremony)
        credential = _parsed_json(credential)
        try:
            verified = wa.verify_registration_response(credential=credential, expected_challenge=ceremony.challenge,
                                                       expected_rp_id=self.rp_id, expected_origin=self.origin)
        except (wa.InvalidRegistrationResponse, wa.WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyError(FAILED, f"registration refused: {exc}") from None
        transports = [t for t in (credential.get("response") or {}).get("transports") or []
                      if isinstance(t, str) and t in wa.TRANSPORTS]
        props = (credential.get("clientExtensionResults") or {}).get("credProps") or {}
        credential_id = wa.bytes_to_base64url(verified.credential_id)
        data = {"public_key": wa.bytes_to_base64url(verified.credential_public_key), "transports": transports,
                "aaguid": verified.aaguid, "fmt": str(getattr(verified.fmt, "value", verified.fmt)),
                "backup_eligible": verified.credential_device_type.value == "multi_device",
                "backed_up": verified.credential_backed_up, "user_verified": verified.user_verified,
                "discoverable": props.get("rk") if isinstance(props, dict) and isinstance(props.get("rk"), bool)
                else None}
        now = utcnow()
        try:
            with self.db.session() as s:
                if s.scalar(select(MfaFactor.id).where(MfaFactor.credential_id == credential_id)) is not None:
                    raise PasskeyError(ALREADY, "credential id already registered")
                row = s.scalar(select(MfaFactor).where(MfaFactor.id == factor_id, MfaFactor.user_id == user.id,
                                                       MfaFactor.kind == KIND, MfaFactor.confirmed_at.is_(None)))
                if row is None:
                    raise PasskeyError(EXPIRED, "the pending factor is gone or already confirmed")
                row.credential_id, row.data, row.last_counter = credential_id, data, verified.sign_count
                row.confirmed_at = row.last_used_at = now
        except IntegrityError:
            raise PasskeyError(ALREADY, "credential id already registered") from None
        return row

    # -- authentication -------------------------------------------------------------------------
    def authentication_options(self, purpose: str, user: User | None = None) -> tuple[dict[str, Any], str]:
        """Passwordless (purpose LOGIN): any discoverable credential, user verification required.
        Second factor (MFA): the user's credentials, user verification preferred."""
        wa = load_webauthn()
        if purpose == LOGIN:
            options = wa.generate_authentication_options(rp_id=self.rp_id, timeout=TIMEOUT_MS,
                                                         user_verification=wa.UserVerificationRequirement.REQUIRED)
        else:
            assert user is not None
            allowed = [_descriptor(f) for f in self.credentials(user.id)]
            if not allowed:
                raise PasskeyError(UNKNOWN, "the user has no passkey")
            options = wa.generate_authentication_options(rp_id=self.rp_id, timeout=TIMEOUT_MS,
                                                         allow_credentials=allowed,
                                                         user_verification=wa.UserVerificationRequirement.PREFERRED)
        return _json(options), self._token(purpose, options.challenge, user)

    def authenticate(self, ceremony: Ceremony, credential: Any, *, user: User | None = None) -> Authenticated:
        """Verifies an assertion (navigator.credentials.get() as JSON). With `user` (second
        factor) the credential must be one of theirs; without (passwordless) the authenticator
        must have verified the user (PIN, biometrics)."""
        wa = load_webauthn()
        passwordless = user is None
        if not passwordless and ceremony.user_id != user.id:
            raise PasskeyError(EXPIRED, "challenge issued for another user")
        self.consume(ceremony)
        credential = _parsed_json(credential)
        try:
            parsed = wa.parse_authentication_credential_json(credential)
        except (wa.WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyError(FAILED, f"malformed assertion: {exc}") from None
        credential_id = wa.bytes_to_base64url(parsed.raw_id)
        with self.db.session(write=False) as s:
            found = s.execute(select(MfaFactor, User).join(User, User.id == MfaFactor.user_id).where(
                MfaFactor.credential_id == credential_id, MfaFactor.kind == KIND,
                MfaFactor.confirmed_at.is_not(None))).first()
        if found is None:
            raise PasskeyError(UNKNOWN, "unknown credential")
        factor, owner = found
        if owner.disabled or (user is not None and owner.id != user.id):
            raise PasskeyError(UNKNOWN, "credential of another or a disabled user")
        handle = parsed.response.user_handle
        if handle and handle != user_handle(owner):
            raise PasskeyError(FAILED, "user handle does not match the credential's user")
        try:
            verified = wa.verify_authentication_response(
                credential=parsed, expected_challenge=ceremony.challenge, expected_rp_id=self.rp_id,
                expected_origin=self.origin, credential_public_key=wa.base64url_to_bytes(factor.data["public_key"]),
                credential_current_sign_count=factor.last_counter or 0, require_user_verification=passwordless)
        except (wa.InvalidAuthenticationResponse, wa.WebAuthnException, ValueError, TypeError, KeyError) as exc:
            if "sign count" in str(exc):
                # A counter that does not move forward: the key may have been cloned (§6.1.1).
                log.warning("passkey %s of user %s refused: its signature counter did not increase (%s)",
                            factor.id, owner.sub, exc)
            raise PasskeyError(FAILED, f"assertion refused: {exc}") from None
        now = utcnow()
        previous = MfaFactor.last_counter.is_(None) if factor.last_counter is None \
            else MfaFactor.last_counter == factor.last_counter
        with self.db.session() as s:
            # Compare-and-set: of two assertions racing with the same counter, one wins.
            done = s.execute(update(MfaFactor).where(MfaFactor.id == factor.id, previous).values(
                last_counter=verified.new_sign_count, last_used_at=now,
                data={**(factor.data or {}), "backed_up": verified.credential_backed_up})).rowcount
        if done != 1:
            raise PasskeyError(FAILED, "signature counter changed concurrently")
        factor.last_counter, factor.last_used_at = verified.new_sign_count, now
        return Authenticated(factor, owner, verified.user_verified)

    # -- the user's credentials ------------------------------------------------------------------
    def credentials(self, user_id: int) -> list[MfaFactor]:
        with self.db.session(write=False) as s:
            return list(s.scalars(select(MfaFactor).where(
                MfaFactor.user_id == user_id, MfaFactor.kind == KIND, MfaFactor.confirmed_at.is_not(None))
                .order_by(MfaFactor.created_at, MfaFactor.id)))


class WebAuthnFactor:
    """The "webauthn" kind of second factor (mfa/base.py Factor): passkeys and security keys.

    enrol() makes the pending factor and the creation options; the enrolment form posts the
    browser's answer as ``credential`` (JSON) with the challenge token ``webauthn_token``, and
    confirm() verifies it. On the /mfa page begin() makes the request options (for all of the
    user's passkeys: any of them will do) and verify() checks the assertion."""

    kind = KIND
    amr = AMR
    label = N_("Passkey or security key")
    challenge = False      # nothing is sent: no "send" step
    begin_on_show = True   # the /mfa page renders fresh options each time
    wrong = FAILED         # the message for a refused answer

    def __init__(self, mfa: MfaService, passkeys: Passkeys):
        self.mfa = mfa
        self.passkeys = passkeys

    def _fields(self, attempt: Attempt) -> tuple[str, str]:
        return attempt.value("webauthn_token", 4096), attempt.value("credential", MAX_CREDENTIAL_JSON)

    @staticmethod
    def _shown(options: dict[str, Any], token: str) -> dict[str, Any]:
        return {"webauthn_options": json.dumps(options, separators=(",", ":")), "webauthn_token": token}

    def enrol(self, attempt: Attempt) -> tuple[MfaFactor, dict[str, Any]]:
        factor = attempt.factor
        if factor is None:
            factor = self.mfa.add_pending(attempt.user.id, KIND)
        options, token = self.passkeys.registration_options(attempt.user, factor.id)
        return factor, self._shown(options, token)

    def confirm(self, attempt: Attempt) -> bool:
        assert attempt.factor is not None
        token, credential = self._fields(attempt)
        try:
            ceremony = self.passkeys.ceremony(token, REGISTER)
            self.passkeys.register(ceremony, attempt.user, attempt.factor.id, credential)
        except PasskeyError as exc:
            log.info("passkey registration for user %s refused: %s", attempt.user.sub, exc)
            raise FactorError(exc.message) from None
        return True

    def begin(self, attempt: Attempt) -> dict[str, Any]:
        try:
            options, token = self.passkeys.authentication_options(MFA, attempt.user)
        except PasskeyError:
            return {}
        return self._shown(options, token)

    def verify(self, attempt: Attempt) -> bool:
        token, credential = self._fields(attempt)
        try:
            self.passkeys.authenticate(self.passkeys.ceremony(token, MFA), credential, user=attempt.user)
        except PasskeyError as exc:
            log.info("passkey second factor for user %s refused: %s", attempt.user.sub, exc)
            return False
        return True

    def describe(self, factor: MfaFactor) -> str:
        return ""


def _parsed_json(credential: Any) -> dict[str, Any]:
    """The credential: JSON text from a form (bounded: security.loads_bounded), or the object a
    JSON body held."""
    if isinstance(credential, str):
        try:
            credential = loads_bounded(credential, MAX_CREDENTIAL_JSON)
        except ValueError as exc:
            raise PasskeyError(FAILED, f"credential is not bounded JSON: {exc}") from None
    if not isinstance(credential, dict):
        raise PasskeyError(FAILED, "credential is not an object")
    return credential


def _descriptor(factor: MfaFactor) -> webauthn_api.PublicKeyCredentialDescriptor:
    wa = load_webauthn()
    transports = []
    for t in (factor.data or {}).get("transports") or []:
        try:
            transports.append(wa.AuthenticatorTransport(t))
        except ValueError:
            pass
    assert factor.credential_id is not None
    return wa.PublicKeyCredentialDescriptor(id=wa.base64url_to_bytes(factor.credential_id),
                                            transports=transports or None)


def _json(options: Any) -> dict[str, Any]:
    wa = load_webauthn()
    return json.loads(wa.options_to_json(options))
