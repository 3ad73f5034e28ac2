"""The table of upstream kinds: kind -> the class implementing it (federation/base.py says what a
kind is). A new kind is one module of this package and one line here."""

from __future__ import annotations

from .base import PasswordAuthority, Upstream
from .ldap import LdapAuthority
from .oauth import OAuth2Upstream
from .openid_connect import OpenIDConnectUpstream
from .saml import SamlUpstream

UPSTREAMS: dict[str, type[Upstream] | type[PasswordAuthority]] = {
    "oidc": OpenIDConnectUpstream,
    "oauth2": OAuth2Upstream,
    "ldap": LdapAuthority,
    "saml": SamlUpstream,
}
