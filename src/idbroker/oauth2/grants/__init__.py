"""Grant handlers, one per grant type, registered in one table (``GRANTS``: grant_type -> class).
The composition root builds one instance of each with the collaborators its ``__init__`` names;
the token endpoint looks the built handler up by the request's grant_type."""

from __future__ import annotations

from .. import constants as c
from .authorization_code import AuthorizationCodeGrant
from .base import GrantHandler
from .client_credentials import ClientCredentialsGrant
from .device_code import GRANT_DEVICE_CODE, DeviceCodeGrant
from .refresh_token import RefreshTokenGrant
from .token_exchange import TokenExchangeGrant

GRANTS: dict[str, type[GrantHandler]] = {
    c.GRANT_AUTHORIZATION_CODE: AuthorizationCodeGrant,
    c.GRANT_REFRESH_TOKEN: RefreshTokenGrant,
    c.GRANT_CLIENT_CREDENTIALS: ClientCredentialsGrant,
    c.GRANT_TOKEN_EXCHANGE: TokenExchangeGrant,
    GRANT_DEVICE_CODE: DeviceCodeGrant,  # RFC 8628
}

__all__ = ["GRANTS", "GrantHandler"]
