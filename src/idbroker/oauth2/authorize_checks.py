"""The checks of an authorization request, in the order the specifications apply them.

The first two (client, redirect URI) raise ``BadAuthorizationRequest``: until both are trusted an
error must not be redirected (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6). Every later check raises an
``OAuth2Error`` that is returned to the client at its redirect URI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..text import N_
from . import constants as c
from . import fapi, jarm, pkce
from .errors import (
    BadAuthorizationRequest,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    RequestNotSupportedError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)

if TYPE_CHECKING:
    from ..clients.registry import ClientRegistry
    from ..store.models import Client

# The longest value of a parameter, in characters. Those kept with an authorization code fit its
# columns (store/models.py) on every store; any other parameter is kept only with the pending
# request, up to MAX_PARAM. README (Endpoints) lists them.
MAX_LENGTHS = {"client_id": 255, "redirect_uri": c.MAX_REDIRECT_URI, "nonce": 512, "code_challenge": 128}
MAX_PARAM = 4096
UNTRUSTED = ("client_id", "redirect_uri")  # checked before there is a trusted redirect URI


@dataclass
class AuthorizationRequest:
    params: dict[str, str]
    client: Client | None = None
    redirect_uri: str = ""
    response_type: str = ""
    response_mode: str = "query"
    scopes: list[str] = field(default_factory=list)
    state: str | None = None
    nonce: str | None = None
    prompt: set[str] = field(default_factory=set)
    max_age: int | None = None
    code_challenge: str | None = None
    acr_values: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)  # OIDC Core §5.5, checked by check_claims

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    @property
    def implicit(self) -> bool:
        """Tokens in the front channel: the implicit and hybrid flows."""
        return bool(self.response_type) and self.response_type != c.RESPONSE_CODE

    def returns(self, kind: str) -> bool:
        """Whether the response carries `kind` (code, id_token, token; OIDC Core §3.3)."""
        return kind in self.response_type.split()

    def parked(self) -> dict[str, Any]:
        """The request as validated, to keep with its interaction (JSON): read back with
        `unparked`, it is not validated again. The client is not kept: its registration is read
        again then."""
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "client"}
        return {**kept, "prompt": sorted(self.prompt)}

    @classmethod
    def unparked(cls, kept: dict[str, Any], client: Client) -> AuthorizationRequest:
        return cls(client=client, **{**kept, "prompt": set(kept["prompt"])})


Check = Callable[["ClientRegistry", AuthorizationRequest], None]

# Shown on the error page (translated there), never sent to the client.
PARAMETER_TOO_LONG = N_("The parameter %(name)s is too long.")
NO_CLIENT_ID = N_("The request has no client_id.")
UNKNOWN_CLIENT = N_("The application that sent you here is not registered.")
NO_REDIRECT_URI = N_("The request has no redirect_uri.")
UNKNOWN_REDIRECT_URI = N_("The redirect_uri is not registered for this application.")


def check_parameters(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """Any value over MAX_PARAM, and client_id or redirect_uri over theirs, before either is
    trusted: shown on the error page, never redirected."""
    for key, value in req.params.items():
        if len(value) > MAX_PARAM or (key in UNTRUSTED and len(value) > MAX_LENGTHS[key]):
            raise BadAuthorizationRequest(PARAMETER_TOO_LONG, params={"name": key})
    req.state = req.params.get("state")


def check_client(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    client_id = req.params.get("client_id")
    if not client_id:
        raise BadAuthorizationRequest(NO_CLIENT_ID)
    req.client = clients.get(client_id)
    if req.client is None:
        raise BadAuthorizationRequest(UNKNOWN_CLIENT)


def loopback_match(uri: str, registered: list[str]) -> bool:
    """RFC 8252 §7.3: for an http loopback IP literal redirect URI the port is not compared (a
    native app listens on whatever port the system gives it); everything else still must match."""
    from urllib.parse import urlsplit

    def portless(value: str) -> str | None:
        parts = urlsplit(value)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1"):
            return None
        host = "[::1]" if parts.hostname == "::1" else parts.hostname
        return parts._replace(netloc=host).geturl()

    mine = portless(uri)
    return mine is not None and any(portless(r) == mine for r in registered)


def check_redirect_uri(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """RFC 6749 §3.1.2.3 / OIDC Core §3.1.2.1: exact match against a registered URI."""
    assert req.client is not None
    registered = req.client.redirect_uris
    uri = req.params.get("redirect_uri")
    if uri is None:
        if c.SCOPE_OPENID in req.params.get("scope", "").split() or len(registered) != 1:
            raise BadAuthorizationRequest(NO_REDIRECT_URI)
        uri = registered[0]
    if uri not in registered and not loopback_match(uri, registered):
        raise BadAuthorizationRequest(UNKNOWN_REDIRECT_URI)
    req.redirect_uri = uri
    # Errors from here on are redirected; pick the mode they travel in.
    rt = req.params.get("response_type", "")
    implicit = bool(rt) and rt != c.RESPONSE_CODE
    req.response_mode = "fragment" if implicit else "query"
    mode = req.params.get("response_mode")
    if mode in c.RESPONSE_MODES and not (mode == "query" and req.response_mode == "fragment"):
        req.response_mode = mode
    elif mode in jarm.MODES:  # JARM §2.3: errors too travel as a JWT, never a token in the query
        resolved = jarm.resolve(mode, implicit)
        req.response_mode = jarm.FRAGMENT_JWT if resolved == jarm.QUERY_JWT and implicit else resolved


def check_lengths(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """The values kept with the code within their maxima, the same on every store (RFC 6749
    §4.1.2.1: invalid_request, now at the trusted redirect URI)."""
    for key, limit in MAX_LENGTHS.items():
        if len(req.params.get(key, "")) > limit:
            raise InvalidRequestError(f"{key} is longer than {limit} characters")


def check_request_object(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    if "request" in req.params:
        raise RequestNotSupportedError("request objects are not supported")
    if "request_uri" in req.params:
        raise RequestUriNotSupportedError("request_uri is not supported")


def check_response_type(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    assert req.client is not None
    raw = req.params.get("response_type")
    if not raw:
        raise InvalidRequestError("response_type is required")
    normalised = " ".join(sorted(raw.split(), key=lambda t: {"code": 0, "id_token": 1, "token": 2}.get(t, 3)))
    if normalised not in c.RESPONSE_TYPES:
        raise UnsupportedResponseTypeError(f"response_type {raw!r} is not supported")
    if normalised not in req.client.response_types:
        raise UnauthorizedClientError(f"this client may not use response_type {normalised!r}")
    req.response_type = normalised


def check_response_mode(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    mode = req.params.get("response_mode")
    if mode is None:
        return
    if mode not in c.RESPONSE_MODES and mode not in jarm.MODES:
        raise InvalidRequestError(f"response_mode {mode!r} is not supported")
    if mode == "query" and req.implicit:
        # OAuth 2.0 Multiple Response Types §5: tokens must never travel in the query.
        raise InvalidRequestError("response_mode query is not allowed with this response_type")
    if mode == jarm.QUERY_JWT and req.implicit:
        # JARM §2.3.1: query.jwt must not be used with a response type that returns a token.
        raise InvalidRequestError("response_mode query.jwt is not allowed with this response_type")


def check_scope(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    assert req.client is not None
    asked = list(dict.fromkeys(req.params.get("scope", "").split()))
    if not asked:
        raise InvalidScopeError("scope is required")
    refused = [s for s in asked if s not in req.client.scopes]
    if refused:
        raise InvalidScopeError(f"scope not allowed for this client: {' '.join(refused)}")
    if req.implicit and c.SCOPE_OPENID not in asked:
        raise InvalidScopeError("the openid scope is required for this response_type")
    if c.SCOPE_OFFLINE in asked and (not req.returns(c.RESPONSE_CODE)
                                     or c.GRANT_REFRESH_TOKEN not in req.client.grant_types):
        asked.remove(c.SCOPE_OFFLINE)  # OIDC Core §11: ignored when no code is returned
    req.scopes = asked


def check_nonce(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    req.nonce = req.params.get("nonce")
    if req.returns(c.RESPONSE_ID_TOKEN) and not req.nonce:
        # OIDC Core §3.2.2.1, §3.3.2.11: an ID token in the front channel needs a nonce.
        raise InvalidRequestError("nonce is required when the response carries an ID token (OIDC Core §3.2.2.1)")


def check_pkce(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    assert req.client is not None
    if not req.returns(c.RESPONSE_CODE):
        return
    challenge = req.params.get("code_challenge")
    pkce.check_challenge(challenge, req.params.get("code_challenge_method"), required=req.client.public)
    req.code_challenge = challenge


def check_fapi2(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """FAPI 2.0 §5.3.2.2 for a client with the switch on (oauth2/fapi.py): code only, PKCE S256."""
    assert req.client is not None
    fapi.check_authorization(req.client, req.response_type, req.params)


def check_prompt(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    prompts = set(req.params.get("prompt", "").split())
    unknown = prompts - set(c.PROMPTS)
    if unknown:
        raise InvalidRequestError(f"unsupported prompt value {' '.join(sorted(unknown))}")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values (OIDC Core §3.1.2.1)")
    req.prompt = prompts


def check_max_age(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    raw = req.params.get("max_age")
    if raw is None:
        return
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:  # isdigit alone takes "²", which int() refuses
        raise InvalidRequestError("max_age must be a non-negative integer")
    req.max_age = int(raw)


def check_acr_values(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """OIDC Core §3.1.2.1: voluntary; unknown values are ignored."""
    req.acr_values = req.params.get("acr_values", "").split()


def check_claims(clients: ClientRegistry, req: AuthorizationRequest) -> None:
    """OIDC Core §5.5: the claims parameter, a JSON object with `userinfo` and `id_token` members,
    each naming claims as null or {essential, value, values}. An `acr` asked for with values
    (§5.5.1.1) is honoured like acr_values."""
    import json

    raw = req.params.get("claims")
    if raw is None:
        return
    try:
        asked = json.loads(raw)
    except ValueError:
        raise InvalidRequestError("claims must be a JSON object (OIDC Core §5.5)") from None
    if not isinstance(asked, dict) or set(asked) - {"userinfo", "id_token"}:
        raise InvalidRequestError("claims must be a JSON object with userinfo and id_token members")
    for where, members in asked.items():
        if not isinstance(members, dict) or not all(
                request is None or (isinstance(request, dict) and isinstance(request.get("essential", False), bool)
                                    and isinstance(request.get("values", []), list))
                for request in members.values()):
            raise InvalidRequestError(f"claims.{where} must map claim names to null or a request object")
    req.claims = asked
    acr = (asked.get("id_token") or {}).get("acr") or {}
    wanted = [acr["value"]] if isinstance(acr.get("value"), str) else acr.get("values", [])
    req.acr_values = list(dict.fromkeys([*req.acr_values, *[v for v in wanted if isinstance(v, str)]]))


# Spec order. Registering a check here is the only way to add one.
CHECKS: tuple[Check, ...] = (
    check_parameters,
    check_client,
    check_redirect_uri,
    check_lengths,
    check_request_object,
    check_response_type,
    check_response_mode,
    check_scope,
    check_nonce,
    check_pkce,
    check_fapi2,
    check_prompt,
    check_max_age,
    check_acr_values,
    check_claims,
)


def validate(clients: ClientRegistry, params: dict[str, Any]) -> AuthorizationRequest:
    """Runs every check. An OAuth2Error raised after the redirect URI is trusted carries the
    request in ``err.request`` so the caller can redirect it."""
    req = AuthorizationRequest(params=params)
    for check in CHECKS:
        try:
            check(clients, req)
        except OAuth2Error as err:
            err.request = req  # type: ignore[attr-defined]
            raise
    return req
