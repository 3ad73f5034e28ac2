"""Validation of client metadata (OIDC Dynamic Client Registration §2 vocabulary)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..oauth2 import constants as c
from ..oauth2.device_codes import GRANT_DEVICE_CODE

AUTH_METHODS = (c.AUTH_NONE, c.AUTH_BASIC, c.AUTH_POST, c.AUTH_PRIVATE_KEY_JWT)
GRANT_TYPES = (c.GRANT_AUTHORIZATION_CODE, c.GRANT_REFRESH_TOKEN, c.GRANT_CLIENT_CREDENTIALS,
               c.GRANT_IMPLICIT, c.GRANT_TOKEN_EXCHANGE, GRANT_DEVICE_CODE)
RESPONSE_TYPES = c.RESPONSE_TYPES  # code, implicit and hybrid
SIGNING_ALGS = ("RS256", "ES256")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
IDP_ID_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")  # federation/registry.py ID_RE


class InvalidClientMetadata(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class ClientMetadata:
    client_id: str
    name: str = ""
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    token_endpoint_auth_method: str = c.AUTH_BASIC
    grant_types: list[str] = field(default_factory=lambda: [c.GRANT_AUTHORIZATION_CODE, c.GRANT_REFRESH_TOKEN])
    response_types: list[str] = field(default_factory=lambda: [c.RESPONSE_CODE])
    scopes: list[str] = field(default_factory=lambda: list(c.STANDARD_SCOPES))
    first_party: bool = False
    logo_uri: str | None = None
    logback_uri: str | None = None
    backchannel_logout_uri: str | None = None
    jwks: dict | None = None
    id_token_signed_response_alg: str = c.ID_TOKEN_DEFAULT_ALG
    access_token_ttl: int | None = None
    id_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    branding: dict | None = None
    hidden_from_dashboard: bool = False
    signup_enabled: bool | None = None
    mfa_policy: str | None = None  # off, optional, required; None: the global setting
    exchange_audiences: list[str] = field(default_factory=list)  # RFC 8693 targets it may exchange into
    idps: list[str] | None = None  # the upstream providers offered (`idbroker idp` ids); None: every one
    local_accounts: bool = True    # False: no password form, sign-up or reset; upstream providers only
    userinfo_signed_response_alg: str | None = None  # OIDC Registration §2; None: userinfo as plain JSON
    subject_type: str = c.SUBJECT_PUBLIC             # OIDC Core §8: public or pairwise
    sector_identifier_uri: str | None = None         # OIDC Registration §5 (fetched by the registry)
    frontchannel_logout_uri: str | None = None       # Front-Channel Logout 1.0 §2
    frontchannel_logout_session_required: bool = False
    require_par: bool = False      # RFC 9126 §6: authorization requests only through /oauth2/par
    require_signed_request_object: bool = False  # RFC 9101 §10.5: only signed request objects
    dpop_bound: bool = False       # RFC 9449 §5.2: every token request carries a DPoP proof
    client_uri: str | None = None  # RFC 7591 §2: the client's home page, its terms and policy, whom to ask
    policy_uri: str | None = None
    tos_uri: str | None = None
    contacts: list[str] | None = None
    authorization_signed_response_alg: str | None = None  # JARM §3; None: RS256
    fapi2: bool = False            # FAPI 2.0 Security Profile (oauth2/fapi.py)

    def validate(self) -> None:
        problems: list[str] = []
        if not self.client_id or len(self.client_id) > 255 or not self.client_id.isprintable() \
                or " " in self.client_id:
            problems.append("client_id must be 1-255 printable characters without spaces")
        if self.token_endpoint_auth_method not in AUTH_METHODS:
            problems.append(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        for g in self.grant_types:
            if g not in GRANT_TYPES:
                problems.append(f"unknown grant type {g!r} (allowed: {', '.join(GRANT_TYPES)})")
        for r in self.response_types:
            if r not in RESPONSE_TYPES:
                problems.append(f"unknown response type {r!r} (allowed: {', '.join(RESPONSE_TYPES)})")
        public = self.token_endpoint_auth_method == c.AUTH_NONE
        if public and c.GRANT_CLIENT_CREDENTIALS in self.grant_types:
            problems.append("a public client cannot use client_credentials")
        if public and c.GRANT_TOKEN_EXCHANGE in self.grant_types:
            # RFC 8693 §5: the exchange is policy about *which client* asks; only one that authenticates.
            problems.append("a public client cannot use token exchange")
        for aud in self.exchange_audiences:
            if not aud or len(aud) > 2048 or not aud.isprintable() or " " in aud or "#" in aud:
                problems.append(f"invalid exchange audience {aud!r} (printable, no spaces or fragment)")
        coded = [r for r in self.response_types if c.RESPONSE_CODE in r.split()]
        if coded and c.GRANT_AUTHORIZATION_CODE not in self.grant_types:
            # OIDC Registration §2: code and the hybrid types need the authorization_code grant.
            problems.append(f"response type {coded[0]!r} needs the authorization_code grant type")
        implicit = [r for r in self.response_types if r != c.RESPONSE_CODE]
        if implicit and c.GRANT_IMPLICIT not in self.grant_types:
            self.grant_types.append(c.GRANT_IMPLICIT)  # OIDC Registration §2: implied by the response types
        if c.GRANT_IMPLICIT in self.grant_types and not implicit:
            problems.append("the implicit grant needs a response type with 'id_token' or 'token'")
        redirecting = bool(self.response_types)
        if redirecting and not self.redirect_uris:
            problems.append("at least one redirect URI is required for clients with response types")
        for uri in self.redirect_uris:
            problems += _check_redirect(uri, implicit=bool(implicit))
        for uri in self.post_logout_redirect_uris:
            problems += _check_redirect(uri, implicit=False, what="post-logout redirect URI")
        for name in ("logo_uri", "logback_uri", "backchannel_logout_uri", "frontchannel_logout_uri",
                     "client_uri", "policy_uri", "tos_uri"):
            value = getattr(self, name)
            if value and not _is_web_url(value):
                problems.append(f"{name} must be an absolute http(s) URL")
        if self.logo_uri and not self.logo_uri.startswith("https://"):
            problems.append("logo_uri must be an https URL (the pages load images over https only)")
        if self.token_endpoint_auth_method == c.AUTH_PRIVATE_KEY_JWT and not self.jwks:
            problems.append("private_key_jwt needs the client's public keys (jwks)")
        if self.id_token_signed_response_alg not in SIGNING_ALGS:
            problems.append("id_token_signed_response_alg must be RS256 or ES256")
        if self.userinfo_signed_response_alg not in (None, *SIGNING_ALGS):
            problems.append("userinfo_signed_response_alg must be RS256 or ES256")
        if self.authorization_signed_response_alg not in (None, *SIGNING_ALGS):
            problems.append("authorization_signed_response_alg must be RS256 or ES256")
        if self.fapi2:
            problems += fapi2_problems(self)
        problems += self._check_subject_type()
        if self.frontchannel_logout_uri and _is_web_url(self.frontchannel_logout_uri) and \
                _origin(self.frontchannel_logout_uri) not in {_origin(u) for u in self.redirect_uris}:
            # Front-Channel Logout 1.0 §2: same scheme, host and port as a registered redirect URI.
            problems.append("frontchannel_logout_uri must have the scheme, host and port of a redirect URI")
        for s in self.scopes:
            if not s or any(ch in s for ch in ' "\\') or not s.isprintable():
                problems.append(f"invalid scope token {s!r} (RFC 6749 §3.3)")
        for name in ("access_token_ttl", "id_token_ttl", "refresh_token_ttl"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"{name} must be positive")
        problems += _check_branding(self.branding)
        if self.contacts is not None and (len(self.contacts) > 20 or not all(
                isinstance(x, str) and 0 < len(x) <= 320 and x.isprintable() for x in self.contacts)):
            problems.append("contacts must be at most 20 printable e-mail addresses (RFC 7591 §2)")
        if self.mfa_policy not in (None, "off", "optional", "required"):
            problems.append("mfa_policy must be off, optional or required")
        for idp in self.idps or []:
            if not IDP_ID_RE.match(idp):
                problems.append(f"idp {idp!r} is not a provider id")
        if not self.local_accounts and self.idps == []:
            problems.append("a client without local accounts needs at least one upstream provider")
        if problems:
            raise InvalidClientMetadata(problems)


    def _check_subject_type(self) -> list[str]:
        """OIDC Core §8.1 / Registration §5: a pairwise client's sector is the host of its
        sector_identifier_uri, or of its redirect URIs when they all share one."""
        if self.subject_type not in (c.SUBJECT_PUBLIC, c.SUBJECT_PAIRWISE):
            return ["subject_type must be public or pairwise"]
        uri = self.sector_identifier_uri
        if uri:
            parts = urlsplit(uri)
            if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)) \
                    or not parts.hostname or len(uri) > 2048:
                return ["sector_identifier_uri must be an https URL"]
        elif self.subject_type == c.SUBJECT_PAIRWISE and len(redirect_hosts(self.redirect_uris)) > 1:
            return ["a pairwise client with redirect URIs on several hosts needs a sector_identifier_uri"]
        return []


def fapi2_problems(meta: ClientMetadata) -> list[str]:
    """FAPI 2.0 Security Profile §5.3.2.1 / §5.3.2.2: a confidential client authenticating with
    private_key_jwt (mTLS is not offered), the code flow only."""
    problems = []
    if meta.token_endpoint_auth_method == c.AUTH_NONE:
        problems.append("a public client cannot be FAPI 2.0 (it must authenticate with private_key_jwt)")
    elif meta.token_endpoint_auth_method != c.AUTH_PRIVATE_KEY_JWT:
        problems.append("a FAPI 2.0 client must authenticate with private_key_jwt")
    if meta.response_types != [c.RESPONSE_CODE]:
        problems.append("a FAPI 2.0 client uses response_type code only")
    if c.GRANT_IMPLICIT in meta.grant_types:
        problems.append("a FAPI 2.0 client cannot use the implicit grant")
    return problems


def redirect_hosts(uris: list[str]) -> set[str]:
    return {urlsplit(u).hostname or "" for u in uris}


def sector_of(client: Any) -> str:
    """The sector identifier (a host) of a pairwise client (OIDC Core §8.1)."""
    if client.sector_identifier_uri:
        return urlsplit(client.sector_identifier_uri).hostname or ""
    return min(redirect_hosts(client.redirect_uris) or {client.client_id})


def _origin(uri: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(uri)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, parts.hostname, port


def offers(client: Any, provider_id: str) -> bool:
    """Whether `client` (a row or metadata; None: no client, the broker's own pages) lets its
    users sign in through the upstream provider `provider_id` (its `idps`; None: every one)."""
    idps = getattr(client, "idps", None)
    return idps is None or provider_id in idps


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_redirect(uri: str, *, implicit: bool, what: str = "redirect URI") -> list[str]:
    """The problems of one redirect URI (RFC 6749 §3.1.2, RFC 8252 §7); empty: allowed."""
    return _check_redirect(uri, implicit=implicit, what=what)


def _check_redirect(uri: str, *, implicit: bool, what: str = "redirect URI") -> list[str]:
    if len(uri) > c.MAX_REDIRECT_URI:
        return [f"{what} must be at most {c.MAX_REDIRECT_URI} characters"]
    parts = urlsplit(uri)
    if not parts.scheme:
        return [f"{what} {uri!r} must be absolute (RFC 6749 §3.1.2)"]
    if parts.fragment or "#" in uri:
        return [f"{what} {uri!r} must not contain a fragment (RFC 6749 §3.1.2)"]
    if parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS:
            return [f"{what} {uri!r} must use https unless it is a loopback address"]
    elif parts.scheme == "https":
        if not parts.netloc:
            return [f"{what} {uri!r} has no host"]
    elif implicit:
        return [f"{what} {uri!r} must use https: an implicit client's tokens travel in the URI"]
    elif "." not in parts.scheme:
        # RFC 8252 §7.1: private-use schemes are reverse domain names.
        return [f"{what} {uri!r} must use https (http only on a loopback address), or an app's own "
                f"scheme named in reverse-DNS form such as com.example.app:/callback (RFC 8252 §7.1)"]
    return []


BRANDING_KEYS = {"primary_color", "background", "theme"}
COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


def _check_branding(branding: dict | None) -> list[str]:
    """Client-supplied look is validated strictly: it ends up in CSS."""
    if not branding:
        return []
    problems = [f"unknown branding key {k!r}" for k in branding if k not in BRANDING_KEYS]
    for key in ("primary_color", "background"):
        value = branding.get(key)
        if value is not None and (not isinstance(value, str) or not COLOR_RE.match(value)):
            problems.append(f"branding {key} must be a #rgb or #rrggbb colour")
    theme = branding.get("theme")
    if theme is not None and (not isinstance(theme, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", theme)):
        problems.append("branding theme must be a theme folder name")
    return problems
