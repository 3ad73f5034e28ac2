"""FAPI 2.0 Security Profile (OpenID FAPI 2.0 Final, §5.3) as a per-client switch (`clients add
--fapi2`, column `clients.fapi2`).

For a FAPI 2.0 client the broker requires, each where the request arrives:

- registration (clients/metadata.py `fapi2_problems`): a confidential client authenticating with
  `private_key_jwt` (§5.3.2.1 item 4; mTLS client authentication is not offered), response type
  `code` only (§5.3.2.2 item 2), no implicit grant;
- authorization endpoint: the request pushed first (PAR, §5.3.2.2 item 3: invalid_request,
  oauth2/pushed_requests.py `required`), `response_type=code` (unauthorized_client), PKCE with
  S256 (§5.3.2.2 item 4: invalid_request, `check_authorization` below); the response always
  carries `iss` (RFC 9207, §5.3.2.2 item 6: flow/responses.py does so for every client);
- authorization codes valid at most MAX_CODE_TTL seconds (§5.3.2.2 item 9, "no more than 60
  seconds"), `code_ttl`;
- token endpoint: client authentication by `private_key_jwt` only (invalid_client,
  oauth2/client_auth.py), and sender-constrained tokens (§5.3.2.1 item 5) by DPoP: every token
  request carries a proof (endpoints/dpop_headers.py), so access tokens carry `cnf.jkt` and the
  refresh tokens are bound to that key (oauth2/grants/refresh_token.py). mTLS-bound tokens (via
  a trusted proxy's certificate header) are not offered.
"""

from __future__ import annotations

from typing import Any

from . import constants as c
from . import pkce
from .errors import InvalidClientError, UnauthorizedClientError

MAX_CODE_TTL = 60


def code_ttl(client: Any, configured: int) -> int:
    return min(configured, MAX_CODE_TTL) if client.fapi2 else configured


def check_authorization(client: Any, response_type: str, params: dict[str, str]) -> None:
    """The authorization request of a FAPI 2.0 client (after its response type is known)."""
    if not client.fapi2:
        return
    if response_type != c.RESPONSE_CODE:
        raise UnauthorizedClientError("a FAPI 2.0 client uses response_type code only")
    pkce.check_challenge(params.get("code_challenge"), params.get("code_challenge_method"), required=True)


def check_client_authentication(client: Any, method: str) -> None:
    if client.fapi2 and method != c.AUTH_PRIVATE_KEY_JWT:
        raise InvalidClientError("a FAPI 2.0 client authenticates with private_key_jwt")
