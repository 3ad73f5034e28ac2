"""Grant handlers, one per grant type, registered in one table (``GRANTS``)."""

from __future__ import annotations

from .authorization_code import AuthorizationCodeGrant
from .base import GrantHandler
from .client_credentials import ClientCredentialsGrant
from .refresh_token import RefreshTokenGrant

GRANTS: dict[str, GrantHandler] = {
    g.grant_type: g for g in (AuthorizationCodeGrant(), RefreshTokenGrant(), ClientCredentialsGrant())
}

__all__ = ["GRANTS", "GrantHandler"]
