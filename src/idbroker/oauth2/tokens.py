"""JWT access tokens (RFC 9068): issued without a database write, checked against revocation.

Checking one is the hot path of userinfo and introspection. Each worker keeps the claims of
tokens whose signature it has verified (keyed by the whole token, so any other string is verified
afresh; expiry is checked on every use) and, through GrantStore, the revocation answers, which are
dropped as soon as a revocation anywhere moves the change feed (store/changes.py). With both
cached, a check needs neither the database nor the thread pool: `check` runs on the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from ..keys.keystore import KeyStore
from ..security import random_token
from . import constants as c
from .dpop import BOUND_KEY
from .errors import InvalidTokenError
from .grant_store import CACHE_ENTRIES, GrantStore, TokenState


@dataclass
class IssuedAccessToken:
    token: str
    expires_in: int
    claims: dict[str, Any]


class AccessTokens:
    def __init__(self, issuer: str, keys: KeyStore, grants: GrantStore):
        self.issuer = issuer
        self.keys = keys
        self.grants = grants
        self._verified: dict[str, dict[str, Any]] = {}  # token -> its checked claims

    def issue(self, *, client_id: str, sub: str, scope: str, ttl: int, audience: str | list[str] | None = None,
              grant_id: str | None = None, auth_time: int | None = None, acr: str | None = None,
              amr: list[str] | None = None, sid: str | None = None, idp: str | None = None,
              act: dict[str, Any] | None = None) -> IssuedAccessToken:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": sub, "aud": audience or self.issuer, "client_id": client_id,
            "iat": now, "exp": now + ttl, "jti": random_token(16),
        }
        if scope:
            claims["scope"] = scope
        if grant_id:
            claims["gid"] = grant_id  # the grant (token family): revoking it ends this token
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = amr
        if sid:
            claims["sid"] = sid
        if idp:
            claims["idp"] = idp  # the upstream provider of the sign-in (oidc/claims.py IDP_CLAIM)
        if act:
            claims["act"] = act  # RFC 8693 §4.1: who acts for the subject (token exchange)
        jkt = BOUND_KEY.get()
        if jkt:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1: bound to the key of the request's DPoP proof
        return IssuedAccessToken(self.keys.sign(claims, typ=c.TYP_ACCESS_TOKEN), ttl, claims)

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a well-formed, unexpired access token signed here, or InvalidTokenError
        (RFC 6750 §3.1). Not yet checked against revocation. CPU only: safe on the event loop."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= CACHE_ENTRIES:
                self._verified.clear()
            self._verified[token] = claims
        exp = claims["exp"]
        if exp <= time.time():
            raise InvalidTokenError("The access token expired")
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        if not token or token.count(".") != 2 or len(token) > 8192:
            raise InvalidTokenError("The access token is malformed")
        try:
            decoded = self.keys.verify(token)
        except (JoseError, ValueError) as exc:
            raise InvalidTokenError("The access token is invalid", detail=str(exc)) from None
        if decoded.header.get("typ", "").lower() not in (c.TYP_ACCESS_TOKEN, "application/at+jwt"):
            raise InvalidTokenError("The token is not an access token")  # RFC 9068 §4
        claims = decoded.claims
        if claims.get("iss") != self.issuer:
            raise InvalidTokenError("The access token was not issued here")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidTokenError("The access token is malformed")
        jti, gid, sub = claims.get("jti"), claims.get("gid"), claims.get("sub")
        if not isinstance(jti, str) or not isinstance(gid, str | None) or not isinstance(sub, str):
            raise InvalidTokenError("The access token is malformed")
        return claims

    def validate(self, token: str, *, load_user: bool = False) -> dict[str, Any]:
        """Claims of a live access token issued here, or InvalidTokenError (RFC 6750 §3.1).
        With `load_user`, the token's (enabled) user is looked up in the same query and returned
        as claims["_user"]. Blocking (the database, unless cached)."""
        claims = self.claims(token)
        return _live(claims, self.grants.token_state(*_state_key(claims, load_user)), load_user)

    async def check(self, token: str, *, load_user: bool = False) -> dict[str, Any]:
        """`validate` for async endpoints: on the event loop when every answer is cached, else
        the database query in the thread pool."""
        claims = self.claims(token)
        key = _state_key(claims, load_user)
        state = self.grants.cached_token_state(*key)
        if state is None:
            state = await run_in_threadpool(self.grants.token_state, *key)
        return _live(claims, state, load_user)


def _state_key(claims: dict[str, Any], load_user: bool) -> tuple[str, str | None, str | None]:
    return claims["jti"], claims.get("gid"), claims["sub"] if load_user else None


def _live(claims: dict[str, Any], state: TokenState, load_user: bool) -> dict[str, Any]:
    if state.revoked:
        raise InvalidTokenError("The access token was revoked")
    if load_user:
        if state.user is None:
            raise InvalidTokenError("the user of this token is no longer active")
        claims = {**claims, "_user": state.user}
    return claims
