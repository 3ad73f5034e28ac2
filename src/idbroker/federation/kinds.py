"""The table of upstream kinds: kind -> the class implementing it (federation/base.py says what a
kind is). A new kind is one module of this package and one line here."""

from __future__ import annotations

from .base import PasswordAuthority, Upstream
from .ldap import LdapAuthority

UPSTREAMS: dict[str, type[Upstream] | type[PasswordAuthority]] = {
    # oidc, oauth2: federation/oidc.py
    "ldap": LdapAuthority,
    # saml: federation/saml.py
}
