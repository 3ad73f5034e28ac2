"""Kind "oidc": any OpenID Connect provider (Google, Apple, Microsoft Entra ID, GitLab, Keycloak,
another idbroker...), built on the OAuth 2.0 machinery of oauth.py.

Why: with OpenID Connect the upstream signs a statement of who signed in, for whom and when
(the ID token). We believe it only after checking each of those against what we sent, so that a
token minted for another client, another login attempt or another issuer cannot sign anyone in.

How:

* Discovery (OIDC Discovery §4): ``{issuer}/.well-known/openid-configuration`` is fetched on
  first use and again after METADATA_SECONDS; its ``issuer`` must equal the configured one
  (§4.3). Microsoft's multi-tenant endpoints (option ``tenant_issuer``) answer with the template
  ``.../{tenantid}/v2.0`` instead; each ID token's ``iss`` is then that template filled with the
  token's own ``tid``. Every endpoint it names must be https (http only on loopback).
* ``start`` adds a ``nonce`` (OIDC Core §3.1.2.1) to the state, PKCE and redirect of oauth.py.
* ``finish`` checks state, the RFC 9207 ``iss`` parameter (when the upstream sends it or
  announces it), ``error``, redeems the code and then verifies the ID token (OIDC Core §3.1.3.7):
  the signature with a key of the upstream's JWKS (by ``kid``), for an asymmetric ``alg`` the
  upstream supports (item 6-8; never ``none`` nor HMAC); ``iss`` exactly the issuer (item 2;
  plus ``issuer_aliases``, for Google's historical ``accounts.google.com``); ``aud`` contains our
  client id (item 3) and, with several audiences, ``azp`` is our client id (items 4-5); ``exp``
  not past (item 9) and ``iat`` neither in the future nor older than MAX_AGE (item 10), each
  within SKEW seconds; ``nonce`` equal to ours (item 11); ``sub`` present; and, when the
  provider has a tenant allow-list (``tenants``), ``tid`` in it.
* Key rollover: the JWKS is cached; an ID token signed with a ``kid`` we do not know makes us
  fetch the JWKS again, at most once per REFETCH_SECONDS, so a stream of forged kids cannot turn
  us into a traffic amplifier against the upstream.
* Userinfo (OIDC Core §5.3), when the upstream has that endpoint, is fetched with the access
  token; its ``sub`` must equal the ID token's (§5.3.2) or the answer is refused. ID token claims
  take precedence over userinfo claims.
* ``amr`` (RFC 8176) is passed through; ``mfa``/``hwk``/``otp`` in it mark the sign-in as
  multi-factor (counted only for providers trusted for MFA, by the flow).
* Apple (options ``apple_client_secret``, ``user_param``): the client secret is an ES256 JWT we
  sign with the .p8 key (team id as ``iss``, key id as ``kid``, at most six months); the name
  comes only on the first sign-in, in the unsigned ``user`` form field of the form_post callback,
  and is used for the profile name only, never for the email.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

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
from .oauth import OAuth2Upstream, _private_key, secure_url

if TYPE_CHECKING:
    import httpx

DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_SECONDS = 24 * 3600
REFETCH_SECONDS = 60.0      # at most one JWKS refetch for an unknown kid per this many seconds
SKEW = 120                  # seconds of clock difference tolerated on exp and iat
MAX_AGE = 600               # seconds: an ID token is minted when we redeem the code, not earlier
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
TENANT_PLACEHOLDER = "{tenantid}"
APPLE_AUDIENCE = "https://appleid.apple.com"
APPLE_MAX_SECRET_SECONDS = 15777000  # Apple: "not greater than 15777000 (6 months in seconds)"
APPLE_SECRET_SECONDS = 300


def apple_client_secret(*, team_id: str, key_id: str, client_id: str, private_key: str, now: float,
                        ttl: int = APPLE_SECRET_SECONDS) -> str:
    """Sign in with Apple's client secret: an ES256 JWT made with the .p8 key from the developer
    account ("Creating a client secret", Apple developer documentation)."""
    if not 0 < ttl <= APPLE_MAX_SECRET_SECONDS:
        raise ValueError("an Apple client secret lives at most 15777000 seconds (six months)")
    claims = {"iss": team_id, "iat": int(now), "exp": int(now) + ttl, "aud": APPLE_AUDIENCE, "sub": client_id}
    return jwt.encode({"alg": "ES256", "kid": key_id}, claims, _private_key(private_key), algorithms=["ES256"])


class OpenIDConnectUpstream(OAuth2Upstream):
    """An OpenID Connect provider: options issuer, client_id, client_secret, scopes, claims,
    token_auth, private_key/key_id (private_key_jwt), and the preset quirks above."""

    kind: ClassVar[str] = "oidc"

    def __init__(self, config: UpstreamConfig, *, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time):
        super().__init__(config, http=http, clock=clock)
        self.issuer = secure_url(str(self.options["issuer"])).rstrip("/")
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_refetched_at: float | None = None

    def scopes(self) -> list[str]:
        scopes = super().scopes() or ["openid", "email", "profile"]
        return scopes if "openid" in scopes else ["openid", *scopes]

    def extra_authorize_params(self, ctx: StartContext) -> dict[str, str]:
        ctx.state["nonce"] = secrets.token_urlsafe(32)
        return {"nonce": ctx.state["nonce"]}

    # -- discovery and keys -------------------------------------------------------------------
    async def endpoints(self) -> dict[str, Any]:
        if self._metadata is not None and self.clock() - self._metadata_at < METADATA_SECONDS:
            return self._metadata
        metadata = await self.fetch("GET", self.issuer + DISCOVERY_PATH)
        issuer = str(metadata.get("issuer", "")).rstrip("/")
        template = self.options.get("tenant_issuer") and TENANT_PLACEHOLDER in issuer
        if issuer != self.issuer and not template:
            raise UpstreamUnavailable(UNAVAILABLE, f"discovery issuer {issuer!r} is not the configured one "
                                                   "(OIDC Discovery §4.3)")
        try:
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                secure_url(str(metadata.get(name, "")))
            if metadata.get("userinfo_endpoint"):
                secure_url(str(metadata["userinfo_endpoint"]))
        except ValueError as exc:
            raise UpstreamUnavailable(UNAVAILABLE, f"discovery: {exc}") from None
        self._metadata, self._metadata_at = metadata, self.clock()
        return metadata

    async def keys(self, kid: str | None) -> KeySet:
        """The upstream's keys, fetched again when `kid` is new to us (rate-limited)."""
        known = self._jwks is not None and (kid is None or _has_kid(self._jwks, kid))
        if known:
            return self._jwks  # type: ignore[return-value]
        if self._jwks is not None:
            now = time.monotonic()
            if self._jwks_refetched_at is not None and now - self._jwks_refetched_at < REFETCH_SECONDS:
                raise UpstreamError(REJECTED, f"unknown kid {kid!r} (JWKS refetched less than "
                                                f"{REFETCH_SECONDS:.0f}s ago)")
            self._jwks_refetched_at = now
        metadata = await self.endpoints()
        document = await self.fetch("GET", str(metadata["jwks_uri"]))
        keys = [k for k in document.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"
                and k.get("kty") in ("RSA", "EC", "OKP")]
        try:
            self._jwks = KeySet.import_key_set({"keys": keys})  # type: ignore[typeddict-item]
        except (JoseError, ValueError, TypeError) as exc:
            raise UpstreamUnavailable(UNAVAILABLE, f"jwks: {type(exc).__name__}") from None
        return self._jwks

    # -- the checks of finish -----------------------------------------------------------------
    def check_issuer_parameter(self, params: Mapping[str, str]) -> None:
        metadata = self._metadata or {}
        if "iss" not in params and not metadata.get("authorization_response_iss_parameter_supported"):
            return
        if TENANT_PLACEHOLDER in str(metadata.get("issuer", "")):
            return
        if str(params.get("iss", "")).rstrip("/") != self.issuer:
            raise UpstreamError(REJECTED, "the iss parameter is not the upstream's issuer (RFC 9207 §2.4)")

    def token_auth(self, endpoints: Mapping[str, Any]) -> str:
        if self.options.get("token_auth"):
            return str(self.options["token_auth"])
        supported = endpoints.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"

    def client_secret(self) -> str:
        if self.options.get("apple_client_secret"):
            return apple_client_secret(team_id=str(self.options["team_id"]), key_id=str(self.options["key_id"]),
                                       client_id=self.client_id, private_key=str(self.options["private_key"]),
                                       now=self.clock())
        return super().client_secret()

    async def identify(self, ctx: StartContext, tokens: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError(REJECTED, "token response without id_token (OIDC Core §3.1.3.3)")
        claims = await self.verify_id_token(id_token, str(ctx.state.get("nonce", "")))
        metadata = await self.endpoints()
        if metadata.get("userinfo_endpoint"):
            info = await self.userinfo(tokens)
            if info.get("sub") != claims["sub"]:
                raise UpstreamError(REJECTED, "userinfo sub differs from the ID token's (OIDC Core §5.3.2)")
            claims = {**info, **claims}
        amr = claims.get("amr")
        return claims, tuple(str(v) for v in amr) if isinstance(amr, list) else ()

    def identity(self, claims: Mapping[str, Any], amr: tuple[str, ...],
                 params: Mapping[str, str]) -> ExternalIdentity:
        if self.options.get("user_param") and params.get("user"):
            claims = {**_apple_name(params["user"]), **claims}
        return super().identity(claims, amr, params)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = await self.endpoints()
        try:
            header = jws.extract_compact(id_token.encode()).protected
        except (JoseError, ValueError) as exc:
            raise UpstreamError(REJECTED, f"ID token is not a compact JWS: {type(exc).__name__}") from None
        alg = header.get("alg")
        supported = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        if alg not in ASYMMETRIC_ALGS or alg not in supported:
            raise UpstreamError(REJECTED, f"ID token alg {alg!r} refused (OIDC Core §3.1.3.7 item 7)")
        kid = header.get("kid")
        keys = await self.keys(str(kid) if kid is not None else None)
        candidates = [k for k in keys.keys if kid is None or k.kid == kid]
        for key in candidates:
            try:
                payload = jws.deserialize_compact(id_token, key, algorithms=[alg]).payload
                break
            except JoseError:
                continue
        else:
            raise UpstreamError(REJECTED, f"ID token signature does not verify (kid {kid!r})")
        try:
            claims = json.loads(payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise UpstreamError(REJECTED, "ID token payload is not a JSON object")
        self.check_claims(claims, nonce)
        return claims

    def check_claims(self, claims: Mapping[str, Any], nonce: str) -> None:
        """OIDC Core §3.1.3.7, items 2-5 and 9-11 (in that order), then the tenant allow-list."""
        issuer = str((self._metadata or {}).get("issuer", self.issuer)).rstrip("/")
        if TENANT_PLACEHOLDER in issuer:
            issuer = issuer.replace(TENANT_PLACEHOLDER, str(claims.get("tid", "")))
            if not claims.get("tid"):
                raise UpstreamError(REJECTED, "multi-tenant ID token without tid")
        issuers = {issuer, *(str(a) for a in self.options.get("issuer_aliases") or ())}
        if claims.get("iss") not in issuers:
            raise UpstreamError(REJECTED, f"ID token iss {claims.get('iss')!r} is not {issuer!r} (item 2)")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in audiences:
            raise UpstreamError(REJECTED, "ID token aud does not contain our client id (item 3)")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise UpstreamError(REJECTED, "ID token with several audiences and azp not ours (items 4-5)")
        if "azp" in claims and claims["azp"] != self.client_id:
            raise UpstreamError(REJECTED, "ID token azp is not our client id (item 5)")
        now = self.clock()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _number(exp) or now > exp + SKEW:
            raise UpstreamError(REJECTED, "ID token expired or without exp (item 9)")
        if not _number(iat) or iat > now + SKEW or iat < now - MAX_AGE - SKEW:
            raise UpstreamError(REJECTED, "ID token iat missing, in the future or too old (item 10)")
        if not nonce or claims.get("nonce") != nonce:
            raise UpstreamError(REJECTED, "ID token nonce is not the one sent (item 11)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise UpstreamError(REJECTED, "ID token without sub")
        tenants = self.options.get("tenants")
        if tenants and claims.get("tid") not in tenants:
            raise UpstreamError(REFUSED, f"tenant {claims.get('tid')!r} is not in the allow-list")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)


def _apple_name(user: str) -> dict[str, str]:
    """The ``user`` field Apple posts on the first sign-in only: {"name": {"firstName", "lastName"}}."""
    try:
        name = json.loads(user).get("name") or {}
    except (ValueError, AttributeError):
        return {}
    given, family = name.get("firstName"), name.get("lastName")
    parts = {"given_name": given, "family_name": family,
             "name": " ".join(p for p in (given, family) if isinstance(p, str) and p)}
    return {k: v for k, v in parts.items() if isinstance(v, str) and v}
