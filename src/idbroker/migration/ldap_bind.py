"""An LDAP directory / Active Directory as a migration source (kind ``ldap``).

The same connection and search as the LDAP upstream provider (federation/ldap.py, whose options
it takes: ``url``, ``start_tls``, ``ca_file``, ``bind_dn``, ``bind_password`` (secret),
``base_dn``, ``user_filter``, ``group_base_dn``, ``group_mode``, ``claims``, ``email_verified``,
``timeout``): the service account finds the entry, the typed password binds as it. The
difference is what follows: the user becomes a plain local account (with the typed password, the
entry's profile claims and groups), and the directory is not asked about them again, so it can be
switched off once everyone has signed in. An entry without ``mail`` cannot become an account.
"""

from __future__ import annotations

from typing import ClassVar

from ..federation.base import ExternalIdentity, UpstreamConfig, UpstreamUnavailable
from ..federation.ldap import LdapAuthority
from .legacy import LegacyUser, SourceConfig, SourceUnavailable


def _as_user(identity: ExternalIdentity | None, login: str) -> LegacyUser | None:
    if identity is None or not identity.email or identity.email.strip().lower() != login.strip().lower():
        return None  # the typed address must be the entry's mail: an account is keyed by its address
    return LegacyUser(email=identity.email.strip().lower(), email_verified=identity.email_verified,
                      claims=dict(identity.claims), groups=identity.groups)


class LdapSource:
    kind: ClassVar[str] = "ldap"
    secret_options: ClassVar[tuple[str, ...]] = ("bind_password",)

    def __init__(self, config: SourceConfig):
        self.directory = LdapAuthority(UpstreamConfig(id=config.id, kind="ldap", name=config.id,
                                                      options=dict(config.options)))

    def verify(self, login: str, password: str) -> LegacyUser | None:
        try:
            return _as_user(self.directory.authenticate(login, password), login)
        except UpstreamUnavailable as exc:
            raise SourceUnavailable(exc.detail) from None

    def lookup(self, login: str) -> LegacyUser | None:
        """The entry found by the service account alone (no password): its search and group
        resolution are the upstream kind's own."""
        if not login:
            return None
        from ..federation.ldap import escape_filter_chars  # ldap3's, loaded with the directory

        d = self.directory
        filter_ = d.user_filter.replace("{login}", escape_filter_chars(login))
        try:
            entries = d._as_service(lambda conn: d._search(conn, d.base_dn, filter_, d.attributes, 2))
            if len(entries) != 1:
                return None
            groups = d._as_service(lambda conn: d._groups(conn, entries[0]))
            return _as_user(d._identity(entries[0], groups), login)
        except UpstreamUnavailable as exc:
            raise SourceUnavailable(exc.detail) from None
