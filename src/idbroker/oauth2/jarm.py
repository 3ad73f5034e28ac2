"""JWT Secured Authorization Response Mode for OAuth 2.0 (JARM, OpenID Final 2022).

With `response_mode` one of MODES the authorization response parameters (code, state, iss, and
for the hybrid flows the tokens; or error, error_description, state, iss) travel as the claims
of one JWT that the broker signs, sent as the single parameter `response` (§2.1):

- `query.jwt`, `fragment.jwt`, `form_post.jwt`: the JWT in the query, the fragment or an
  auto-submitted form (§2.3.1-2.3.3);
- `jwt`: the default of the response type, `query.jwt` for `code`, `fragment.jwt` for any
  response type that returns a token in the front channel (§2.3.4).

§2.3.1: `query.jwt` must not be used with a response type that returns a token (id_token, token):
such a request is invalid_request (oauth2/authorize_checks.py `check_response_mode`), answered in
`fragment.jwt`.

The JWT (§2.1) carries `iss` (this issuer), `aud` (the client_id) and `exp` (LIFETIME seconds, the
spec's "short" and at most 10 minutes); it is signed with the client's registered
`authorization_signed_response_alg` (§3), RS256 when it registered none. Errors are JWTs too once
the redirect URI is trusted (§2.4): before that, nothing is sent to the client at all.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..keys.keystore import KeyStore
    from ..store.models import Client

JWT = "jwt"
QUERY_JWT = "query.jwt"
FRAGMENT_JWT = "fragment.jwt"
FORM_POST_JWT = "form_post.jwt"
MODES = (JWT, QUERY_JWT, FRAGMENT_JWT, FORM_POST_JWT)
SIGNING_ALGS = ("RS256", "ES256")  # discovery: authorization_signing_alg_values_supported
DEFAULT_ALG = "RS256"
LIFETIME = 300  # seconds; §2.1: short-lived, no more than 10 minutes
RESPONSE = "response"


def is_jarm(mode: str) -> bool:
    return mode in MODES


def resolve(mode: str, implicit: bool) -> str:
    """The concrete mode of `mode`: `jwt` becomes the response type's default (§2.3.4)."""
    if mode == JWT:
        return FRAGMENT_JWT if implicit else QUERY_JWT
    return mode


def carrier(mode: str) -> str:
    """The plain response mode that carries the JWT (query, fragment, form_post)."""
    return mode.removesuffix(".jwt")


class Jarm:
    """Signs authorization responses for the client (§2.1)."""

    def __init__(self, issuer: str, keys: KeyStore):
        self.issuer = issuer
        self.keys = keys

    def wrap(self, client: Client, params: dict[str, Any]) -> str:
        claims = {**params, "iss": self.issuer, "aud": client.client_id, "exp": int(time.time()) + LIFETIME}
        alg = client.authorization_signed_response_alg or DEFAULT_ALG
        return self.keys.sign(claims, alg=alg if alg in SIGNING_ALGS else DEFAULT_ALG)
