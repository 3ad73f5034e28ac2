"""Dynamic client registration: RFC 7591 (and OpenID Connect Dynamic Client Registration 1.0) and
the management protocol of RFC 7592.

Why: relying parties that configure themselves (the OpenID "Dynamic" profile, tools that register
per installation) need a client without an operator running `idbroker clients add`. The broker's
answer must still be the operator's policy, so a registration is the same `ClientMetadata` as
`clients add`, validated by the same `validate()` (grant and response types, redirect URI rules,
token_endpoint_auth_method, algorithms, subject types, sector check), with a few rules only a
stranger's client gets:

* never first-party (consent is always asked), never the broker's own scopes (`idbroker:*`,
  `aws.credentials`): only the scopes in `registration_allowed_scopes`; never token exchange
  (RFC 8693: which client may exchange into which audience is the operator's to say);
* `application_type` (OIDC Registration §2): a web client's redirect URIs are https (http only on
  a loopback host, as for every client); a native client may also use its own reverse-DNS scheme
  (RFC 8252 §7.1) - what `clients add` allows any client;
* no encrypted responses (the broker does not encrypt): asking for one is refused, not ignored.

How:
* `register` (RFC 7591 §3): the metadata names of RFC 7591 §2 / OIDC Registration §2 are mapped onto
  `ClientMetadata` (`metadata_from`); the claims of a verified software statement (§2.3) win over
  the request's. The answer carries a random client_id, the secret of a confidential client
  (`client_secret_expires_at` 0: it does not expire), a registration access token and the
  registration client URI. Only keyed hashes of the secret and the token are stored.
* `read` / `replace` / `delete` (RFC 7592 §2): authorised by the registration access token,
  compared as a keyed hash in constant time; a client that does not exist, or was not registered
  dynamically, answers as a wrong token does (401), so a token holder learns nothing else.
  Deleting a client deletes its grants, and with them every token issued from them.
* initial access tokens (`token` mode, RFC 7591 §3): `issue_initial_token` stores a keyed hash with
  an optional expiry and number of uses; a use is counted atomically (a conditional UPDATE), after
  the metadata is valid, and given back when the client then cannot be created.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import or_, update

from ..keys.keystore import CONTENT_ENCS, ENC_ALGS
from ..oauth2 import constants as c
from ..security import KeyedHasher, random_token
from ..store.db import Database, aware, utcnow
from ..store.models import Client, RegistrationToken
from .metadata import ClientMetadata, InvalidClientMetadata, check_redirect
from .registry import FIELDS, ClientNotFound, ClientRegistry
from .sector import Fetch, fetch_json

# RFC 7591 §3.2.2 error codes.
INVALID_REDIRECT_URI = "invalid_redirect_uri"
INVALID_CLIENT_METADATA = "invalid_client_metadata"
INVALID_SOFTWARE_STATEMENT = "invalid_software_statement"
UNAPPROVED_SOFTWARE_STATEMENT = "unapproved_software_statement"

APPLICATION_TYPES = ("web", "native")  # OIDC Registration §2
STATEMENT_ALGS = ["RS256", "ES256", "PS256", "EdDSA"]
# The broker's own scopes: never for a client that registered itself.
RESERVED_SCOPE_PREFIX = "idbroker:"
RESERVED_SCOPES = frozenset({"aws.credentials"})

# RFC 7591 §2 / OIDC Registration §2 names -> ClientMetadata fields, by JSON type.
STRINGS = {"client_name": "name", "logo_uri": "logo_uri", "client_uri": "client_uri", "policy_uri": "policy_uri",
           "tos_uri": "tos_uri", "token_endpoint_auth_method": "token_endpoint_auth_method",
           "id_token_signed_response_alg": "id_token_signed_response_alg",
           "userinfo_signed_response_alg": "userinfo_signed_response_alg", "subject_type": "subject_type",
           "sector_identifier_uri": "sector_identifier_uri", "backchannel_logout_uri": "backchannel_logout_uri",
           "frontchannel_logout_uri": "frontchannel_logout_uri",
           "authorization_signed_response_alg": "authorization_signed_response_alg"}  # JARM §3
LISTS = {"redirect_uris": "redirect_uris", "post_logout_redirect_uris": "post_logout_redirect_uris",
         "grant_types": "grant_types", "response_types": "response_types", "contacts": "contacts"}
BOOLS = {"frontchannel_logout_session_required": "frontchannel_logout_session_required",
         "require_pushed_authorization_requests": "require_par",  # RFC 9126 §6
         "require_signed_request_object": "require_signed_request_object",  # RFC 9101 §10.5
         "dpop_bound_access_tokens": "dpop_bound"}  # RFC 9449 §5.2
EXTRA_STRINGS = ("application_type", "jwks_uri", "software_id", "software_version")
ENCRYPTION = ("id_token_encrypted_response_alg", "userinfo_encrypted_response_alg",
              "authorization_encrypted_response_alg")
# RFC 9101 §6.1 / OIDC Registration §2: how the client will encrypt request objects to the broker's
# key: any client may, so a supported value is accepted and nothing is kept.
OBJECT_ENCRYPTION = {"request_object_encryption_alg": ENC_ALGS, "request_object_encryption_enc": CONTENT_ENCS}
MAX_STRING = 2048


class RegistrationError(Exception):
    """A refused registration (RFC 7591 §3.2.2): `error` and a description safe to show."""

    status_code = 400

    def __init__(self, error: str, description: str):
        self.error, self.description = error, description
        super().__init__(f"{error}: {description}")

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidToken(RegistrationError):
    """RFC 6750 §3.1 invalid_token: a missing, wrong, expired or used-up initial access token, or
    a registration access token that does not open this client (RFC 7592 §2)."""

    status_code = 401

    def __init__(self, description: str = "the access token is missing or not valid"):
        super().__init__("invalid_token", description)


@dataclass(frozen=True)
class RegistrationPolicy:
    allowed_scopes: tuple[str, ...]
    statement_keys: KeySet | None = None  # None: software statements are refused

    @classmethod
    def from_settings(cls, allowed_scopes: list[str], jwks_path: str) -> RegistrationPolicy:
        keys = None
        if jwks_path:
            with open(jwks_path, encoding="utf-8") as f:
                keys = KeySet.import_key_set(json.load(f))
        return cls(tuple(allowed_scopes), keys)


class DynamicRegistration:
    def __init__(self, db: Database, registry: ClientRegistry, hasher: KeyedHasher, policy: RegistrationPolicy,
                 client_uri: Callable[[str], str], fetch: Fetch = fetch_json):
        self.db, self.registry, self.hasher, self.policy = db, registry, hasher, policy
        self.client_uri = client_uri  # client_id -> its registration_client_uri
        self.fetch = fetch            # reads jwks_uri documents

    # -- initial access tokens (RFC 7591 §3) -----------------------------------------------------
    def issue_initial_token(self, expires_in: int | None = None, max_uses: int | None = None) -> str:
        token = random_token(32)
        now = utcnow()
        with self.db.session() as s:
            s.add(RegistrationToken(token_hash=self.hasher.hash(token), created_at=now, uses=0, max_uses=max_uses,
                                    expires_at=now + timedelta(seconds=expires_in) if expires_in else None))
        return token

    def _usable(self, token_hash: str) -> Any:
        now = utcnow()
        t = RegistrationToken
        return (t.token_hash == token_hash, or_(t.expires_at.is_(None), t.expires_at > now),
                or_(t.max_uses.is_(None), t.uses < t.max_uses))

    def check_initial_token(self, token: str | None) -> str:
        """The token's hash when it may still register a client; InvalidToken otherwise."""
        if not token:
            raise InvalidToken("an initial access token is required (Authorization: Bearer)")
        digest = self.hasher.hash(token)
        with self.db.session(write=False) as s:
            row = s.get(RegistrationToken, digest)
            ok = row is not None and (row.expires_at is None or aware(row.expires_at) > utcnow()) \
                and (row.max_uses is None or row.uses < row.max_uses)
        if not ok:
            raise InvalidToken("the initial access token is not valid, has expired or is used up")
        return digest

    def _use_initial_token(self, digest: str, step: int) -> bool:
        t = RegistrationToken
        with self.db.session() as s:
            where = self._usable(digest) if step > 0 else (t.token_hash == digest,)
            return s.execute(update(t).where(*where).values(uses=t.uses + step)).rowcount == 1

    # -- RFC 7591 §3 ------------------------------------------------------------------------------
    def register(self, body: Any, initial_token: str | None = None) -> dict[str, Any]:
        """Registers a client from the JSON request `body`; `initial_token`: the hash from
        check_initial_token in `token` mode. Returns the RFC 7591 §3.2.1 response."""
        client_id = random_token(16)
        meta, extra = self.metadata_from(body, client_id)
        registration_token = random_token(32)
        extra |= {"registered_dynamically": True,
                  "registration_access_token_hash": self.hasher.hash(registration_token)}
        if initial_token is not None and not self._use_initial_token(initial_token, 1):
            raise InvalidToken("the initial access token is not valid, has expired or is used up")
        try:
            row, secret = self.registry.create(meta, extra)
        except InvalidClientMetadata as exc:  # the sector_identifier_uri check (fetched)
            if initial_token is not None:
                self._use_initial_token(initial_token, -1)
            raise RegistrationError(INVALID_CLIENT_METADATA, "; ".join(exc.problems)) from None
        except BaseException:
            if initial_token is not None:
                self._use_initial_token(initial_token, -1)
            raise
        out = self.describe(row)
        out["registration_access_token"] = registration_token
        if secret:
            out |= {"client_secret": secret, "client_secret_expires_at": 0}
        return out

    # -- RFC 7592 §2 ------------------------------------------------------------------------------
    def authorise(self, client_id: str, token: str | None) -> Client:
        """The dynamically registered client that `token` opens; InvalidToken otherwise."""
        row = None
        if token and "\x00" not in client_id and len(client_id) <= 255:
            with self.db.session(write=False) as s:  # a fresh row, not the per-worker cache
                row = s.get(Client, client_id)
        if row is None or not row.registered_dynamically or \
                not self.hasher.verify(token or "", row.registration_access_token_hash):
            raise InvalidToken()
        return row

    def read(self, client_id: str, token: str | None) -> dict[str, Any]:
        return self.describe(self.authorise(client_id, token))

    def replace(self, client_id: str, token: str | None, body: Any) -> dict[str, Any]:
        """RFC 7592 §2.2: the request is the client's whole metadata; omitted fields go back to
        their defaults. client_id must be the client's; a client_secret sent must be its own."""
        row = self.authorise(client_id, token)
        if not isinstance(body, dict):
            raise RegistrationError(INVALID_CLIENT_METADATA, "the request body must be a JSON object")
        if body.get("client_id") != client_id:
            raise RegistrationError(INVALID_CLIENT_METADATA, "client_id must be the client's own (RFC 7592 §2.2)")
        sent_secret = body.get("client_secret")
        if sent_secret is not None and (not isinstance(sent_secret, str)
                                        or not self.registry.verify_secret(row, sent_secret)):
            raise RegistrationError(INVALID_CLIENT_METADATA, "client_secret does not match (RFC 7592 §2.2)")
        meta, extra = self.metadata_from(body, client_id)
        changes = {name: getattr(meta, name) for name in FIELDS if name != "client_id"}
        try:
            updated, secret = self.registry.update(client_id, changes, extra=extra)
        except InvalidClientMetadata as exc:
            raise RegistrationError(INVALID_CLIENT_METADATA, "; ".join(exc.problems)) from None
        except ClientNotFound:
            raise InvalidToken() from None
        out = self.describe(updated)
        if secret:
            out |= {"client_secret": secret, "client_secret_expires_at": 0}
        return out

    def delete(self, client_id: str, token: str | None) -> None:
        """RFC 7592 §2.3: the client, its grants and every token issued from them."""
        self.authorise(client_id, token)
        try:
            self.registry.remove(client_id)
        except ClientNotFound:
            raise InvalidToken() from None

    # -- metadata ---------------------------------------------------------------------------------
    def metadata_from(self, body: Any, client_id: str) -> tuple[ClientMetadata, dict[str, Any]]:
        """The request's metadata as `clients add` would register it, validated; and the columns
        outside ClientMetadata. RegistrationError on the first kind of problem found."""
        if not isinstance(body, dict):
            raise RegistrationError(INVALID_CLIENT_METADATA, "the request body must be a JSON object")
        if "software_statement" in body:
            body = {k: v for k, v in body.items() if k != "software_statement"} | \
                self.statement_claims(body["software_statement"])  # RFC 7591 §2.3: its claims win
        fields: dict[str, Any] = {}
        for name, attr in STRINGS.items():
            if body.get(name) is not None:
                fields[attr] = _string(body, name)
        for name, attr in LISTS.items():
            if body.get(name) is not None:
                fields[attr] = _strings(body, name)
        for name, attr in BOOLS.items():
            if body.get(name) is not None:
                if not isinstance(body[name], bool):
                    raise RegistrationError(INVALID_CLIENT_METADATA, f"{name} must be true or false")
                fields[attr] = body[name]
        extra = {name: _string(body, name) if body.get(name) is not None else None for name in EXTRA_STRINGS}
        for name in ENCRYPTION:
            if body.get(name) is not None:
                raise RegistrationError(INVALID_CLIENT_METADATA, f"{name}: this server does not encrypt")
        for name, supported in OBJECT_ENCRYPTION.items():
            if body.get(name) is not None and body[name] not in supported:
                raise RegistrationError(INVALID_CLIENT_METADATA, f"{name} must be one of {', '.join(supported)}")
        fields.setdefault("token_endpoint_auth_method", c.AUTH_BASIC)      # RFC 7591 §2
        fields.setdefault("grant_types", [c.GRANT_AUTHORIZATION_CODE])     # RFC 7591 §2
        fields.setdefault("response_types", [c.RESPONSE_CODE])            # RFC 7591 §2
        if c.GRANT_TOKEN_EXCHANGE in fields["grant_types"]:
            # RFC 8693 §5: which client may exchange into which audience is the operator's policy.
            raise RegistrationError(INVALID_CLIENT_METADATA, "token exchange is granted by the operator only")
        fields["scopes"] = self._scopes(body)
        fields["jwks"], extra["jwks_uri"] = self._keys(body, extra["jwks_uri"])
        app_type = extra["application_type"] = extra["application_type"] or "web"
        if app_type not in APPLICATION_TYPES:
            raise RegistrationError(INVALID_CLIENT_METADATA, "application_type must be web or native")
        meta = ClientMetadata(client_id=client_id, first_party=False, **fields)
        self._check_redirect_uris(meta, app_type)
        try:
            meta.validate()
        except InvalidClientMetadata as exc:
            raise RegistrationError(INVALID_CLIENT_METADATA, "; ".join(exc.problems)) from None
        return meta, extra

    def _check_redirect_uris(self, meta: ClientMetadata, app_type: str) -> None:
        """RFC 7591 §2 redirect_uris with the rules of `clients add` (metadata.check_redirect), and
        OIDC Registration §2 application_type web: https (or http on a loopback host) only."""
        implicit = any(r != c.RESPONSE_CODE for r in meta.response_types)
        if meta.response_types and not meta.redirect_uris:
            raise RegistrationError(INVALID_REDIRECT_URI, "redirect_uris is required for these response types")
        for uri in meta.redirect_uris:
            problems = check_redirect(uri, implicit=implicit)
            scheme = urlsplit(uri).scheme
            if not problems and app_type == "web" and scheme not in ("http", "https"):
                problems = [f"redirect URI {uri!r}: a web client's redirect URIs use https "
                            f"(register application_type native for an app's own scheme)"]
            if problems:
                raise RegistrationError(INVALID_REDIRECT_URI, problems[0])

    def _scopes(self, body: dict[str, Any]) -> list[str]:
        """RFC 7591 §2 scope: asked for, within the operator's allowed set; omitted: that set."""
        if body.get("scope") is None:
            return list(self.policy.allowed_scopes)
        asked = _string(body, "scope").split()
        refused = [s for s in asked if s not in self.policy.allowed_scopes or s.startswith(RESERVED_SCOPE_PREFIX)
                   or s in RESERVED_SCOPES]
        if refused:
            raise RegistrationError(INVALID_CLIENT_METADATA, f"scope {refused[0]!r} cannot be registered here")
        return list(dict.fromkeys(asked))

    def _keys(self, body: dict[str, Any], jwks_uri: str | None) -> tuple[dict | None, str | None]:
        """RFC 7591 §2 jwks or jwks_uri (never both); a jwks_uri is read now, over https."""
        jwks = body.get("jwks")
        if jwks is not None and jwks_uri:
            raise RegistrationError(INVALID_CLIENT_METADATA, "jwks and jwks_uri must not both be sent (RFC 7591 §2)")
        if jwks_uri:
            parts = urlsplit(jwks_uri)
            if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1",
                                                                                              "::1"))):
                raise RegistrationError(INVALID_CLIENT_METADATA, "jwks_uri must be an https URL")
            try:
                jwks = self.fetch(jwks_uri)
            except ValueError as exc:
                raise RegistrationError(INVALID_CLIENT_METADATA, f"jwks_uri {jwks_uri}: {exc}") from None
        if jwks is None:
            return None, jwks_uri
        try:
            if not isinstance(jwks, dict) or not jwks.get("keys"):
                raise ValueError("no keys")
            keys = KeySet.import_key_set(jwks)
        except (ValueError, TypeError, KeyError, JoseError):
            raise RegistrationError(INVALID_CLIENT_METADATA, "jwks must be a JWK Set of public keys") from None
        if any(getattr(k, "is_private", False) for k in keys.keys):
            raise RegistrationError(INVALID_CLIENT_METADATA, "jwks must hold public keys only")
        return jwks, jwks_uri

    def statement_claims(self, statement: Any) -> dict[str, Any]:
        """RFC 7591 §2.3: a JWS signed by a key the operator trusts; its claims, or RegistrationError."""
        if self.policy.statement_keys is None:
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "software statements are not accepted here")
        if not isinstance(statement, str) or statement.count(".") != 2 or len(statement) > 16384:
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "software_statement must be a signed JWT")
        try:
            header = json.loads(base64.urlsafe_b64decode(statement.split(".")[0] + "=="))
            alg = header.get("alg") if isinstance(header, dict) else None
        except ValueError:
            alg = None
        if alg not in STATEMENT_ALGS:
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "software_statement must be signed with "
                                    + ", ".join(STATEMENT_ALGS))
        try:
            payload = jws.deserialize_compact(statement, self.policy.statement_keys, algorithms=[alg]).payload
        except (BadSignatureError, InvalidKeyIdError):
            raise RegistrationError(UNAPPROVED_SOFTWARE_STATEMENT,
                                    "the software statement is not signed by a key this server trusts") from None
        except (JoseError, ValueError):
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "software_statement is not a valid JWS") from None
        try:
            claims = json.loads(payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "the software statement's payload is not a JSON object")
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or exp <= time.time()):
            raise RegistrationError(INVALID_SOFTWARE_STATEMENT, "the software statement has expired")
        return {k: v for k, v in claims.items() if k not in ("iss", "iat", "exp", "nbf", "jti", "aud", "sub")}

    def describe(self, row: Client) -> dict[str, Any]:
        """RFC 7591 §3.2.1 / RFC 7592 §3: the client's metadata as registered."""
        out: dict[str, Any] = {
            "client_id": row.client_id,
            "client_id_issued_at": int(aware(row.created_at).timestamp()),
            "registration_client_uri": self.client_uri(row.client_id),
            "scope": " ".join(row.scopes),
        }
        for name, attr in (STRINGS | LISTS | BOOLS).items():
            value = getattr(row, attr)
            if value is not None and value != "" and value != []:
                out[name] = value
        for name in EXTRA_STRINGS:
            if getattr(row, name):
                out[name] = getattr(row, name)
        if row.jwks and not row.jwks_uri:
            out["jwks"] = row.jwks
        out.setdefault("redirect_uris", [])
        out.setdefault("grant_types", [])
        out.setdefault("response_types", [])
        return out


def _string(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or len(value) > MAX_STRING or "\x00" in value:
        raise RegistrationError(INVALID_CLIENT_METADATA, f"{name} must be a string of at most {MAX_STRING} characters")
    return value


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body[name]
    if not isinstance(value, list) or len(value) > 100 or not all(
            isinstance(v, str) and len(v) <= MAX_STRING and "\x00" not in v for v in value):
        raise RegistrationError(INVALID_CLIENT_METADATA, f"{name} must be an array of strings")
    return list(dict.fromkeys(value))
