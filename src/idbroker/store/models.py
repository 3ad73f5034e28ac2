"""SQLAlchemy 2 models. Every secret-bearing column stores a hash or ciphertext, never the value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: DateTime(timezone=True)}


class SigningKey(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]]
    private_jwe: Mapped[str] = mapped_column(Text)  # JWE (dir, A256GCM) of the private JWK
    created_at: Mapped[datetime]
    # Published in JWKS from created_at; signs from activate_at until a newer key activates;
    # stays published until retire_after (every token it signed has expired).
    activate_at: Mapped[datetime]
    retire_after: Mapped[datetime | None]


class Client(Base):
    __tablename__ = "clients"
    client_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]]
    post_logout_redirect_uris: Mapped[list[str]]
    grant_types: Mapped[list[str]]
    response_types: Mapped[list[str]]
    scopes: Mapped[list[str]]
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    logo_uri: Mapped[str | None] = mapped_column(String(2048))
    logback_uri: Mapped[str | None] = mapped_column(String(2048))
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # for private_key_jwt
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    access_token_ttl: Mapped[int | None] = mapped_column(Integer)
    id_token_ttl: Mapped[int | None] = mapped_column(Integer)
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer)
    # Per-client look: {"primary_color": "#rrggbb", "background": "#rrggbb", "theme": "name"}.
    branding: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    hidden_from_dashboard: Mapped[bool] = mapped_column(Boolean, default=False)
    signup_enabled: Mapped[bool | None] = mapped_column(Boolean)  # None: the global setting
    mfa_policy: Mapped[str | None] = mapped_column(String(16))     # None: the global setting
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The upstream providers (`idbroker idp` ids) its sign-in page offers; None: every one.
    idps: Mapped[list[str] | None] = mapped_column(JSON)
    local_accounts: Mapped[bool] = mapped_column(Boolean, default=True)  # the password form, sign-up
    # RFC 8693: the audiences this client may exchange tokens into (oauth2/grants/token_exchange.py).
    exchange_audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    # OIDC Registration §2 / Core §8.1 / Front-Channel Logout §2 (migration 0010).
    userinfo_signed_response_alg: Mapped[str | None] = mapped_column(String(16))  # None: plain JSON
    subject_type: Mapped[str] = mapped_column(String(16), default="public")      # public or pairwise
    sector_identifier_uri: Mapped[str | None] = mapped_column(String(2048))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048))
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # RFC 9126 §6 / RFC 9101 §10.5 / RFC 9449 §5.2 (oauth2/pushed_requests.py, request_objects.py, dpop.py).
    require_par: Mapped[bool] = mapped_column(Boolean, default=False)
    require_signed_request_object: Mapped[bool] = mapped_column(Boolean, default=False)
    dpop_bound: Mapped[bool] = mapped_column(Boolean, default=False)
    # RFC 7591 / 7592 dynamic registration (clients/registration.py, migration 0012).
    registered_dynamically: Mapped[bool] = mapped_column(Boolean, default=False)
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(128))
    application_type: Mapped[str | None] = mapped_column(String(16))  # web or native (OIDC Registration §2)
    client_uri: Mapped[str | None] = mapped_column(String(2048))
    policy_uri: Mapped[str | None] = mapped_column(String(2048))
    tos_uri: Mapped[str | None] = mapped_column(String(2048))
    contacts: Mapped[list[str] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))  # fetched into `jwks` at registration
    software_id: Mapped[str | None] = mapped_column(String(255))
    software_version: Mapped[str | None] = mapped_column(String(255))
    # JARM (oauth2/jarm.py) and the FAPI 2.0 Security Profile switch (oauth2/fapi.py), migration 0014.
    authorization_signed_response_alg: Mapped[str | None] = mapped_column(String(16))  # None: RS256
    fapi2: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(512))
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    middle_name: Mapped[str | None] = mapped_column(String(255))
    nickname: Mapped[str | None] = mapped_column(String(255))
    preferred_username: Mapped[str | None] = mapped_column(String(255))
    picture: Mapped[str | None] = mapped_column(String(2048))
    website: Mapped[str | None] = mapped_column(String(2048))
    gender: Mapped[str | None] = mapped_column(String(64))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    zoneinfo: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    phone_number: Mapped[str | None] = mapped_column(String(32))
    phone_number_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    groups: Mapped[list[str]]
    custom_attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    terms_version: Mapped[str | None] = mapped_column(String(64))
    terms_accepted_at: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # RFC 7643 §3.1 externalId of a user pushed by a provisioning tool (accounts/provisioning.py)
    scim_external_id: Mapped[str | None] = mapped_column(String(255), index=True, unique=True)


class BrowserSession(Base):
    """A signed-in browser. The cookie holds a random value; the table keeps its SHA-256."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)  # public id: id_token `sid`
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]]
    acr: Mapped[str | None] = mapped_column(String(64))
    idp: Mapped[str | None] = mapped_column(String(64))  # the upstream provider signed in with: `idp` claim
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    factor_at: Mapped[datetime | None]  # when a second factor was last passed in it (step-up freshness)


class SessionClient(Base):
    """Clients that received tokens in a session: whom to notify at logout."""

    __tablename__ = "session_clients"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"),
                                           primary_key=True)


class Interaction(Base):
    """A pending authorization request while the user logs in or consents."""

    __tablename__ = "interactions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]]
    login_sid: Mapped[str | None] = mapped_column(String(64))  # set once the user logged in here
    consented: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Grant(Base):
    """What a user allowed a client in one authorization: the family of every token issued from it."""

    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]]
    acr: Mapped[str | None] = mapped_column(String(64))
    idp: Mapped[str | None] = mapped_column(String(64))  # its session's upstream provider: `idp` claim
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # RFC 9449 §5: the DPoP key (RFC 7638 thumbprint) a public client's refresh tokens are bound to.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # OIDC Core §5.5: the claims request parameter of its authorization (migration 0010).
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str | None] = mapped_column(String(2048))  # as sent, None when omitted
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(255))
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RevokedToken(Base):
    """Revoked JWT access tokens, by jti, kept until they would have expired anyway."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class Consent(Base):
    __tablename__ = "consents"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"),
                                           primary_key=True)
    scopes: Mapped[list[str]]
    granted_at: Mapped[datetime]


class OneTimeToken(Base):
    """Single-use secrets mailed to users: email verification (link and 6-digit code), password
    reset, change of address. Only hashes are stored."""

    __tablename__ = "one_time_tokens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))  # verify_email, reset_password, change_email
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the link token
    code_hash: Mapped[str | None] = mapped_column(String(64))          # HMAC of the 6-digit code
    new_value: Mapped[str | None] = mapped_column(String(320))          # e.g. the new address
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class MfaFactor(Base):
    """An enrolled second factor (or passkey). Secrets are stored encrypted (TOTP) or are public
    keys (WebAuthn); `data` holds the kind's own fields."""

    __tablename__ = "mfa_factors"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))        # totp, webauthn, sms, email
    name: Mapped[str] = mapped_column(String(128), default="")
    secret: Mapped[str | None] = mapped_column(Text)      # encrypted (JWE) where the kind has one
    credential_id: Mapped[str | None] = mapped_column(String(1024), unique=True)  # WebAuthn, base64url
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    confirmed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    last_counter: Mapped[int | None] = mapped_column(Integer)  # TOTP time step / WebAuthn sign count


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128))
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class RememberedDevice(Base):
    """"Remember this device": the cookie holds a random value, the table its SHA-256."""

    __tablename__ = "remembered_devices"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    user_agent: Mapped[str | None] = mapped_column(String(512))


class Throttle(Base):
    """Failed attempts per key (an account, a client address, a code...): delays and locks."""

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)


class UpstreamProvider(Base):
    """A configured upstream identity provider (`idbroker idp add`). `options` are the kind's
    settings in clear; `secrets` is a JWE (dir, A256GCM, a sub-key of the server secret) of the
    JSON object of its secret options (client secret, bind password, private keys)."""

    __tablename__ = "upstream_providers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    options: Mapped[dict[str, Any]]
    secrets: Mapped[str | None] = mapped_column(Text)
    logo_uri: Mapped[str | None] = mapped_column(String(2048))
    trust_email: Mapped[bool] = mapped_column(Boolean, default=False)
    trust_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    domains: Mapped[list[str]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LinkedIdentity(Base):
    """An upstream account (provider, its subject) that signs in as a local user. Removing the
    provider removes its links, so a provider added again under the same id links nobody."""

    __tablename__ = "linked_identities"
    provider_id: Mapped[str] = mapped_column(ForeignKey("upstream_providers.id", ondelete="CASCADE"),
                                             primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))  # as the upstream said at link time
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class LegacySource(Base):
    """A configured lazy-migration source (`idbroker sources add`), asked in `position` order.
    `options` are the kind's settings in clear; `secrets` a JWE (dir, A256GCM, a sub-key of the
    server secret) of the JSON object of its secret options (client secret, webhook secret...)."""

    __tablename__ = "migration_sources"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, Any]]
    secrets: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SeenAssertion(Base):
    """SAML assertion ids already accepted, kept until the assertion would have expired anyway
    (SAML 2.0 Profiles §4.1.4.5: a replayed assertion is refused)."""

    __tablename__ = "seen_assertions"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime]


Index("ix_grants_user_client", Grant.user_id, Grant.client_id)


class RoleRule(Base):
    """A rule of `idbroker roles`: users whose ID-token claim `claim` equals (or, for a list, holds)
    `match` - every user when `claim` is None - may get AWS credentials for `role_arn`, from the
    clients listed (any client when empty). Lower `priority` first; ties by id."""

    __tablename__ = "role_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    claim: Mapped[str | None] = mapped_column(String(255))
    match: Mapped[str | None] = mapped_column(String(1024))
    clients: Mapped[list[str]]
    priority: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime]


class RoleDefault(Base):
    """One row (id 1) at most: the role for a user no rule matches; `role_arn` None denies."""

    __tablename__ = "role_default"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_arn: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime]


class SamlSession(Base):
    """What a browser session that began through a SAML upstream needs for single logout: the
    NameID (as received, XML) and the SessionIndex a LogoutRequest must name (SAML 2.0 Core
    §3.7.1), and `subject` (the NameID's value) to find the sessions an IdP's LogoutRequest ends."""

    __tablename__ = "saml_sessions"
    sid: Mapped[str] = mapped_column(ForeignKey("sessions.sid", ondelete="CASCADE"), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("upstream_providers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    name_id: Mapped[str] = mapped_column(Text)
    session_index: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


Index("ix_saml_sessions_subject", SamlSession.provider_id, SamlSession.subject)


class PushedRequest(Base):
    """RFC 9126 pushed authorization requests: the validated parameters behind a request_uri,
    for the client that pushed them, used once, until `expires_at`."""

    __tablename__ = "pushed_requests"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the random part of the request_uri
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    params: Mapped[dict[str, Any]]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UsedJti(Base):
    """jti values already accepted (DPoP proofs, RFC 9449 §11.1; request objects, RFC 9101 §10.8),
    as a hash of kind, issuer and jti, kept until the proof or object could no longer be accepted:
    a replay is refused on every worker and node."""

    __tablename__ = "used_jtis"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RegistrationToken(Base):
    """RFC 7591 §3 initial access tokens (`idbroker clients registration-token`), as a keyed hash:
    each lets `max_uses` registrations (None: any number) until `expires_at` (None: never)."""

    __tablename__ = "registration_tokens"
    token_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class ScimGroup(Base):
    """A SCIM 2.0 Group (RFC 7643 §4.2) pushed by a provisioning tool. Its members are the users
    whose `groups` list holds its display name (what tokens release as the `groups` claim), so
    membership has one source; accounts/provisioning.py keeps both in step."""

    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DeviceCode(Base):
    """RFC 8628 device authorizations: the device code (its hash), the user code typed on
    /device, and where the user's decision stands (pending, approved with its grant, denied)."""

    __tablename__ = "device_codes"
    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"))
    interval: Mapped[int] = mapped_column(Integer)
    last_polled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
